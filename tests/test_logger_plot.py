"""Tests of policyopt.algos.core.logger.RunLogger / read_metrics and scripts/plot.py."""

from __future__ import annotations

import glob
import itertools
import json
import shlex
import struct
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from policyopt.algos.core.logger import RunLogger, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def load_plot_module():
    from policyopt.algos.run import plot

    return plot


def test_logger_writes_jsonl_tensorboard_and_config(tmp_path):
    run = tmp_path / "runs" / "ppo" / "seed_0"
    config = {"lr": 3e-4, "device": torch.device("cpu"), "env": "CartPole-v1"}
    with RunLogger(run, config=config) as logger:
        logger.log(0, {"loss": torch.tensor(1.5), "eval/return": 10, "kl": torch.tensor([0.25], dtype=torch.float64)})
        logger.log(100, {"loss": 0.5})
    records = read_metrics(run)
    assert [r["step"] for r in records] == [0, 100]
    assert records[0]["loss"] == 1.5 and records[0]["eval/return"] == 10.0 and records[0]["kl"] == 0.25
    assert records[1] == {"step": 100, "time": records[1]["time"], "loss": 0.5}
    assert 0 <= records[0]["time"] <= records[1]["time"]
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"

    events = list(run.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(0, 1.5), (100, 0.5)]


def test_logger_rejects_non_scalars_and_reads_torn_file(tmp_path):
    logger = RunLogger(tmp_path, use_tensorboard=False)
    with pytest.raises(ValueError, match="scalar"):
        logger.log(0, {"x": torch.zeros(3)})
    logger.log(1, {"x": 2.0})
    logger.close()
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "x"')  # a run killed mid-write
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]


def write_synthetic_runs(
    root: Path, finals: dict[str, float] | None = None, seeds: int = 3, env_id: str = "CartPole-v1", config: bool = True
) -> tuple[list[Path], dict[str, float]]:
    """Runs ``root/<algo>/<env_id>/seed<k>`` with different logging steps; returns run dirs and final levels.

    With ``config``, each run has the config.json the training scripts write.
    """
    finals = {"ppo": 100.0, "spo": 40.0} if finals is None else finals
    rng = np.random.default_rng(0)
    dirs = []
    for algo, level in finals.items():
        for seed in range(seeds):
            run = root / algo / env_id / f"seed{seed}"
            record = {
                "algo": algo.upper(),
                "env_id": env_id,
                "seed": seed,
                "num_envs": 2,
                "backend": None,
                "algo_config": {"num_steps": 16},
            }
            # a fake clock, 10 ms per call: wall-clock "time" columns made the time axis flaky
            # (one run could finish, in microseconds, before another's first row)
            clock = itertools.count(0.0, 0.01)
            with mock.patch("policyopt.algos.core.logger.time.perf_counter", lambda: next(clock)):
                with RunLogger(run, use_tensorboard=False, config=record if config else None) as logger:
                    for step in range(0, 10_001 + 37 * seed, 500 + 50 * seed):
                        logger.log(step, {"eval/return": level * step / 10_000 + rng.normal(0, 2), "loss": 1.0})
            dirs.append(run)
    return dirs, finals


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100


def test_plot_runs_two_groups_three_seeds(tmp_path):
    plot = load_plot_module()
    dirs, finals = write_synthetic_runs(tmp_path / "runs")
    out = plot.plot_runs(dirs, metric="eval/return", x="step", out=tmp_path / "figs" / "curves.png")
    assert_png(out)

    # the grouping and the curves behind the figure
    groups = plot.aggregate(dirs, "eval/return", "step")
    assert set(groups) == {"PPO CartPole-v1", "SPO CartPole-v1"} and all(g["n"] == 3 for g in groups.values())
    for algo, level in finals.items():
        g = groups[f"{algo.upper()} CartPole-v1"]
        assert g["grid"][0] == 0 and g["grid"][-1] == 9600  # the range every seed covers
        slope = np.polyfit(g["grid"], g["mean"], 1)[0] * 10_000
        assert slope == pytest.approx(level, rel=0.05)
        assert np.all(g["lo"] <= g["mean"] + 1e-9) and np.all(g["mean"] <= g["hi"] + 1e-9)
        assert np.mean(g["hi"] - g["lo"]) > 0
    assert plot.group_label(dirs[0], r"runs/(\w+)/") == "ppo"
    x, y = plot.load_curve(dirs[0], "eval/return", "step")
    assert x[0] == 0 and np.all(np.diff(x) > 0) and y.shape == x.shape
    lo, hi = plot.bootstrap_band(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), np.random.default_rng(0))
    assert np.all(lo <= np.array([2.0, 3.0])) and np.all(np.array([2.0, 3.0]) <= hi) and np.all(lo < hi)

    by_time = plot.plot_runs(dirs, metric="eval/return", x="time", out=tmp_path / "t.png", group_by=r"/(ppo|spo)/")
    assert by_time.exists()
    with pytest.raises(ValueError, match="no finite values"):
        plot.plot_runs(dirs, metric="missing", x="step", out=tmp_path / "m.png")


def test_plot_groups_by_algo_and_env_two_algos_two_seeds(tmp_path):
    """runs/ppo/E/seed* runs/spo/E/seed* are two curves (grouping by the parent dir drew one, n=4)."""
    plot = load_plot_module()
    dirs, _ = write_synthetic_runs(tmp_path / "runs", seeds=2)
    groups = plot.aggregate(dirs, "eval/return", "step")
    assert {label: g["n"] for label, g in groups.items()} == {"PPO CartPole-v1": 2, "SPO CartPole-v1": 2}
    fig = plot.draw(groups, "eval/return", "step", ["CartPole-v1"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["PPO CartPole-v1 (n=2)", "SPO CartPole-v1 (n=2)"]
    assert "eval/return" in ax.get_title() and "CartPole-v1" in ax.get_title()
    assert_png(plot.plot_runs(dirs, "eval/return", "step", out=tmp_path / "curves.png"))
    # an explicit grouping still overrides the default
    assert set(plot.aggregate(dirs, "eval/return", "step", group_by=r"seed(\d)")) == {"0", "1"}


def test_plot_grouping_falls_back_to_directory_layout(tmp_path):
    """Old config.json ("algo" held the config dict) or none at all: runs/<algo>/<env_id>/seed<k> names the run."""
    plot = load_plot_module()
    new, _ = write_synthetic_runs(tmp_path / "new" / "runs", {"ppo": 100.0}, seeds=1, env_id="Pendulum-v1")
    old, _ = write_synthetic_runs(tmp_path / "old" / "runs", {"ppo": 100.0}, seeds=1, env_id="Pendulum-v1")
    (old[0] / "config.json").write_text(json.dumps({"algo": {"num_steps": 16}, "env_id": "Pendulum-v1", "seed": 0}))
    bare, _ = write_synthetic_runs(tmp_path / "bare" / "runs", {"ppo": 100.0}, seeds=1, env_id="Pendulum-v1", config=False)
    assert plot.run_info(old[0]) == plot.run_info(bare[0]) == plot.run_info(new[0]) == ("PPO", "Pendulum-v1")
    groups = plot.aggregate(new + old + bare, "eval/return", "step")
    assert list(groups) == ["PPO Pendulum-v1"] and groups["PPO Pendulum-v1"]["n"] == 3
    # config.json wins over the layout
    (bare[0] / "config.json").write_text(json.dumps({"algo": "TRPO", "env_id": "Acrobot-v1"}))
    assert plot.run_info(bare[0]) == ("TRPO", "Acrobot-v1")


README_PLOT = (
    "python scripts/plot.py runs/ppo/Pendulum-v1/seed* runs/spo/Pendulum-v1/seed* --metric eval/return --x step --out curves.png"
)


def test_plot_cli_readme_command(tmp_path, monkeypatch, capsys):
    """The README's plot command line, globs expanded as a shell would, run through main()."""
    plot = load_plot_module()
    write_synthetic_runs(tmp_path / "runs", seeds=2, env_id="Pendulum-v1")
    monkeypatch.chdir(tmp_path)
    words = shlex.split(README_PLOT)
    assert words[:2] == ["python", "scripts/plot.py"]
    argv = [arg for word in words[2:] for arg in (sorted(glob.glob(word)) if "*" in word else [word])]
    assert len(argv) == 4 + 6
    out = plot.main(argv)
    assert out == Path("curves.png") and capsys.readouterr().out.strip() == "curves.png"
    assert_png(tmp_path / "curves.png")
    assert README_PLOT in plot.__doc__  # the --help example is the README's


def test_plot_cli_errors(tmp_path, capsys):
    plot = load_plot_module()
    with pytest.raises(SystemExit, match="no run directories given"):
        plot.main([])
    with pytest.raises(SystemExit, match=r"no metrics.jsonl in .*missing"):
        plot.main([str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as e:
        plot.main(["--help"])
    assert e.value.code == 0 and "runs/ppo/Pendulum-v1/seed*" in capsys.readouterr().out
