"""Tests of algos.logger.RunLogger / read_metrics and scripts/plot.py."""

from __future__ import annotations

import importlib.util
import itertools
import json
import struct
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from algos.logger import RunLogger, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def load_plot_module():
    spec = importlib.util.spec_from_file_location("policyopt_plot", ROOT / "scripts" / "plot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def write_synthetic_runs(root: Path) -> tuple[list[Path], dict[str, float]]:
    """2 algorithms x 3 seeds with different logging steps; returns run dirs and final levels."""
    finals = {"fast": 100.0, "slow": 40.0}
    rng = np.random.default_rng(0)
    dirs = []
    for algo, level in finals.items():
        for seed in range(3):
            run = root / algo / f"seed_{seed}"
            # a fake clock, 10 ms per call: wall-clock "time" columns made the time axis flaky
            # (one run could finish, in microseconds, before another's first row)
            clock = itertools.count(0.0, 0.01)
            with mock.patch("algos.logger.time.perf_counter", lambda: next(clock)):
                with RunLogger(run, use_tensorboard=False) as logger:
                    for step in range(0, 10_001 + 37 * seed, 500 + 50 * seed):
                        logger.log(step, {"eval/return": level * step / 10_000 + rng.normal(0, 2), "loss": 1.0})
            dirs.append(run)
    return dirs, finals


def test_plot_runs_two_groups_three_seeds(tmp_path):
    plot = load_plot_module()
    dirs, finals = write_synthetic_runs(tmp_path / "runs")
    out = plot.plot_runs(dirs, metric="eval/return", x="step", out=tmp_path / "figs" / "curves.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100

    # the grouping and the curves behind the figure
    groups = plot.aggregate(dirs, "eval/return", "step")
    assert set(groups) == {"fast", "slow"} and all(g["n"] == 3 for g in groups.values())
    for label, level in finals.items():
        g = groups[label]
        assert g["grid"][0] == 0 and g["grid"][-1] == 9600  # the range every seed covers
        slope = np.polyfit(g["grid"], g["mean"], 1)[0] * 10_000
        assert slope == pytest.approx(level, rel=0.05)
        assert np.all(g["lo"] <= g["mean"] + 1e-9) and np.all(g["mean"] <= g["hi"] + 1e-9)
        assert np.mean(g["hi"] - g["lo"]) > 0
    assert plot.group_label(dirs[0], r"runs/(\w+)/seed") == "fast"
    x, y = plot.load_curve(dirs[0], "eval/return", "step")
    assert x[0] == 0 and np.all(np.diff(x) > 0) and y.shape == x.shape
    lo, hi = plot.bootstrap_band(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), np.random.default_rng(0))
    assert np.all(lo <= np.array([2.0, 3.0])) and np.all(np.array([2.0, 3.0]) <= hi) and np.all(lo < hi)

    by_time = plot.plot_runs(dirs, metric="eval/return", x="time", out=tmp_path / "t.png", group_by=r"/(fast|slow)/")
    assert by_time.exists()
    with pytest.raises(ValueError, match="no finite values"):
        plot.plot_runs(dirs, metric="missing", x="step", out=tmp_path / "m.png")


def test_plot_cli(tmp_path):
    plot = load_plot_module()
    dirs, _ = write_synthetic_runs(tmp_path / "runs")
    out = tmp_path / "cli.png"
    plot.main([*map(str, dirs), "--metric", "eval/return", "--x", "step", "--out", str(out)])
    assert out.exists() and out.stat().st_size > 0
