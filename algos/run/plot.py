"""Plot learning curves: mean over seeds with a 95% bootstrap confidence band.

    python scripts/plot.py runs/ppo/Pendulum-v1/seed* runs/spo/Pendulum-v1/seed* --metric eval/return --x step --out curves.png

Runs are grouped by algorithm and env id, read from each run's ``config.json`` (``"algo"``,
``"env_id"``); where it lacks them, from the layout ``runs/<algo>/<env_id>/seed<k>``. The
label is e.g. ``PPO Pendulum-v1 (n=2)``. ``--group-by REGEX`` groups by a regex on the run
path instead (the capture groups joined by spaces, or the whole match, is the label). Each run is
interpolated onto a common x grid over the range that all runs of its group cover, so the
mean is never extrapolated.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402

from policyopt.algos import ALGORITHMS  # noqa: E402
from policyopt.algos.core.logger import CONFIG_FILE, read_metrics  # noqa: E402

GRID_POINTS = 200
BOOTSTRAP_SAMPLES = 2000


def run_info(run_dir: str | Path) -> tuple[str, str]:
    """``(algo, env_id)`` of a run: from its config.json, else from ``runs/<algo>/<env_id>/seed<k>``.

    Older config.json files hold the algorithm's config dict under ``"algo"``; then the
    directory layout names the algorithm.
    """
    run_dir = Path(run_dir).resolve()
    config = {}
    try:
        loaded = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}
    except (OSError, json.JSONDecodeError):
        pass  # no (readable) config.json: the layout alone names the run
    algo, env_id = config.get("algo"), config.get("env_id")
    algo = algo if isinstance(algo, str) and algo else run_dir.parent.parent.name
    env_id = env_id if isinstance(env_id, str) and env_id else run_dir.parent.name
    by_key = {key: cls.__name__ for key, cls in ALGORITHMS.items()}
    return by_key.get(algo.lower(), algo), env_id  # "ppo" (a directory) and "PPO" (a class) are one algorithm


def group_label(run_dir: Path, group_by: str | None = None) -> str:
    """The label that gathers the seeds of one configuration: ``"<algo> <env_id>"`` by default."""
    if group_by is None:
        return " ".join(run_info(run_dir))
    match = re.search(group_by, str(run_dir))
    if match is None:
        raise ValueError(f"--group-by {group_by!r} does not match run dir {run_dir}")
    return " ".join(g for g in match.groups() if g) if match.groups() else match.group(0)


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


def draw(groups: dict[str, dict[str, np.ndarray | int]], metric: str, x: str, env_ids: Sequence[str]) -> plt.Figure:
    """A figure with one mean curve and 95% band per group, titled by the metric and env id(s)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, g in groups.items():
        (line,) = ax.plot(g["grid"], g["mean"], label=f"{label} (n={g['n']})")
        ax.fill_between(g["grid"], g["lo"], g["hi"], color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_title(f"{metric} on {', '.join(env_ids)}")
    ax.set_xlabel("step (env steps; offline runs: gradient updates)" if x == "step" else "wall time (s)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_runs(
    run_dirs: Sequence[str | Path], metric: str, x: str = "step", out: str | Path = "curves.png", group_by: str | None = None
) -> Path:
    """Plot one mean curve with a 95% band per group of runs into ``out``; returns its path."""
    groups = aggregate(run_dirs, metric, x, group_by)
    fig = draw(groups, metric, x, sorted({run_info(run_dir)[1] for run_dir in run_dirs}))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


@dataclass
class Args:
    run_dirs: tyro.conf.Positional[list[Path]]
    """run directories holding metrics.jsonl"""
    metric: str = "eval/return"
    """metric key to plot"""
    x: Literal["step", "time"] = "step"
    """x axis: env steps or wall time"""
    out: Path = Path("curves.png")
    """output image"""
    group_by: str | None = None
    """regex on the run path whose first group is the label (default: algorithm and env id)"""


def main(argv: Sequence[str] | None = None) -> Path:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if not args.run_dirs:
        raise SystemExit("plot.py: no run directories given; expected e.g. runs/ppo/Pendulum-v1/seed* runs/spo/Pendulum-v1/seed*")
    try:
        out = plot_runs(args.run_dirs, args.metric, args.x, args.out, args.group_by)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"plot.py: {e}") from None
    print(out)
    return out
