"""Plot learning curves: mean over seeds with a 95% bootstrap confidence band.

    python scripts/plot.py runs/ppo/seed_* runs/trpo/seed_* --metric eval/return --x step --out curves.png

Runs are grouped by the name of their parent directory (``runs/ppo/seed_3`` -> ``ppo``),
or by ``--group-by REGEX`` applied to the run path (the first capture group, or the whole
match, is the label). Each run is interpolated onto a common x grid over the range that
all runs of its group cover, so the mean is never extrapolated.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from algos.logger import read_metrics  # noqa: E402

GRID_POINTS = 200
BOOTSTRAP_SAMPLES = 2000


def group_label(run_dir: Path, group_by: str | None = None) -> str:
    """The label that gathers the seeds of one configuration."""
    if group_by is None:
        return run_dir.resolve().parent.name
    match = re.search(group_by, str(run_dir))
    if match is None:
        raise ValueError(f"--group-by {group_by!r} does not match run dir {run_dir}")
    return match.group(1) if match.groups() else match.group(0)


def load_curve(run_dir: Path, metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, metric) points of one run, sorted by x, skipping records without the metric."""
    xs, ys = [], []
    for record in read_metrics(run_dir):
        value = record.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and x in record:
            xs.append(float(record[x]))
            ys.append(float(value))
    if not xs:
        raise ValueError(f"run {run_dir} has no finite values of {metric!r}")
    order = np.argsort(xs, kind="stable")
    return np.asarray(xs)[order], np.asarray(ys)[order]


def bootstrap_band(curves: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence band of the mean over the seeds (rows) of ``curves``."""
    n = curves.shape[0]
    if n < 2:
        return curves[0], curves[0]
    idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    means = curves[idx].mean(axis=1)  # [samples, grid]
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def aggregate(
    run_dirs: Sequence[str | Path], metric: str, x: str = "step", group_by: str | None = None
) -> dict[str, dict[str, np.ndarray | int]]:
    """Per group label: ``grid``, ``mean``, 95% band ``lo``/``hi`` over seeds, and ``n`` runs."""
    if x not in ("step", "time"):
        raise ValueError(f"x must be 'step' or 'time', got {x!r}")
    if not run_dirs:
        raise ValueError("no run directories given")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run_dir in map(Path, run_dirs):
        groups.setdefault(group_label(run_dir, group_by), []).append(load_curve(run_dir, metric, x))
    rng = np.random.default_rng(0)  # a fixed seed: the same inputs give the same figure
    result = {}
    for label, curves in sorted(groups.items()):
        lo = max(c[0][0] for c in curves)
        hi = min(c[0][-1] for c in curves)
        if hi < lo:
            raise ValueError(f"the runs of group {label!r} share no common {x} range")
        grid = np.linspace(lo, hi, GRID_POINTS)
        ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
        band_lo, band_hi = bootstrap_band(ys, rng)
        result[label] = {"grid": grid, "mean": ys.mean(axis=0), "lo": band_lo, "hi": band_hi, "n": len(curves)}
    return result


def plot_runs(
    run_dirs: Sequence[str | Path], metric: str, x: str = "step", out: str | Path = "curves.png", group_by: str | None = None
) -> Path:
    """Plot one mean curve with a 95% band per group of runs into ``out``; returns its path."""
    groups = aggregate(run_dirs, metric, x, group_by)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, g in groups.items():
        (line,) = ax.plot(g["grid"], g["mean"], label=f"{label} (n={g['n']})")
        ax.fill_between(g["grid"], g["lo"], g["hi"], color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel("environment steps" if x == "step" else "wall time (s)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="run directories holding metrics.jsonl")
    parser.add_argument("--metric", default="eval/return", help="metric key to plot")
    parser.add_argument("--x", choices=("step", "time"), default="step", help="x axis")
    parser.add_argument("--out", default="curves.png", help="output image")
    parser.add_argument("--group-by", default=None, help="regex on the run path whose first group is the label")
    args = parser.parse_args(argv)
    print(plot_runs(args.run_dirs, args.metric, args.x, args.out, args.group_by))


if __name__ == "__main__":
    main()
