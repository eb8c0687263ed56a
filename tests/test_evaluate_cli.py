"""scripts/evaluate.py: checkpoint or run dir, clear errors, the evaluation protocol in its output."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest

from policyopt import vecenvs
from policyopt.algos import PPO, PPOConfig

ROOT = Path(__file__).resolve().parents[1]


def load_evaluate_module():
    """The evaluation CLI's module (scripts/evaluate.py is a thin call into it)."""
    from policyopt.algos.run import evaluate

    return evaluate


def train_run(root: Path, env_id: str, config: dict | None = None) -> Path:
    """A tiny PPO run in ``root/runs/ppo/<env_id>/seed0`` with a checkpoint and the training scripts' config.json."""
    run = root / "runs" / "ppo" / env_id / "seed0"
    agent = PPO(vecenvs.make(env_id, num_envs=2, seed=0), PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1))
    agent.learn(64, progress=False)
    agent.save(run / "checkpoint.pt")
    if config is None:
        config = {"algo": "PPO", "env_id": env_id, "seed": 0, "num_envs": 2, "backend": None, "algo_config": {"num_steps": 16}}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return {"cartpole": train_run(root, "CartPole-v1"), "pendulum": train_run(root, "Pendulum-v1")}


@pytest.fixture(scope="module")
def evaluate():
    return load_evaluate_module()


def test_readme_evaluate_command(runs, monkeypatch, capsys):
    """`python scripts/evaluate.py <run_dir>/checkpoint.pt --episodes 20`, run as a script."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["scripts/evaluate.py", f"{runs['cartpole']}/checkpoint.pt", "--episodes", "20"])
    runpy.run_path("scripts/evaluate.py", run_name="__main__")
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["env_id"] == "CartPole-v1" and out["algo"] == "PPO"
    assert out["episodes"] == 20 and out["seed"] == 12345
    assert out["return_mean"] >= 1 and out["length_mean"] == out["return_mean"]  # CartPole: +1 per step


def test_run_directory_is_accepted_and_reproducible(runs, evaluate):
    by_dir = evaluate.cli([str(runs["cartpole"]), "--episodes", "3", "--seed", "7"])
    by_file = evaluate.cli([str(runs["cartpole"] / "checkpoint.pt"), "--episodes", "3", "--seed", "7"])
    assert by_dir == by_file and by_dir["episodes"] == 3 and by_dir["seed"] == 7


def test_per_episode_returns_and_stochastic(runs, evaluate):
    """``returns`` lists each copy's return (their mean is return_mean); --stochastic samples the Gaussian
    policy, so its returns differ from the mean action's, and a seed fixes both."""
    det = evaluate.cli([str(runs["pendulum"]), "--episodes", "4", "--seed", "3"])
    assert len(det["returns"]) == 4 and "stochastic" not in det
    assert det["return_mean"] == pytest.approx(sum(det["returns"]) / 4)
    import torch

    torch.manual_seed(0)
    sampled = evaluate.cli([str(runs["pendulum"]), "--episodes", "4", "--seed", "3", "--stochastic"])
    assert sampled["stochastic"] is True and len(sampled["returns"]) == 4
    assert sampled["returns"] != det["returns"]
    torch.manual_seed(0)
    assert evaluate.cli([str(runs["pendulum"]), "--episodes", "4", "--seed", "3", "--stochastic"]) == sampled


def test_missing_checkpoint_is_named(tmp_path, evaluate):
    missing = tmp_path / "runs" / "ppo" / "CartPole-v1" / "seed0" / "checkpoint.pt"
    with pytest.raises(SystemExit, match="does not exist") as e:
        evaluate.cli([str(missing)])
    assert str(missing) in str(e.value) and "--env-id" not in str(e.value)


def test_directory_without_checkpoint(tmp_path, evaluate):
    with pytest.raises(SystemExit, match=r"no checkpoint\.pt in run directory") as e:
        evaluate.cli([str(tmp_path)])
    assert str(tmp_path / "checkpoint.pt") in str(e.value)


def test_env_mismatch_names_both_spaces_and_the_env(runs, evaluate):
    with pytest.raises(SystemExit) as e:
        evaluate.cli([str(runs["pendulum"]), "--env-id", "CartPole-v1", "--episodes", "2"])
    msg = str(e.value)
    assert "CartPole-v1" in msg and "observation space" in msg
    assert "(3,)" in msg and "(4,)" in msg  # Pendulum's and CartPole's observation shapes
    assert "act expects" not in msg


@pytest.mark.parametrize("episodes", ["0", "-3"])
def test_nonpositive_episodes_rejected_before_anything_runs(tmp_path, evaluate, episodes):
    with mock.patch.object(evaluate.vecenvs, "make") as make, mock.patch.object(evaluate, "load_checkpoint") as load:
        with pytest.raises(SystemExit, match="--episodes must be a positive") as e:
            evaluate.cli([str(tmp_path / "none.pt"), "--episodes", episodes])  # checked before the path, too
    assert "num_envs" not in str(e.value) and not make.called and not load.called


@pytest.mark.parametrize(
    "flags, error",
    [
        (["--seed", "-1"], "--seed must be a non-negative"),
        (["--env-id", " "], "--env-id is empty"),
        (["--device", "nodevice"], "--device: invalid device 'nodevice'"),
    ],
)
def test_other_invalid_arguments(runs, evaluate, flags, error):
    with pytest.raises(SystemExit, match=error):
        evaluate.cli([str(runs["cartpole"]), *flags])


def test_env_id_from_config(tmp_path, runs, evaluate):
    run = runs["cartpole"]
    # an older config.json ("algo" held the config dict) still names the env
    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    (old / "config.json").write_text(json.dumps({"algo": {"num_steps": 16}, "env_id": "CartPole-v1", "seed": 0}))
    assert evaluate.cli([str(old), "--episodes", "2"])["env_id"] == "CartPole-v1"
    (old / "config.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(SystemExit, match='has no "env_id".*pass --env-id'):
        evaluate.cli([str(old)])
    (old / "config.json").unlink()
    with pytest.raises(SystemExit, match="--env-id is needed: no config.json beside"):
        evaluate.cli([str(old)])
