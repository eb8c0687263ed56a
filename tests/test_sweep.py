"""scripts/sweep.py: the grid, its checks before any trial, a local Ray Tune sweep, the sequential
fallback without ray, failure reporting and --resume after a failure and an interruption; the
threads each trial computes with, one sweep per root, and a resume that moves unreadable runs aside."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policyopt.algos.core.logger import RunLogger, read_metrics

ROOT = Path(__file__).resolve().parent.parent
from policyopt.algos.run import sweep  # noqa: E402
from lock_holder import hold_lock  # noqa: E402

# PPO on CartPole in a few hundred env steps: tiny nets, eager, 2 envs x 32 steps per rollout.
TINY = [
    "num_envs=2",
    "eval_episodes=2",
    "checkpoint_every=128",
    "algo.num_steps=32",
    "algo.num_minibatches=2",
    "algo.update_epochs=1",
    "algo.actor_hidden=8",
    "algo.critic_hidden=8",
    "algo.compile=false",
]


def ppo_sweep(root: Path, seeds=(0, 1), total=256, extra=()) -> list[str]:
    return [
        "--algos",
        "ppo",
        "--envs",
        "CartPole-v1",
        "--seeds",
        *map(str, seeds),
        "--total-steps",
        str(total),
        "--root",
        str(root),
        "--threads-per-trial",
        "1",
        "--set",
        *TINY,
        *extra,
    ]


def assert_complete(run: Path, total: int) -> list[dict]:
    assert (run / "checkpoint.pt").is_file() and (run / "config.json").is_file()
    rows = read_metrics(run)
    assert [r["step"] for r in rows if "eval/return" in r][-1] == total  # the last evaluation is at the end
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "PPO" and config["env_id"] == "CartPole-v1" and config["total_steps"] == total
    assert config["seed"] == int(run.name.removeprefix("seed")) and config["algo_config"]["actor_hidden"] == [8]
    return rows


def policy_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["modules"]["policy"]


# --- the grid ------------------------------------------------------------------------------------------
def test_grid_file_and_set_expand_into_labelled_run_dirs(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'algos = ["ppo", "spo"]\nenvs = ["CartPole-v1"]\nseeds = [0, 1]\ntotal_steps = 1000\n'
        '[settings]\nnum_envs = 4\n[algo_config]\nlearning_rate = [3e-4, 1e-3]\nactor_hidden = [16, 16]\n'
        '[algo_config.ppo]\nclip_coef = [0.1, 0.2]\n'
    )
    trials = sweep.plan(sweep.load_grid(sweep.Args(grid=grid)), tmp_path / "root")
    assert len(trials) == 2 * 2 * 2 + 2 * 2  # PPO: lr x clip x seeds; SPO: lr x seeds
    names = {t.name for t in trials}
    assert (
        "ppo/CartPole-v1/learning_rate=0.001,clip_coef=0.2/seed1" in names
        and "spo/CartPole-v1/learning_rate=0.0003/seed0" in names
    )
    t = next(t for t in trials if t.name == "ppo/CartPole-v1/learning_rate=0.001,clip_coef=0.1/seed1")
    assert t.run_dir == (tmp_path / "root/ppo/CartPole-v1/learning_rate=0.001,clip_coef=0.1/seed1").resolve()
    argv = " ".join(t.argv)
    for words in (
        "--env-id CartPole-v1",
        "--seed 1",
        "--total-steps 1000",
        "--num-envs 4",
        "--algo.learning-rate 0.001",
        "--algo.clip-coef 0.1",
        "--algo.actor-hidden 16 16",
        "--eval-every 100",
        f"--run-dir {t.run_dir}",
    ):
        assert words in argv
    assert t.resume_argv[-1] == "--resume" and "--eval-every" not in t.resume_argv  # a resumed run keeps its own cadence

    # the command line replaces the file's entries: one algorithm, one seed, a learning rate of its own
    sweep.cli(
        [
            "--grid",
            str(grid),
            "--algos",
            "ppo",
            "--seeds",
            "3",
            "--set",
            "algo.learning_rate=5e-4",
            "ppo:algo.norm_adv=false",
            "--root",
            str(tmp_path / "root"),
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert "4 trials" not in out and "2 trials" in out and "--algo.no-norm-adv" in out and "--algo.learning-rate 0.0005" in out
    assert "ppo/CartPole-v1/clip_coef=0.1/seed3" in out and not (tmp_path / "root").exists()  # a dry run writes nothing

    # a repeated --set adds to the first rather than replacing it
    sweep.cli(
        [
            "--algos",
            "ppo",
            "--envs",
            "CartPole-v1",
            "--set",
            "num_envs=4",
            "eval_episodes=3",
            "--set",
            "algo.num_steps=32",
            "--total-steps",
            "1000",
            "--root",
            str(tmp_path / "root"),
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert "--num-envs 4" in out and "--eval-episodes 3" in out and "--algo.num-steps 32" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--algos", "ppp", "--envs", "CartPole-v1"], r"unknown algorithm 'ppp' \(did you mean 'ppo'\?\); valid: .*sac, spo"),
        (
            ["--algos", "ppo", "--envs", "CartPol-v1"],
            r"--envs CartPol-v1: unknown env id 'CartPol-v1'.*CartPole-v1.*Native tensor envs",
        ),
        (
            ["--algos", "ppo", "--envs", "CartPole-v1", "--set", "algo.learnin_rate=1e-3"],
            r"algo.learnin_rate: PPO's config \(PPOConfig\) has no field 'learnin_rate' \(did you mean 'learning_rate'\?\); valid: .*clip_coef",
        ),
        (
            ["--algos", "ppo", "--envs", "CartPole-v1", "--set", "nm_envs=4"],
            r"--set nm_envs: not a run setting .*'num_envs'.*eval_every",
        ),
        (
            ["--algos", "ppo", "trpo", "--envs", "CartPole-v1", "--set", "algo.clip_coef=0.1"],
            r"TRPO's config \(TRPOConfig\) has no field 'clip_coef'",
        ),
        (["--algos", "ppo", "--envs", "CartPole-v1", "--set", "seed=1"], r"--set seed: set by the sweep \(use --seeds\)"),
        (
            ["--algos", "ppo", "--envs", "CartPole-v1", "--set", "algo.num_steps=0"],
            r"the ppo trials.*num_steps must be >= 1, got 0",
        ),
        (
            ["--algos", "ppo", "--envs", "CartPole-v1", "--set", "algo.num_steps=many"],
            r"the train CLI rejects .*--algo.num-steps many",
        ),
        (["--algos", "ppo", "--envs", "CartPole-v1", "--set", "preset=nope"], r"unknown preset 'nope'"),
        (["--algos", "ppo", "--envs", "CartPole-v1", "--set", "device=tpu7"], r"--set device=tpu7: invalid device 'tpu7'"),
        (["--algos", "iql", "--datasets", "missing.hdf5"], r"--datasets missing.hdf5: no dataset 'missing.hdf5'"),
        (["--algos", "iql", "--envs", "Pendulum-v1"], r"iql trains on datasets: pass --datasets"),
        (["--algos", "ppo"], r"ppo trains on envs: pass --envs"),
        (["--envs", "CartPole-v1"], r"no algorithms: pass --algos \(valid: bc, "),
    ],
)
def test_bad_grids_fail_before_anything_runs(tmp_path, argv, message):
    root = tmp_path / "root"
    with pytest.raises(SystemExit) as e:  # --dry-run: the same checks, and a grid that wrongly passes them trains nothing
        sweep.cli([*argv, "--total-steps", "64", "--root", str(root), "--no-ray", "--dry-run"])
    assert e.value.code != 0 and e.value.code is not None
    assert re.search(message, str(e.value)), str(e.value)
    assert not root.exists()


def test_bad_grid_file_entries(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('algo = ["ppo"]\n')
    with pytest.raises(SystemExit, match=r"unknown entry 'algo' \(did you mean 'algos'\?\)"):
        sweep.cli(["--grid", str(grid), "--total-steps", "64"])
    with pytest.raises(SystemExit, match="no such file"):
        sweep.cli(["--grid", str(tmp_path / "none.toml")])


# --- running it ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_local_ray_sweep_leaves_two_complete_runs(tmp_path, capsys):
    pytest.importorskip("ray")
    root = tmp_path / "root"
    rows = sweep.cli(ppo_sweep(root) + ["--cpus", "2"])
    out = capsys.readouterr().out
    assert "on Ray Tune (local, 2 CPUs): 2 at a time, 1 torch thread each" in out
    assert [r["status"] for r in rows] == ["done", "done"]
    runs = [root / "ppo/CartPole-v1/default/seed0", root / "ppo/CartPole-v1/default/seed1"]
    for run, row in zip(runs, rows):
        evals = [r for r in assert_complete(run, 256) if "eval/return" in r]
        assert row["eval_return"] == evals[-1]["eval/return"] and row["run_dir"] == str(run.resolve())
        assert f"| {row['name']} | done | {row['eval_return']:.1f} @ 256 |" in out
    assert not all(torch.equal(a, b) for a, b in zip(policy_state(runs[0]).values(), policy_state(runs[1]).values()))  # two seeds
    assert list((root / "_tune").iterdir())  # Tune's files stay under the sweep's root


def test_sequential_fallback_failure_interrupt_and_resume(tmp_path, monkeypatch, capsys):
    """Without ray the trials run in-process and say so; a failed trial is reported (exit 1), an interrupted
    sweep exits 130, and --resume skips finished runs, continues checkpointed ones exactly and restarts
    the one that had no checkpoint: every run ends equal to an uninterrupted sweep's."""
    straight = tmp_path / "straight"
    sweep.cli(ppo_sweep(straight, seeds=(0, 1, 2), extra=["--no-ray"]))
    assert "one after another in this process, because --no-ray was given" in capsys.readouterr().out

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    real_log = RunLogger.log
    crash = {"seed1": (192, RuntimeError("simulated crash"))}  # after its checkpoint at 128

    def log(self, step, metrics):
        if self.run_dir.name in crash and step >= crash[self.run_dir.name][0]:
            raise crash[self.run_dir.name][1]
        return real_log(self, step, metrics)

    monkeypatch.setattr(RunLogger, "log", log)
    root = tmp_path / "root"
    with pytest.raises(SystemExit) as e:
        sweep.cli(ppo_sweep(root, seeds=(0, 1)))
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "one after another in this process, because ray is not importable (" in out and "pip install -e '.[sweep]'" in out
    assert "| ppo/CartPole-v1/default/seed1 | failed: RuntimeError: simulated crash |" in out
    assert "| ppo/CartPole-v1/default/seed0 | done |" in out
    assert "simulated crash" in (root / "ppo/CartPole-v1/default/seed1/train.log").read_text()
    with pytest.raises(SystemExit, match="already hold runs.*pass --resume"):  # never overwritten without --resume
        sweep.cli(ppo_sweep(root, seeds=(0, 1)))

    # a third seed is interrupted (Ctrl-C) before its first checkpoint, while seed1 resumes and finishes
    crash = {"seed2": (64, KeyboardInterrupt())}
    seed0_metrics = (root / "ppo/CartPole-v1/default/seed0/metrics.jsonl").read_text()
    with pytest.raises(SystemExit) as e:
        sweep.cli(ppo_sweep(root, seeds=(0, 1, 2)) + ["--resume"])
    assert e.value.code == 130
    out = capsys.readouterr().out
    assert "1 of 3 runs already finished" in out
    assert "| ppo/CartPole-v1/default/seed0 | finished |" in out and "| ppo/CartPole-v1/default/seed1 | resumed |" in out
    assert "| ppo/CartPole-v1/default/seed2 | unfinished (step 0 of 256) |" in out
    assert (root / "ppo/CartPole-v1/default/seed2/metrics.jsonl").is_file()  # it had logged, but not checkpointed
    assert "resumed PPO from" in (root / "ppo/CartPole-v1/default/seed1/train.log").read_text()  # from its step-128 checkpoint

    crash = {}
    rows = sweep.cli(ppo_sweep(root, seeds=(0, 1, 2)) + ["--resume"])
    assert [r["status"] for r in rows] == ["finished", "finished", "done"]
    assert (root / "ppo/CartPole-v1/default/seed0/metrics.jsonl").read_text() == seed0_metrics  # skipped, untouched
    for seed in (0, 1, 2):
        run, ref = root / f"ppo/CartPole-v1/default/seed{seed}", straight / f"ppo/CartPole-v1/default/seed{seed}"
        got, want = assert_complete(run, 256), read_metrics(ref)
        assert [(r["step"], r.get("eval/return")) for r in got] == [(r["step"], r.get("eval/return")) for r in want]
        assert all(torch.equal(a, b) for a, b in zip(policy_state(run).values(), policy_state(ref).values()))


def test_dataset_algorithms_run_on_datasets_and_their_env(tmp_path):
    pytest.importorskip("h5py")
    from policyopt.buffers import OfflineDataset

    rng = np.random.default_rng(0)
    n = 400
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    data = OfflineDataset(
        obs,
        rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        np.zeros(n, bool),
        (np.arange(n) % 100 == 99),
        rng.normal(size=(n, 3)).astype(np.float32),
        metadata={"env_id": "Pendulum-v1"},
    )
    path = data.save_d4rl(tmp_path / "pendulum-random.hdf5")
    rows = sweep.cli(
        [
            "--algos",
            "bc",
            "--datasets",
            str(path),
            "--total-steps",
            "40",
            "--root",
            str(tmp_path / "root"),
            "--no-ray",
            "--threads-per-trial",
            "1",
            "--set",
            "eval_episodes=1",
            "algo.batch_size=32",
        ]
    )
    run = tmp_path / "root/bc/pendulum-random/default/seed0"
    assert [r["status"] for r in rows] == ["done"] and (run / "checkpoint.pt").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "Pendulum-v1" and config["dataset"] == str(path.resolve())  # evaluated on the dataset's env
    assert [r["step"] for r in read_metrics(run) if "eval/return" in r][-1] == 40


# --- threads, locks and unreadable runs ----------------------------------------------------------------------
def test_in_process_trials_get_rays_thread_split_and_record_it(tmp_path, capsys):
    """--no-ray gives each trial the threads Ray would (2 cores over 2 trials: 1), not every core; the rows and
    config.json record the count, and a resumed run keeps its own count whatever the sweep's split now is."""
    root = tmp_path / "root"
    base = ["--algos", "ppo", "--envs", "CartPole-v1", "--root", str(root), "--cpus", "2", "--no-ray", "--set", *TINY]
    rows = sweep.cli([*base, "--seeds", "0", "1", "--total-steps", "128"])
    out = capsys.readouterr().out
    assert "1 torch thread each (the split of 2 cores over the grid's 2 trials that Ray uses" in out
    assert [r["torch_threads"] for r in rows] == [1, 1]
    for seed in (0, 1):
        config = json.loads((root / f"ppo/CartPole-v1/default/seed{seed}/config.json").read_text())
        assert config["torch_threads"] == 1 and config.get("torch_threads_used", 1) == 1
    assert re.search(r"\| ppo/CartPole-v1/default/seed0 \| done \| [-0-9.]+ @ 128 \| 1 \| ", out)

    # longer now, and 2 threads per trial: seed0 continues with the 1 thread it ran with, so it continues exactly
    rows = sweep.cli([*base, "--seeds", "0", "--total-steps", "256", "--threads-per-trial", "2", "--resume"])
    out = capsys.readouterr().out
    assert "seed0 resumes with the 1 torch threads it ran with (this sweep's split is 2)" in out
    assert [(r["status"], r["torch_threads"]) for r in rows] == [("resumed", 1)]
    assert json.loads((root / "ppo/CartPole-v1/default/seed0/config.json").read_text())["torch_threads"] == 1


def test_one_sweep_per_root(tmp_path):
    root = tmp_path / "root"
    with hold_lock(root, "sweep") as pid:
        with pytest.raises(SystemExit, match=rf"sweep.py: {re.escape(str(root))} is in use by another sweep \(PID {pid} "):
            sweep.cli(ppo_sweep(root, seeds=(0,), extra=["--no-ray"]))
    assert sorted(p.name for p in root.iterdir()) == [".lock"]  # no trial started


def test_resume_moves_a_run_with_an_unreadable_checkpoint_aside(tmp_path, capsys):
    """--resume with a truncated checkpoint: the run's files are moved aside byte for byte (never deleted), a
    line says what went where, and the trial starts again; while another process holds the run dir, nothing moves."""
    root = tmp_path / "root"
    sweep.cli(ppo_sweep(root, seeds=(0,), extra=["--no-ray"]))
    run = root / "ppo/CartPole-v1/default/seed0"
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a save cut short
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name not in ("train.log", ".lock")}
    assert {"checkpoint.pt", "config.json", "metrics.jsonl"} <= set(before) and any(n.startswith("events.out.") for n in before)
    log_before = (run / "train.log").read_text()
    capsys.readouterr()

    with hold_lock(run, "training run") as pid:  # a training run on that dir: the sweep must not move its files
        with pytest.raises(SystemExit, match=rf"{re.escape(str(run))} is in use by another training run \(PID {pid} "):
            sweep.cli(ppo_sweep(root, seeds=(0,), extra=["--no-ray", "--resume"]))
    assert {name: (run / name).read_bytes() for name in before} == before

    rows = sweep.cli(ppo_sweep(root, seeds=(0,), extra=["--no-ray", "--resume"]))
    out = capsys.readouterr().out
    asides = [p for p in run.iterdir() if p.is_dir() and p.name.startswith("aside-")]
    assert len(asides) == 1 and asides[0].name.endswith("-unreadable-checkpoint")
    assert {p.name: p.read_bytes() for p in asides[0].iterdir()} == before  # every file kept, byte for byte
    line = next(ln for ln in out.splitlines() if "moved" in ln)
    assert re.fullmatch(
        rf"sweep.py: ppo/CartPole-v1/default/seed0: its checkpoint cannot be read \(.*checkpoint.pt.*\); "
        rf"moved .*checkpoint.pt.* to {re.escape(str(asides[0]))} \(nothing deleted\); starting it again from step 0",
        line,
    )
    assert all(name in line for name in before)
    log = (run / "train.log").read_text()
    assert log.startswith(log_before) and f"to {asides[0]} (nothing deleted)" in log  # the trial's log says so too
    assert [r["status"] for r in rows] == ["done"]
    assert_complete(run, 256)
