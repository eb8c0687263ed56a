"""The training scripts' shared CLI: a run, its files, --resume, evaluation of its checkpoint."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys

import pytest
import torch

from policyopt.algos import PPO, SPO, TRPO
from policyopt.algos.core.logger import RunLogger, read_metrics
from policyopt.algos.core.presets import PRESETS
from policyopt.algos.run.train import main


def test_train_resume_and_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    common = [
        "--env-id",
        "Pendulum-v1",
        "--num-envs",
        "4",
        "--run-dir",
        str(run),
        "--no-progress",
        "--eval-every",
        "256",
        "--eval-episodes",
        "3",
        "--checkpoint-every",
        "256",
        "--algo.num-steps",
        "32",
        "--algo.num-minibatches",
        "2",
        "--algo.update-epochs",
        "1",
    ]
    agent = main(PPO, common + ["--total-steps", "512"])
    assert agent.global_step == 512
    assert (run / "checkpoint.pt").is_file() and (run / "config.json").is_file()
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [0, 128, 256, 384, 512]  # step 0: the untrained policy's eval
    for key in (
        "train/approx_kl",
        "train/clipfrac",
        "train/entropy",
        "train/explained_variance",
        "train/learning_rate",
        "train/sps",
        "train/value_loss",
        "train/policy_loss",
    ):
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
    agent = main(
        TRPO,
        [
            "--env-id",
            "CartPole-v1",
            "--preset",
            "cartpole",
            "--total-steps",
            "1",
            "--num-envs",
            "2",
            "--eval-every",
            "0",
            "--run-dir",
            str(tmp_path / "r"),
            "--no-progress",
        ],
    )
    assert agent.config.num_steps == TRPO.config_class.preset("cartpole").num_steps
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        main(PPO, ["--preset", "nope", "--total-steps", "1"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        main(PPO, ["--run-dir", str(tmp_path / "none"), "--resume", "--total-steps", "10", "--no-progress"])


def test_env_compile_flag(tmp_path):
    common = [
        "--env-id",
        "CartPole-v1",
        "--num-envs",
        "2",
        "--eval-every",
        "0",
        "--no-progress",
        "--run-dir",
        str(tmp_path / "r"),
        "--algo.num-steps",
        "16",
        "--algo.num-minibatches",
        "2",
        "--env-compile",
    ]
    agent = main(PPO, common + ["--total-steps", "32"])
    assert agent.global_step == 32
    assert agent.env.unwrapped._core is not type(agent.env.unwrapped)._step_core.__get__(agent.env.unwrapped)
    with pytest.raises(ValueError, match="compile= applies to native tensor envs"):
        main(PPO, common + ["--total-steps", "32", "--backend", "gymnasium", "--run-dir", str(tmp_path / "g")])


# --- resume, seeds and CLI values, as the README uses them ---------------------------------


def _pendulum_run(run, extra=()):
    return [
        "--env-id",
        "Pendulum-v1",
        "--num-envs",
        "4",
        "--preset",
        "pendulum",
        "--run-dir",
        str(run),
        "--no-progress",
        "--eval-every",
        "256",
        "--eval-episodes",
        "2",
        "--checkpoint-every",
        "256",
        "--algo.num-steps",
        "32",
        "--algo.num-minibatches",
        "2",
        "--algo.update-epochs",
        "1",
        *extra,
    ]


def _same_params(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values()))


def test_resume_takes_the_runs_own_settings(tmp_path, monkeypatch):
    """The README's line, `--run-dir ... --total-steps N --resume`, continues the run with its own settings;
    a crashed run resumed with its own --total-steps matches an uninterrupted one bit for bit."""
    straight = main(PPO, _pendulum_run(tmp_path / "straight", ["--total-steps", "1024"]))
    run = tmp_path / "run"
    real_log = RunLogger.log

    def crash_after_640(self, step, metrics):
        if step >= 640:
            raise KeyboardInterrupt("simulated crash")
        return real_log(self, step, metrics)

    monkeypatch.setattr(RunLogger, "log", crash_after_640)
    with pytest.raises(KeyboardInterrupt):
        main(PPO, _pendulum_run(run, ["--total-steps", "1024"]))  # last checkpoint: step 512
    monkeypatch.setattr(RunLogger, "log", real_log)
    resumed = main(PPO, ["--run-dir", str(run), "--total-steps", "1024", "--resume", "--no-progress"])
    assert resumed.num_envs == 4 and resumed.config.use_sde and resumed.global_step == 1024
    assert _same_params(straight, resumed)
    evals = [r["step"] for r in read_metrics(run) if "eval/return" in r]
    assert evals == [0, 256, 512, 768, 1024]  # eval_every came from the run, not the default 50,000
    extended = main(PPO, ["--run-dir", str(run), "--total-steps", "1536", "--resume", "--no-progress"])
    assert extended.global_step == 1536 and json.loads((run / "config.json").read_text())["total_steps"] == 1536


def test_resume_flags_that_contradict_the_run_name_both_values(tmp_path):
    run = tmp_path / "run"
    main(PPO, _pendulum_run(run, ["--total-steps", "256"]))
    for flag, message in [
        (["--num-envs", "8"], r"--num-envs 8 \(the run: 4\)"),
        (["--env-id", "CartPole-v1"], r"--env-id 'CartPole-v1' \(the run: 'Pendulum-v1'\)"),
        (["--seed", "3"], r"--seed 3 \(the run: 0\)"),
        (["--eval-every", "100"], r"--eval-every 100 \(the run: 256\)"),
        (["--algo.gamma", "0.5"], r"gamma=0.5 \(checkpoint: 0.9\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            main(PPO, ["--run-dir", str(run), "--total-steps", "512", "--resume", *flag])
    # repeating the run's own values is fine
    main(PPO, _pendulum_run(run, ["--total-steps", "512", "--resume"]))


def test_negated_boolean_flag_survives_resume(tmp_path):
    run = tmp_path / "run"
    main(PPO, _pendulum_run(run, ["--total-steps", "256", "--algo.no-norm-adv"]))
    agent = main(PPO, _pendulum_run(run, ["--total-steps", "512", "--algo.no-norm-adv", "--resume"]))
    assert agent.config.norm_adv is False and agent.global_step == 512


def test_one_seed(tmp_path):
    with pytest.raises(ValueError, match=r"one seed per run: set it with --seed \(got --seed 0 and --algo.seed 7\)"):
        main(PPO, ["--algo.seed", "7", "--total-steps", "10", "--run-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
    agent = main(
        PPO,
        [
            "--seed",
            "7",
            "--env-id",
            "CartPole-v1",
            "--num-envs",
            "2",
            "--total-steps",
            "32",
            "--eval-every",
            "0",
            "--algo.num-steps",
            "16",
            "--algo.num-minibatches",
            "2",
            "--run-dir",
            str(tmp_path / "s"),
            "--no-progress",
        ],
    )
    record = json.loads((tmp_path / "s" / "config.json").read_text())
    assert agent.config.seed == 7 and record["seed"] == 7 and record["algo_config"]["seed"] == 7 and record["algo"] == "PPO"


@pytest.mark.parametrize(
    "flag, message",
    [
        (["--total-steps", "-100"], r"--total-steps must be a positive number of env steps, got -100"),
        (["--num-envs", "0"], r"--num-envs must be a positive number of env copies, got 0"),
        (["--eval-episodes", "0"], r"--eval-episodes must be a positive number of episodes, got 0"),
        (["--checkpoint-every", "-1"], r"--checkpoint-every must be"),
    ],
)
def test_nonsense_values_are_rejected_before_anything_is_written(tmp_path, flag, message):
    with pytest.raises(ValueError, match=message):
        main(PPO, ["--run-dir", str(tmp_path / "r"), *flag])
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_device_cuda_without_cuda_names_the_device(tmp_path):
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but CUDA is not available"):
        main(PPO, ["--device", "cuda", "--total-steps", "10", "--run-dir", str(tmp_path / "r")])


def test_no_progress_still_prints_evaluations(tmp_path, capsys):
    main(
        PPO,
        [
            "--env-id",
            "CartPole-v1",
            "--num-envs",
            "2",
            "--total-steps",
            "64",
            "--eval-every",
            "32",
            "--eval-episodes",
            "2",
            "--algo.num-steps",
            "16",
            "--algo.num-minibatches",
            "2",
            "--run-dir",
            str(tmp_path / "r"),
            "--no-progress",
        ],
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "eval return" in line]
    assert [line.split(":")[0].split()[-1] for line in lines] == ["0", "32", "64"]


def _documented_fields(cls) -> set[str]:
    """Fields of a dataclass and its bases that have a docstring line right below them."""
    import ast
    import inspect
    import textwrap

    documented = set()
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for stmt, after in zip(body, body[1:]):
            if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                documented.add(stmt.target.id)
    return documented


@pytest.mark.parametrize("cls", [PPO, TRPO, SPO])
def test_every_option_has_help(cls, capsys):
    from policyopt.algos.run.train import TrainArgs

    for klass in (TrainArgs, cls.config_class):
        missing = {f.name for f in dataclasses.fields(klass)} - _documented_fields(klass) - {"algo"}
        assert not missing, f"{klass.__name__} fields without a one-line doc: {sorted(missing)}"
    with pytest.raises(SystemExit):
        main(cls, ["--help"])
    out = capsys.readouterr().out
    presets = sorted(PRESETS[cls.config_class.__name__])
    assert f"preset of {cls.__name__}: {', '.join(presets)}" in " ".join(out.split())
    if cls is TRPO:
        assert "classic" not in presets


def test_documented_training_commands_parse():
    """Every `python scripts/train_*.py ...` line of the README and the docs pages parses with today's CLI."""
    import re
    import shlex
    from pathlib import Path

    from policyopt.algos import ALGORITHMS
    from policyopt.algos.run.train import parse

    root = Path(__file__).resolve().parent.parent
    text = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    commands = re.findall(r"python scripts/train_(\w+)\.py([^\n`#]*)", text)
    assert len(commands) >= 5
    for algo, rest in commands:
        argv = shlex.split(rest)
        if "--resume" in argv:
            continue  # needs its run dir; test_resume_takes_the_runs_own_settings runs that line
        args = parse(ALGORITHMS[algo], argv)
        assert args.total_steps >= 1


def test_a_new_run_never_overwrites_an_old_one(tmp_path):
    argv = [
        "--env-id",
        "CartPole-v1",
        "--num-envs",
        "2",
        "--total-steps",
        "32",
        "--eval-every",
        "0",
        "--no-progress",
        "--algo.num-steps",
        "16",
        "--algo.num-minibatches",
        "2",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    main(PPO, argv)
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match="already holds a run; pass --resume"):
        main(PPO, argv)
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before
