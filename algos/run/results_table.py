"""Run the MuJoCo 1M-step table and render it from its results file.

    python scripts/results_table.py run --algos trpo spo --envs Hopper-v4 HalfCheetah-v4 Walker2d-v4 --seeds 0 1 2
    python scripts/results_table.py record runs/mujoco1m/spo  # record finished runs (a scripts/sweep.py root)
    python scripts/results_table.py render                  # print the Markdown table
    python scripts/results_table.py render --check docs/results-mujoco.md   # fail if the page's copy differs

``run`` trains each (algo, env, seed) one after another with the training script's own
command line (a run whose directory already holds a finished run is recorded, not retrained), reads the evaluation curve from the run's ``metrics.jsonl`` and appends one
JSON line per run to ``results/mujoco_1m.jsonl``: the command, seed, commit, machine,
curve, final and peak return. ``render`` turns that file into the results page's table, which sits
between ``<!-- results:mujoco_1m -->`` markers, so a typed number cannot drift from its source.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import tyro

from policyopt.algos.run.rundir import is_aside

ROOT = Path(__file__).resolve().parents[2]  # the repository (an editable install): its results/ and scripts/
RESULTS = ROOT / "results" / "mujoco_1m.jsonl"
MARKER = "<!-- results:mujoco_1m -->"
ENVS = ("Hopper-v4", "HalfCheetah-v4", "Walker2d-v4")
# Each algorithm's reference recipe: its preset and rollout shape (see algos/core/presets.py).
# TRPO: rl-zoo's batch of 2,048 (2 envs x 1024) collected as 8 x 256: at 2 envs, per-step torch
# overhead made 1M steps take ~27 min on our 2-core machine, against ~12 at 8 envs.
# A name is the script's algorithm, or <algo>-<variant> for a variant of its recipe.
RECIPES = {
    "ppo": ["--preset", "mujoco", "--num-envs", "8", "--algo.num-steps", "256", "--env-compile"],
    "trpo": ["--preset", "mujoco", "--num-envs", "8", "--algo.num-steps", "256", "--env-compile"],
    "trpo-annealkl": [
        "--preset",
        "mujoco",
        "--num-envs",
        "8",
        "--algo.num-steps",
        "256",
        "--env-compile",
        "--algo.anneal-max-kl",
    ],
    "spo": ["--preset", "mujoco", "--num-envs", "8", "--env-compile"],
}
# Published 1M-step numbers the table sits beside (mean +/- standard error over 3 seeds).
PUBLISHED = {
    "ppo": (
        "CleanRL PPO, published",
        {"Hopper-v4": "2383 +/- 272", "HalfCheetah-v4": "1443 +/- 46", "Walker2d-v4": "2288 +/- 572"},
    ),
    "trpo": (
        "sb3-contrib TRPO, published",
        {"Hopper-v4": "3372 +/- 215", "HalfCheetah-v4": "1803 +/- 46", "Walker2d-v4": "4502 +/- 234"},
    ),
}
LABELS = {
    "ppo": "PPO (ours, `--preset mujoco`)",
    "trpo": "TRPO (ours, `--preset mujoco`)",
    "trpo-annealkl": "TRPO (ours, `--preset mujoco --algo.anneal-max-kl`)",
    "spo": "SPO (ours, `--preset mujoco`)",
}


@dataclass
class Run:
    """Train every (algo, env, seed) in turn and append each run's record to the results file."""

    algos: list[str] = field(default_factory=lambda: ["trpo", "spo"])
    envs: list[str] = field(default_factory=lambda: list(ENVS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    total_steps: int = 1_000_000
    """env steps per run"""
    eval_every: int = 100_000
    """env steps between deterministic evaluations (10 episodes each)"""
    out: Path = RESULTS
    runs_root: Path = Path("runs/table")
    """where the run directories go"""


@dataclass
class Record:
    """Append the records of finished run directories (e.g. a scripts/sweep.py root) to the results file."""

    run_dirs: tyro.conf.Positional[list[Path]]
    """run directories, or directories to search for them (each holds config.json and metrics.jsonl)"""
    total_steps: int = 1_000_000
    """a run is finished when its last evaluation is at or past this step; unfinished ones are refused"""
    label: str | None = None
    """the record's algo (default: the run's algorithm, lower-case); a variant of a recipe is <algo>-<variant>"""
    out: Path = RESULTS


@dataclass
class Render:
    """Print the Markdown table of the results file, or check a page's copy of it."""

    results: Path = RESULTS
    check: Path | None = None
    """a Markdown file whose table between the markers must equal the rendered one"""


def command_for(algo: str, env_id: str, seed: int, total_steps: int, eval_every: int, run_dir: Path) -> list[str]:
    return [
        "python",
        f"scripts/train_{algo.split('-')[0]}.py",
        "--env-id",
        env_id,
        *RECIPES[algo],
        "--seed",
        str(seed),
        "--total-steps",
        str(total_steps),
        "--eval-every",
        str(eval_every),
        "--eval-episodes",
        "10",
        "--no-progress",
        "--run-dir",
        str(run_dir),
    ]


def eval_curve(run_dir: Path) -> list[list[float]]:
    """``[[env_step, eval_return], ...]`` from a run's ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [[r["step"], r["eval/return"]] for r in rows if "eval/return" in r]


def _last_time(run_dir: Path) -> float:
    """Seconds from the run's start to its last logged row (``metrics.jsonl``'s ``time``)."""
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["time"]


def provenance(short: bool = False) -> tuple[str, str]:
    """The commit a run is recorded against (``-dirty`` when the library's code has uncommitted changes) and the machine."""
    commit = subprocess.run(
        ["git", "rev-parse", *(["--short"] if short else []), "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "algos", "nets", "buffers", "vecenvs", "scripts"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    return commit + ("-dirty" if dirty else ""), machine


def run_record(
    algo: str, env_id: str, seed: int, command: str, commit: str, machine: str, seconds: float, curve: list[list[float]]
) -> dict:
    """One line of the results file: the run's command and provenance, its evaluation curve, final and peak return."""
    return {
        "algo": algo,
        "env_id": env_id,
        "seed": seed,
        "command": command,
        "commit": commit,
        "machine": machine,
        "seconds": round(seconds, 1),
        "curve": curve,
        "final": curve[-1][1],
        "peak": max(r for s, r in curve if s > 0),
    }


def run(args: Run) -> None:
    commit, machine = provenance()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for algo in args.algos:
        for env_id in args.envs:
            for seed in args.seeds:
                run_dir = args.runs_root / algo / env_id / f"seed{seed}"
                cmd = command_for(algo, env_id, seed, args.total_steps, args.eval_every, run_dir)
                curve = eval_curve(ROOT / run_dir) if (ROOT / run_dir / "metrics.jsonl").is_file() else []
                if curve and curve[-1][0] >= args.total_steps:  # finished earlier (an interrupted sweep): record it
                    seconds = _last_time(ROOT / run_dir)
                else:
                    print("$", shlex.join(cmd), flush=True)
                    t0 = time.perf_counter()
                    subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
                    seconds = time.perf_counter() - t0
                    curve = eval_curve(ROOT / run_dir)
                record = run_record(algo, env_id, seed, shlex.join(cmd), commit, machine, seconds, curve)
                with args.out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(
                    f"{algo} {env_id} seed {seed}: final {record['final']:.0f}, peak {record['peak']:.0f}, {seconds:.0f} s",
                    flush=True,
                )


def record(args: Record) -> None:
    commit, machine = provenance()
    runs = sorted({p.parent for d in args.run_dirs for p in Path(d).rglob("config.json") if not is_aside(p.relative_to(d))})
    if not runs:
        raise SystemExit(f"results_table.py record: no run directories (config.json) under {', '.join(map(str, args.run_dirs))}")
    records = []
    for run_dir in runs:
        config = json.loads((run_dir / "config.json").read_text())
        curve = eval_curve(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
        if not curve or curve[-1][0] < args.total_steps:
            reached = f"step {curve[-1][0]:,}" if curve else "no evaluation"
            raise SystemExit(
                f"results_table.py record: {run_dir} is unfinished ({reached}, expected {args.total_steps:,}); "
                "finish it (scripts/sweep.py --resume) first"
            )
        algo = config["algo"].lower()
        command = shlex.join(["python", f"scripts/train_{algo}.py", *config["command"]]).replace(f"{ROOT}/", "")
        records.append(
            run_record(args.label or algo, config["env_id"], config["seed"], command, commit, machine, _last_time(run_dir), curve)
        )
    with args.out.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    for r in records:
        print(f"{r['algo']} {r['env_id']} seed {r['seed']}: final {r['final']:.0f}, peak {r['peak']:.0f}")


def run_key(record: dict) -> tuple:
    """Which run a results record is of (every results file's records: MuJoCo, offline, generative)."""
    return (
        record["algo"],
        record.get("table"),
        record.get("dataset") or record["env_id"],
        record.get("weighting"),
        record["seed"],
        record.get("candidates", 1),
    )


def latest_records(results: Path, keep: Callable[[dict], bool] = lambda r: True) -> list[tuple[int, dict]]:
    """(line number, record) of each run's last record in a results file, of the records ``keep`` accepts:
    a later record of the same run (``run_key``) replaces an earlier one. A line that is not a record is a ValueError."""
    latest: dict[tuple, tuple[int, dict]] = {}
    for number, line in enumerate(results.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            key = run_key(r)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{results}:{number}: not a run record ({e})") from None
        if keep(r):
            latest[key] = (number, r)
    return list(latest.values())


def load(results: Path) -> list[dict]:
    """The records of a results file, the last one of each run."""
    return [r for _, r in latest_records(results)]


def render(records: list[dict]) -> str:
    """The Markdown table: per algorithm and env, the mean final return over n seeds, then each seed's final (peak), by seed."""
    algos = [a for a in RECIPES if any(r["algo"] == a for r in records)]
    lines = ["| algo | seeds | " + " | ".join(ENVS) + " |", "|---|---|" + "---|" * len(ENVS)]
    for i, algo in enumerate(algos):
        family = algo.split("-")[0]
        cells, seeds = [], set()
        for env_id in ENVS:
            rs = sorted((r for r in records if r["algo"] == algo and r["env_id"] == env_id), key=lambda r: r["seed"])
            seeds |= {r["seed"] for r in rs}
            if not rs:
                cells.append("")
                continue
            each = ", ".join(f"{r['final']:.0f} ({r['peak']:.0f})" for r in rs)
            cells.append(f"**{statistics.mean(r['final'] for r in rs):.0f}** (n={len(rs)}): {each}")
        lines.append(f"| {LABELS[algo]} | {', '.join(map(str, sorted(seeds)))} | " + " | ".join(cells) + " |")
        last_of_family = i + 1 == len(algos) or algos[i + 1].split("-")[0] != family
        if family in PUBLISHED and last_of_family:  # the published row below our rows of that algorithm
            name, numbers = PUBLISHED[family]
            lines.append(f"| {name} | 3 | " + " | ".join(numbers[e] for e in ENVS) + " |")
    return "\n".join(lines)


def readme_table(markdown: str, marker: str = MARKER) -> str:
    """The text between the two ``marker`` lines of a Markdown file."""
    parts = markdown.split(marker)
    if len(parts) != 3:
        raise ValueError(f"expected exactly two {marker!r} markers, found {len(parts) - 1}")
    return parts[1].strip()


def main(args: Run | Record | Render) -> None:
    if isinstance(args, Run):
        run(args)
        return
    if isinstance(args, Record):
        record(args)
        return
    table = render(load(args.results))
    if args.check is None:
        print(table)
        return
    if readme_table(args.check.read_text()) != table:
        raise SystemExit(
            f"the table in {args.check} differs from {args.results}; regenerate it with: python scripts/results_table.py render"
        )
    print(f"{args.check} matches {args.results}")


def cli(argv: list[str] | None = None) -> None:
    """The command line: its subcommands (run, record, render)."""
    main(tyro.cli(Run | Record | Render, args=argv))  # type: ignore[arg-type]
