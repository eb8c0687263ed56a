"""A run directory is never lost or mixed: one writer at a time (two real processes), stale locks
reported, a run that stopped before its first checkpoint restarts with its files kept aside, partial
checkpoints cleaned up, no checkpoint after an inf in the optimiser's state, a hand-edited config.json
checked as data, and a resumed run keeps its own total."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, SAC, PPOConfig, SACConfig, TrainingDivergedError
from policyopt.algos.core.logger import read_metrics
from policyopt.algos.run.rundir import DirectoryLock, DirectoryLockedError
from policyopt.algos.run.train import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = [
    "--env-id",
    "CartPole-v1",
    "--num-envs",
    "2",
    "--no-progress",
    "--eval-every",
    "0",
    "--algo.num-steps",
    "16",
    "--algo.num-minibatches",
    "2",
    "--algo.update-epochs",
    "1",
]


def train_cmd(run_dir: Path, total: int, seed: int = 0) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train_ppo.py"),
        *QUICK,
        "--run-dir",
        str(run_dir),
        "--total-steps",
        str(total),
        "--seed",
        str(seed),
        "--checkpoint-every",
        "64",
    ]


# --- one writer per run directory ----------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_on_one_run_dir_one_runs_the_other_gets_the_lock_error(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(train_cmd(run, 200_000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "config.json").exists():  # the first run is under way
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run(train_cmd(run, 1024, seed=1), capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert f"in use by another training run (PID {first.pid}" in second.stderr
        assert first.poll() is None  # the holder is unharmed
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert json.loads((run / "config.json").read_text())["seed"] == 0  # the second wrote nothing


@pytest.mark.slow
def test_two_processes_started_together_never_mix_their_runs(tmp_path):
    run = tmp_path / "run"
    procs = [
        subprocess.Popen(train_cmd(run, 256, seed=s), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, outs
    loser = outs[codes.index(next(c for c in codes if c != 0))][1]
    assert "in use by another training run" in loser or "already holds a run" in loser
    steps = [r["step"] for r in read_metrics(run)]
    assert len(steps) == len(set(steps))  # one run's records only
    assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_a_stale_lock_is_reported_and_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / ".lock").write_text(f"pid={gone.pid}\nhost=x\nstarted=2026-01-01T00:00:00\n")
    with pytest.warns(RuntimeWarning, match=f"stale lock of PID {gone.pid}"):
        with DirectoryLock(tmp_path, "training run") as lock:
            assert lock.stale["pid"] == str(gone.pid)
            assert f"pid={os.getpid()}" in (tmp_path / ".lock").read_text()
    assert (tmp_path / ".lock").read_text() == ""  # a clean end leaves no record


def test_the_lock_names_the_holder_in_this_process_too(tmp_path):
    with DirectoryLock(tmp_path, "dataset build"):
        with pytest.raises(DirectoryLockedError, match=f"another dataset build \\(PID {os.getpid()}"):
            DirectoryLock(tmp_path, "dataset build").acquire()


# --- a run that stopped before its first checkpoint -----------------------------------------------------
def test_a_run_without_a_checkpoint_restarts_with_its_files_kept_aside(tmp_path, capsys):
    run = tmp_path / "run"
    main(PPO, QUICK + ["--run-dir", str(run), "--total-steps", "64", "--checkpoint-every", "0"])
    (run / "checkpoint.pt").unlink()  # as if killed (or stopped by the guard) before its first checkpoint
    old_metrics = (run / "metrics.jsonl").read_text()
    for extra in ([], ["--resume"]):  # a fresh start and --resume both start it again
        capsys.readouterr()
        agent = main(PPO, QUICK + ["--run-dir", str(run), "--total-steps", "64", *extra])
        assert agent.global_step == 64 and (run / "checkpoint.pt").is_file()
        assert "stopped before its first checkpoint; starting it again from step 0" in capsys.readouterr().out
        (run / "checkpoint.pt").unlink()
    asides = sorted(run.glob("aside-*-stopped-before-checkpoint*"))
    assert len(asides) == 2 and (asides[0] / "metrics.jsonl").read_text() == old_metrics


def test_the_guard_says_when_no_checkpoint_was_written_yet(tmp_path):
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1))
    with torch.no_grad():
        next(agent.critic.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="no checkpoint had been written yet") as err:
        agent.learn(64, checkpoint_path=tmp_path / "c.pt", checkpoint_every=32, progress=False)
    assert "intact" not in str(err.value) and not (tmp_path / "c.pt").exists()


def test_partial_checkpoints_of_an_interrupted_save_are_removed_on_the_next_start(tmp_path, capsys):
    run = tmp_path / "run"
    main(PPO, QUICK + ["--run-dir", str(run), "--total-steps", "64"])
    leftovers = [run / ".checkpoint.pt.abc123.tmp", run / ".checkpoint.pt.def456.tmp"]
    for p in leftovers:
        p.write_bytes(b"partial")
    (run / "notes.tmp").write_text("the user's own file")
    main(PPO, QUICK + ["--run-dir", str(run), "--total-steps", "128", "--resume"])
    assert not any(p.exists() for p in leftovers) and (run / "notes.tmp").exists()
    assert "partial checkpoint of an interrupted save" in capsys.readouterr().out


# --- the NaN guard sees the optimiser's state ---------------------------------------------------------
def test_an_inf_in_the_optimiser_state_stops_the_run_before_any_checkpoint(tmp_path):
    env = vecenvs.make("Pendulum-v1", num_envs=1, seed=0)
    agent = SAC(env, SACConfig(actor_hidden=(8,), critic_hidden=(8,), batch_size=8, learning_starts=8, buffer_size=256))
    ckpt = tmp_path / "c.pt"
    agent.learn(32, checkpoint_path=ckpt, checkpoint_every=16, progress=False)
    before = ckpt.read_bytes()
    state = agent.optimizers["critic"].state
    next(iter(state.values()))["exp_avg_sq"].fill_(float("inf"))  # what a learning rate of 1e3 did
    with pytest.raises(TrainingDivergedError, match=r"optimiser state \(critic.exp_avg_sq\).*last good checkpoint.*intact"):
        agent.learn(64, checkpoint_path=ckpt, checkpoint_every=16, progress=False)
    assert ckpt.read_bytes() == before


# --- config.json is data --------------------------------------------------------------------------------
@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    main(PPO, QUICK + ["--run-dir", str(run), "--total-steps", "64"])
    return run


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(num_envs="8"), r"config.json: 'num_envs' is '8' \(str\); expected int"),
        (lambda c: c.pop("algo_config"), r"must be a JSON object with an 'algo_config' object"),
        (
            lambda c: c["algo_config"].update(learning_rate="fast"),
            r"algo_config: 'learning_rate' is 'fast' \(str\); expected float",
        ),
        (lambda c: c["algo_config"].update(learning_rat=1e-3), r"algo_config has unknown key\(s\) \['learning_rat'\]"),
        (lambda c: c.update(preset="nonexistent"), r"'preset' is 'nonexistent', which PPO does not have; its presets are \["),
        (
            lambda c: c["algo_config"].update(learning_rate=0.5),
            r"disagrees with .*checkpoint.pt \(learning_rate: 0.5 in config.json",
        ),
    ],
)
def test_a_hand_edited_config_json_is_a_named_error_and_stays_as_edited(finished_run, edit, message):
    config_file = finished_run / "config.json"
    config = json.loads(config_file.read_text())
    edit(config)
    config_file.write_text(json.dumps(config))
    edited = config_file.read_text()
    with pytest.raises(ValueError, match=message):
        main(PPO, QUICK + ["--run-dir", str(finished_run), "--total-steps", "128", "--resume"])
    assert config_file.read_text() == edited  # not rewritten: the edits are not discarded


def test_broken_json_names_the_file(finished_run):
    (finished_run / "config.json").write_text('{"algo": "PPO",')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON .*expected a training run's config.json"):
        main(PPO, QUICK + ["--run-dir", str(finished_run), "--resume"])


def test_resume_without_total_steps_keeps_the_runs_own_total(finished_run):
    agent = main(PPO, QUICK + ["--run-dir", str(finished_run), "--resume"])
    assert agent.global_step == 64  # not the default 1,000,000
    agent = main(PPO, QUICK + ["--run-dir", str(finished_run), "--resume", "--total-steps", "128"])
    assert agent.global_step == 128
    record = json.loads((finished_run / "config.json").read_text())
    assert record["total_steps"] == 128 and record["torch_threads_used"] == torch.get_num_threads()
