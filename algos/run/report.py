"""Report run directories as one Markdown table: mean and IQM with 95% stratified bootstrap CIs (rliable).

    python scripts/report.py runs/offline --out report.md
    python scripts/report.py runs/table/ppo runs/table/spo --reps 2000 --seed 0
    python scripts/report.py runs/offline --profiles profiles.png --improvement IQL BC
    python scripts/report.py runs/table --group-by 'table/([^/]+)/'   # trpo and trpo-annealkl as two algorithms

A path is a run directory, a directory to search for them, or a results file (``results/*.jsonl``, one JSON
record per run, as ``scripts/results_table.py`` and ``scripts/offline_table.py`` write them): a record gives its
final evaluation (``final``; offline records hold the normalized score, with the raw return from the file's
``references``), its final step (the last point of its ``curve``) and its ``command``, whose flags other than
the seed and run directory are the settings the seeds of a cell must share. The MuJoCo results table (docs/results-mujoco.md) is
``python scripts/report.py results/mujoco_1m.jsonl``.

A run directory is one the training scripts write (``config.json`` and ``metrics.jsonl``); a directory
that is not one is searched for them. Each run contributes its final evaluation: the last record of
``metrics.jsonl`` holding ``--metric``, never the best one, and the ``--normalized`` score of that same
record where it has one (offline runs log ``eval/normalized_score``). A cell is one algorithm (the
``algo`` of config.json, or the ``--group-by`` label) on one task (the dataset's file name for offline
runs, else the env id), so runs of different tasks are never averaged. Per cell the table gives the
number of runs, the final step, and the mean and interquartile mean of the runs x 1 score matrix with
95% percentile CIs of ``--reps`` stratified bootstrap resamples (``rliable.library.get_interval_estimates``);
each algorithm on two or more tasks gets an aggregate row of its runs x tasks matrix of normalized
scores, where every task has them and the same number of runs. ``--profiles`` draws performance
profiles of normalized scores and ``--improvement A B`` adds the probability that A beats B.

Refused, naming the runs: a run without an evaluation record (incomplete; ``--skip-incomplete`` leaves
it out with a note), runs of one cell whose final evaluations are at different steps (incomparable;
``--allow-unequal-steps``), and runs of one cell whose settings in config.json differ (label them apart
with ``--group-by``).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tyro

from policyopt.algos.run import plot  # run_info and group_label: how plot.py names a run's algorithm
from policyopt.algos.run import results_table  # latest_records: which records are the same run
from policyopt.algos.core.logger import CONFIG_FILE, METRICS_FILE, read_metrics  # noqa: E402
from policyopt.algos.run.rundir import is_aside  # noqa: E402

try:
    from rliable import library as rly
    from rliable import metrics
except ImportError as e:
    raise SystemExit(f"report.py needs rliable ({e}): pip install -e '.[report]'") from None

# Settings that may differ between the seeds of one cell: bookkeeping, speed, what the final-step
# check covers (total_steps) and the dataset's path (its name is the task); the rest of config.json must agree.
FREE_SETTINGS = {
    "seed",
    "run_dir",
    "command",
    "resume",
    "progress",
    "torch_threads",
    "device",
    "backend",
    "env_compile",
    "compile",
    "checkpoint_every",
    "eval_every",
    "total_steps",
    "dataset",
    "algo",
    "capture_video",
}


class ReportError(ValueError):
    """Runs that cannot be reported as asked; the message names them."""


@dataclass(frozen=True)
class Final:
    """One run's final evaluation."""

    path: Path
    algo: str
    task: str
    step: int
    score: float
    normalized: float | None
    settings: dict[str, Any]


@dataclass
class Args:
    run_dirs: tyro.conf.Positional[list[Path]]
    """run directories, directories to search for them, or results files (.jsonl records)"""
    metric: str = "eval/return"
    """the metrics.jsonl key of an evaluation"""
    normalized: str | None = "eval/normalized_score"
    """the key of the normalized score, reported where every run of a cell has it (None: leave it out)"""
    reps: int = 2000
    """bootstrap resamples per confidence interval"""
    seed: int = 0
    """seed of the bootstrap (every interval is drawn from it afresh)"""
    out: Path | None = None
    """also write the Markdown to this file"""
    group_by: str | None = None
    """regex on the run path whose capture groups name the algorithm (default: config.json's algo)"""
    skip_incomplete: bool = False
    """leave out runs without an evaluation record, with a note, instead of failing"""
    allow_unequal_steps: bool = False
    """report cells whose runs' final evaluations are at different steps"""
    profiles: Path | None = None
    """draw performance profiles of normalized scores into this image"""
    where: tuple[str, ...] = ()
    """KEY=VALUE: of a results file, only the records whose field KEY is VALUE (e.g. table=generative)"""
    improvement: tuple[str, str] | None = None
    """two algorithms A B: add the probability of improvement of A over B on their shared tasks"""


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """The run directories among ``paths`` and under them, each once."""
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            raise ReportError(f"{path} is not a directory")
        if (path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file():
            inner = [path]
        else:
            inner = sorted(
                {f.parent for name in (CONFIG_FILE, METRICS_FILE) for f in path.rglob(name) if not is_aside(f.relative_to(path))}
            )  # files a restart moved aside are no run
            if not inner:
                raise ReportError(f"no run directories ({CONFIG_FILE} or {METRICS_FILE}) under {path}")
        found.update((p.resolve(), p) for p in inner)
    return sorted(found.values())


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """config.json flattened one level (``algo_config.lr``), without the settings seeds may differ in."""
    flat = {}
    for key, value in config.items():
        for name, v in value.items() if isinstance(value, dict) else [(None, value)]:
            if key not in FREE_SETTINGS and name not in FREE_SETTINGS:
                flat[key if name is None else f"{key}.{name}"] = v
    return flat


def read_run(run_dir: Path, metric: str, normalized: str | None, group_by: str | None = None) -> Final | str:
    """The run's final evaluation, or why it has none."""
    try:
        records = read_metrics(run_dir)
    except FileNotFoundError:
        return f"{run_dir}: no {METRICS_FILE}"
    evals = [r for r in records if metric in r]
    if not evals:
        return f"{run_dir}: no {metric!r} record in {METRICS_FILE}"
    last = evals[-1]
    if not math.isfinite(last[metric]):
        return f"{run_dir}: final {metric} is {last[metric]}"
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        config = {}  # the layout runs/<algo>/<task>/seedN names the run (plot.run_info)
    config = config if isinstance(config, dict) else {}
    algo, env_id = plot.run_info(run_dir)
    if group_by is not None:
        try:
            algo = plot.group_label(run_dir, group_by)
        except ValueError as e:
            raise ReportError(str(e)) from None
    dataset = config.get("dataset")
    task = Path(dataset).stem if isinstance(dataset, str) and dataset else env_id  # datasets of one env are tasks apart
    norm = last.get(normalized) if normalized else None
    return Final(
        run_dir,
        algo,
        task,
        int(last["step"]),
        float(last[metric]),
        float(norm) if isinstance(norm, (int, float)) and math.isfinite(norm) else None,
        _settings(config),
    )


# Command-line flags that may differ between the seeds of one cell of a results file.
FREE_FLAGS = {
    "--seed",
    "--run-dir",
    "--no-progress",
    "--progress",
    "--torch-threads",
    "--env-compile",
    "--backend",
    "--checkpoint-every",
    "--eval-every",
    "--total-steps",
    "--dataset",
    "--device",
}


def _command_settings(command: str) -> dict[str, Any]:
    """A record's command as {flag: value}, without the flags seeds may differ in (the script is the algorithm)."""
    words = shlex.split(command)
    flags: dict[str, Any] = {}
    key = None
    for word in words[2:]:  # python scripts/train_<algo>.py
        if word.startswith("--"):
            key = word
            flags[key] = True
        elif key is not None:
            flags[key] = word if flags[key] is True else f"{flags[key]} {word}"
    return {k: v for k, v in flags.items() if k not in FREE_FLAGS}


def read_records(path: Path, where: Sequence[str] = ()) -> list[Final | str]:
    """The final evaluations of a results file's records whose fields match every ``KEY=VALUE`` of ``where``
    (a later record of the same run replaces an earlier one)."""
    wanted = {}
    for entry in where:
        key, sep, value = entry.partition("=")
        if not sep:
            raise ReportError(f"--where {entry!r}: expected KEY=VALUE, e.g. table=generative")
        wanted[key] = value
    try:
        latest = results_table.latest_records(path, lambda r: all(str(r.get(k)) == v for k, v in wanted.items()))
    except ValueError as e:
        raise ReportError(f"{e}; expected a JSON object with algo, env_id or dataset, seed, final, curve and command") from None
    if not latest:
        raise ReportError(f"{path}: no records" + (f" with {' '.join(where)}" if where else ""))
    finals: list[Final | str] = []
    for number, r in latest:
        where = Path(f"{path}:{number}")
        if not r.get("curve"):
            finals.append(
                f"{where}: {r['algo']} on {r.get('dataset') or r['env_id']} seed {r['seed']} has no evaluation curve, so its final step is unknown"
            )
            continue
        label = r["algo"] if r.get("weighting") in (None, "uniform") else f"{r['algo']}-{r['weighting']}"
        if r.get("candidates", 1) != 1:
            label += f"-{r['candidates']}cand"
        final = float(r["final"])
        if r.get("references"):  # offline: the record holds the normalized score
            low, high = r["references"]
            score, normalized = low + final / 100 * (high - low), final
        else:
            score, normalized = final, None
        finals.append(
            Final(
                where,
                label,
                r.get("dataset") or r["env_id"],
                int(r["curve"][-1][0]),
                score,
                normalized,
                # a results file's tables and dataset builds (their reference scores) are not pooled
                {**_command_settings(r.get("command", "")), "table": r.get("table"), "references": r.get("references")},
            )
        )
    return finals


def cells_of(finals: list[Final]) -> dict[tuple[str, str], list[Final]]:
    """The runs of each (task, algorithm), in that order."""
    cells: dict[tuple[str, str], list[Final]] = {}
    for r in finals:
        cells.setdefault((r.task, r.algo), []).append(r)
    return dict(sorted(cells.items()))


def check_cell(runs: list[Final], allow_unequal_steps: bool = False) -> None:
    """Refuse a cell whose runs are not seeds of one experiment."""
    where = f"{runs[0].algo} on {runs[0].task}"
    steps = {r.step for r in runs}
    if len(steps) > 1 and not allow_unequal_steps:
        each = ", ".join(f"{r.path} (step {r.step})" for r in runs)
        raise ReportError(
            f"incomparable runs of {where}: their final evaluations are at different steps: {each}; "
            "finish them to one budget or pass --allow-unequal-steps"
        )
    first = runs[0]
    for run in runs[1:]:
        for key in first.settings.keys() & run.settings.keys():  # a key of a newer config is not a difference
            if first.settings[key] != run.settings[key]:
                raise ReportError(
                    f"runs of {where} differ in {key}: {first.settings[key]!r} in {first.path}, "
                    f"{run.settings[key]!r} in {run.path}; label them apart with --group-by REGEX (results files: pick records with --where KEY=VALUE)"
                )


def _mean_iqm(scores: np.ndarray) -> np.ndarray:
    return np.array([metrics.aggregate_mean(scores), metrics.aggregate_iqm(scores)])


def _seeded(seed: int, fn, *args, **kwargs):
    """``fn`` with numpy's global RNG seeded, then restored: rliable 1.2 resamples with ``np.random.choice``
    and ignores its ``random_state``. Each call starts from ``seed``, so a cell's interval does not depend
    on which other cells the report holds."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return fn(*args, **kwargs)
    finally:
        np.random.set_state(state)


def estimate(scores: np.ndarray, reps: int, seed: int) -> dict[str, Any]:
    """Mean and IQM of a runs x tasks matrix with their 95% stratified bootstrap percentile CIs."""
    point, ci = _seeded(seed, rly.get_interval_estimates, {"x": scores}, _mean_iqm, reps=reps)
    return {"mean": point["x"][0], "iqm": point["x"][1], "mean_ci": tuple(ci["x"][:, 0]), "iqm_ci": tuple(ci["x"][:, 1])}


def score_matrix(runs: list[Final], tasks: Sequence[str], normalized: bool) -> np.ndarray | str:
    """The runs x tasks matrix of one algorithm's scores, or why there is none."""
    columns = [[r.normalized if normalized else r.score for r in runs if r.task == t] for t in tasks]
    if normalized and any(v is None for c in columns for v in c):
        return "not every task has normalized scores"
    if len({len(c) for c in columns}) > 1:
        return "runs per task differ (" + ", ".join(f"{t}: {len(c)}" for t, c in zip(tasks, columns)) + ")"
    return np.array(columns, dtype=float).T


def _fmt(stats: dict[str, Any], key: str) -> str:
    lo, hi = stats[f"{key}_ci"]
    return f"{stats[key]:.1f} [{lo:.1f}, {hi:.1f}]"


def improvement(finals: list[Final], a: str, b: str, reps: int, seed: int) -> str:
    """One line: the probability that a run of A beats one of B on a task, averaged over shared tasks, with its CI."""
    names = {r.algo.lower(): r.algo for r in finals}
    for name in (a, b):
        if name.lower() not in names:
            raise ReportError(f"--improvement: no runs of {name!r}; the algorithms are {', '.join(sorted(set(names.values())))}")
    a, b = names[a.lower()], names[b.lower()]
    tasks = sorted({r.task for r in finals if r.algo == a} & {r.task for r in finals if r.algo == b})
    if not tasks:
        raise ReportError(f"--improvement: {a} and {b} share no task")
    # Raw scores: the probability of improvement compares runs within a task, so a task's scale cancels.
    matrices = [score_matrix([r for r in finals if r.algo == name], tasks, normalized=False) for name in (a, b)]
    for name, m in zip((a, b), matrices):
        if isinstance(m, str):
            raise ReportError(f"--improvement: {name}: {m}")
    point, ci = _seeded(
        seed,
        rly.get_interval_estimates,
        {"x": matrices},
        lambda x, y: np.array([metrics.probability_of_improvement(x, y)]),
        reps=reps,
    )
    lo, hi = ci["x"][:, 0]
    return f"P({a} > {b}) = {point['x'][0]:.2f} [{lo:.2f}, {hi:.2f}] over {len(tasks)} task{'s' * (len(tasks) > 1)} ({', '.join(tasks)})"


def report(finals: list[Final], metric: str, reps: int, seed: int) -> str:
    """The Markdown table: a row per (task, algorithm), then an aggregate row per algorithm."""
    has_norm = any(r.normalized is not None for r in finals)
    header = ["task", "algorithm", "runs", "final step", f"{metric} mean [95% CI]", f"{metric} IQM [95% CI]"]
    header += ["normalized mean [95% CI]", "normalized IQM [95% CI]"] if has_norm else []
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for (task, algo), runs in cells_of(finals).items():
        raw = estimate(np.array([[r.score] for r in runs]), reps, seed)
        steps = sorted({r.step for r in runs})
        row = [task, algo, str(len(runs)), "/".join(f"{s:,}" for s in steps), _fmt(raw, "mean"), _fmt(raw, "iqm")]
        if has_norm:
            if all(r.normalized is not None for r in runs):
                norm = estimate(np.array([[r.normalized] for r in runs]), reps, seed)
                row += [_fmt(norm, "mean"), _fmt(norm, "iqm")]
            else:
                row += ["", ""]
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    for algo in sorted({r.algo for r in finals}):
        runs = [r for r in finals if r.algo == algo]
        tasks = sorted({r.task for r in runs})
        if len(tasks) < 2 or all(r.normalized is None for r in runs):
            continue
        matrix = score_matrix(runs, tasks, normalized=True)
        if isinstance(matrix, str):
            notes.append(f"*{algo}: no aggregate row, {matrix}.*")
            continue
        agg = estimate(matrix, reps, seed)
        lines.append(f"| all {len(tasks)} tasks | {algo} | {matrix.size} | | | | {_fmt(agg, 'mean')} | {_fmt(agg, 'iqm')} |")
    lines += [
        "",
        f"*Final evaluation of each run (its last `{metric}` record); 95% percentile CIs from {reps} stratified "
        f"bootstrap resamples over runs (rliable {version('rliable')}, seed {seed}).*",
        *notes,
    ]
    return "\n".join(lines)


def draw_profiles(finals: list[Final], out: Path, reps: int, seed: int) -> Path:
    """Performance profiles (fraction of runs above each normalized score) of every algorithm with a full matrix."""
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    tasks = sorted({r.task for r in finals})
    matrices = {
        algo: score_matrix([r for r in finals if r.algo == algo], tasks, normalized=True)
        for algo in sorted({r.algo for r in finals})
    }
    missing = {algo: m for algo, m in matrices.items() if isinstance(m, str)}
    if missing:
        raise ReportError(
            "--profiles needs every algorithm on every task with normalized scores: "
            + "; ".join(f"{algo}: {why}" for algo, why in missing.items())
        )
    values = np.concatenate([m.ravel() for m in matrices.values()])
    taus = np.linspace(min(values.min(), 0.0), values.max(), 101)
    # the keys are rliable's line labels
    matrices = {f"{algo} ({m.shape[0]} runs x {len(tasks)} tasks)": m for algo, m in matrices.items()}
    profiles, cis = _seeded(seed, rly.create_performance_profile, matrices, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        ax=ax,
        xlabel="normalized score (τ)",
        ylabel="fraction of runs with score > τ",
    )
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(args: Args) -> str:
    if not args.run_dirs:
        raise ReportError("no run directories given; expected e.g. runs/offline or runs/ppo/Hopper-v4/seed*")
    if args.reps < 1:
        raise ReportError(f"--reps must be a positive number of resamples, got {args.reps}")
    files = [p for p in args.run_dirs if p.is_file()]
    if files and args.group_by is not None:
        raise ReportError("--group-by names runs by their path; results files name them by their records' algo")
    read = [r for f in files for r in read_records(f, args.where)]
    dirs = [p for p in args.run_dirs if not p.is_file()]
    read += [read_run(p, args.metric, args.normalized, args.group_by) for p in (find_runs(dirs) if dirs else [])]
    incomplete = [r for r in read if isinstance(r, str)]
    if incomplete and not args.skip_incomplete:
        raise ReportError(
            "incomplete runs (no evaluation to report): " + "; ".join(incomplete) + "; finish them or pass --skip-incomplete"
        )
    for why in incomplete:
        print(f"report.py: skipped incomplete run {why}", file=sys.stderr)
    finals = [r for r in read if isinstance(r, Final)]
    if not finals:
        raise ReportError("no complete runs to report")
    for runs in cells_of(finals).values():
        check_cell(runs, args.allow_unequal_steps)
    table = report(finals, args.metric, args.reps, args.seed)
    if args.improvement is not None:
        table += "\n\n" + improvement(finals, *args.improvement, args.reps, args.seed)
    if args.profiles is not None:
        draw_profiles(finals, args.profiles, args.reps, args.seed)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return table


def cli(argv: Sequence[str] | None = None) -> str:
    """Parse ``argv``, print the table and return it; bad input exits with its message."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    try:
        table = main(args)
    except ReportError as e:
        raise SystemExit(f"report.py: {e}") from None
    print(table)
    return table
