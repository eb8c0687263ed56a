"""scripts/halfcheetah_gait.py: the pitch it reads is HalfCheetah's, and its returns are evaluate.py's."""

from __future__ import annotations

import importlib.util
import json
import math
import runpy
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, PPOConfig

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    if name != "halfcheetah_gait":  # a library module; the gait diagnostic is a script
        return importlib.import_module(f"policyopt.algos.run.{name}")
    spec = importlib.util.spec_from_file_location(f"policyopt_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gait():
    return _module("halfcheetah_gait")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gait") / "runs" / "ppo" / "HalfCheetah-v4" / "seed0"
    agent = PPO(vecenvs.make("HalfCheetah-v4", num_envs=2, seed=0), PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1))
    agent.learn(64, progress=False)
    agent.save(run / "checkpoint.pt")
    (run / "config.json").write_text(json.dumps({"algo": "PPO", "env_id": "HalfCheetah-v4", "seed": 0}))
    return run


@pytest.mark.parametrize(
    "pitch, flipped", [(0.0, False), (math.pi, True), (-2.0, True), (2 * math.pi + 0.3, False), (1.4, False)]
)
def test_upside_down_reads_the_root_pitch(gait, pitch, flipped):
    env = gym.make("HalfCheetah-v4").unwrapped
    env.reset(seed=0)
    qpos = env.init_qpos.copy()
    qpos[2] = pitch  # rooty: the torso's pitch
    env.set_state(qpos, env.init_qvel)
    obs = torch.as_tensor(env._get_obs()[None], dtype=torch.float32)
    assert bool(gait.upside_down(obs)[0]) is flipped


def test_returns_are_evaluate_py_s(gait, run, capsys):
    rows = gait.main(gait.Args([run], episodes=3, seed=5))
    assert len(rows) == 1 and len(rows[0]["returns"]) == 3 and len(rows[0]["upside_down"]) == 3
    assert all(0.0 <= f <= 1.0 for f in rows[0]["upside_down"])
    evaluated = _module("evaluate").cli([str(run), "--episodes", "3", "--seed", "5"])
    assert rows[0]["returns"] == pytest.approx(evaluated["returns"])
    out = capsys.readouterr().out
    assert "| run | mean return | episodes on its back |" in out and f"| {run} |" in out


def test_readme_command_as_a_script(run, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["scripts/halfcheetah_gait.py", str(run), "--episodes", "2", "--seed", "2", "--stochastic"])
    runpy.run_path("scripts/halfcheetah_gait.py", run_name="__main__")
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith(f"| {run} |") and "of 2 |" in row


def test_other_envs_are_refused(gait, tmp_path):
    run = tmp_path / "pendulum"
    PPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), PPOConfig(num_steps=16, num_minibatches=2)).save(run / "checkpoint.pt")
    (run / "config.json").write_text(json.dumps({"env_id": "Pendulum-v1"}))
    with pytest.raises(SystemExit, match="Pendulum-v1; this script reads HalfCheetah"):
        gait.main(gait.Args([run]))
