"""The training scripts' shared CLI: a run, its files, --resume, evaluation of its checkpoint."""

from __future__ import annotations

import json
import runpy
import sys

import pytest

from algos import PPO, TRPO
from algos.logger import read_metrics
from algos.train import main


def test_train_resume_and_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--env-id", "Pendulum-v1", "--num-envs", "4", "--run-dir", str(run), "--no-progress",
              "--eval-every", "256", "--eval-episodes", "3", "--checkpoint-every", "256",
              "--algo.num-steps", "32", "--algo.num-minibatches", "2", "--algo.update-epochs", "1"]
    agent = main(PPO, common + ["--total-steps", "512"])
    assert agent.global_step == 512
    assert (run / "checkpoint.pt").is_file() and (run / "config.json").is_file()
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [0, 128, 256, 384, 512]  # step 0: the untrained policy's eval
    for key in ("train/approx_kl", "train/clipfrac", "train/entropy", "train/explained_variance",
                "train/learning_rate", "train/sps", "train/value_loss", "train/policy_loss"):
        assert key in rows[-1]
    assert "eval/return" in rows[0] and "eval/return" in rows[2]
    assert list(run.glob("events.out.tfevents.*"))

    # pretend the run crashed after logging step 640 but before its next checkpoint
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 640, "time": 0.0}) + "\n")
    resumed = main(PPO, common + ["--total-steps", "768", "--resume"])
    assert resumed.global_step == 768
    assert [r["step"] for r in read_metrics(run)] == [0, 128, 256, 384, 512, 640, 768]
    # the same command resumes (above); a flag that contradicts the checkpoint is an error, not ignored
    with pytest.raises(ValueError, match=r"num_steps=64 \(checkpoint: 32\)"):
        main(PPO, common + ["--total-steps", "1024", "--resume", "--algo.num-steps", "64"])

    sys.argv = ["evaluate.py", str(run / "checkpoint.pt"), "--episodes", "2"]
    capsys.readouterr()
    runpy.run_path("scripts/evaluate.py", run_name="__main__")
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["env_id"] == "Pendulum-v1" and out["episodes"] == 2 and out["return_mean"] < 0


def test_preset_and_unknown_preset(tmp_path):
    agent = main(TRPO, ["--env-id", "CartPole-v1", "--preset", "cartpole", "--total-steps", "1", "--num-envs", "2",
                        "--eval-every", "0", "--run-dir", str(tmp_path / "r"), "--no-progress"])
    assert agent.config.num_steps == TRPO.config_class.preset("cartpole").num_steps
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        main(PPO, ["--preset", "nope", "--total-steps", "1"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        main(PPO, ["--run-dir", str(tmp_path / "none"), "--resume", "--total-steps", "10", "--no-progress"])



def test_env_compile_flag(tmp_path):
    common = ["--env-id", "CartPole-v1", "--num-envs", "2", "--eval-every", "0", "--no-progress",
              "--run-dir", str(tmp_path / "r"), "--algo.num-steps", "16", "--algo.num-minibatches", "2", "--env-compile"]
    agent = main(PPO, common + ["--total-steps", "32"])
    assert agent.global_step == 32
    assert agent.env.unwrapped._core is not type(agent.env.unwrapped)._step_core.__get__(agent.env.unwrapped)
    with pytest.raises(ValueError, match="compile= applies to native tensor envs"):
        main(PPO, common + ["--total-steps", "32", "--backend", "gymnasium"])
