"""Run the offline results tables (docs/results-offline.md) and render them from their results file.

    python scripts/offline_table.py run --jobs 2                       # every cell, two runs at a time
    python scripts/offline_table.py run --tables mixed --algos iql      # a part of the grid
    python scripts/offline_table.py reference --d3rlpy-python /tmp/d3venv/bin/python   # d3rlpy's IQL, same files
    python scripts/offline_table.py run --tables generative            # the generative methods beside BC, TD3+BC, IQL
    python scripts/offline_table.py resample                           # their final checkpoints with 50 candidates
    python scripts/offline_table.py render                               # print the Markdown tables
    python scripts/offline_table.py render --check docs/results-offline.md   # fail if the page's copy differs

``run`` trains each cell with the training script's own command line (``scripts/train_<algo>.py
--dataset ...``), on the datasets ``scripts/make_dataset.py`` builds (docs/datasets.md's commands), reads
the evaluation curve from the run's ``metrics.jsonl`` and appends one JSON line per run to
``results/offline.jsonl``: the command, commit, machine, seconds, the curve of normalized scores
and the final checkpoint's score. A run directory that already holds a finished run is recorded,
not retrained. ``reference`` trains d3rlpy's IQL on the same files at the same budget, in d3rlpy's
own venv (see ``scripts/bench_offline.py``), and evaluates it on gymnasium's env with the same
episodes. ``render`` writes the tables that sit between ``<!-- results:offline -->`` markers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

ROOT = Path(__file__).resolve().parents[2]  # the repository (an editable install): its results/ and scripts/
from policyopt.algos.run import results_table  # noqa: E402  (the MuJoCo table's module: its table-marker reader)

RESULTS = ROOT / "results" / "offline.jsonl"
MARKER = "<!-- results:offline -->"
STANDARD = [f"{env}-{level}-v5" for env in ("hopper", "walker2d") for level in ("medium", "medium-replay", "medium-expert")]
MIXED = [f"{env}-{level}-v5" for env in ("hopper", "walker2d") for level in ("random-expert-0.05", "random-medium-0.05")]
GENERATIVE = ("diffusion_bc", "diffusion_ql", "edp", "consistency_bc", "consistency_ac", "fql")
# "generative" reruns BC, TD3+BC and IQL beside the generative methods: a table compares runs on one build of the files
TABLES = {
    "standard": (("bc", "td3bc", "iql", "cql", "rebrac"), STANDARD, ("uniform",)),
    "mixed": (("iql", "td3bc", "cql"), MIXED, ("uniform", "aw", "rw")),
    "generative": (("bc", "td3bc", "iql", *GENERATIVE), STANDARD, ("uniform",)),
}
# Candidate resampling, evaluated on the generative table's final checkpoints (scripts/evaluate.py --act-candidates)
RESAMPLE = {"algos": ("diffusion_ql", "edp", "consistency_ac", "fql"), "candidates": 50, "temperature": 1.0}
# Gradient updates per run on this 2-core CPU (CORL runs 1M): each algorithm's at about 1-2.5 minutes.
UPDATES = {"bc": 10_000, "td3bc": 5_000, "iql": 5_000, "rebrac": 2_000, "cql": 600, **{algo: 5_000 for algo in GENERATIVE}}
# Settings that differ from an algorithm's defaults in these tables: FQL at the others' 3x256 (its
# default 4x512 GELU runs at a fifth of the speed here), with its Q term normalised by mean |Q| so
# that its alpha of 10 is scale-free (unnormalised, alpha is tuned per env: FQL's README)
EXTRA = {"fql": ["--algo.actor-hidden", "256", "256", "256", "--algo.critic-hidden", "256", "256", "256", "--algo.normalize-q"]}
# Consistency-BC/AC in 5,000 updates: the policy itself as the consistency target (improved CT's, not
# Ding & Jin's EMA copy, which stays at its random start for 1,000 updates and then lags by ~1,000),
# and for Consistency-AC their 100 / delta-sigma loss scaling on every dataset (they use it on
# medium-expert) with their eta of 1 for it: without it the Q term outweighs a consistency loss of
# ~0.001 and the critic diverges (algos/offline/generative/consistency.py)
CONSISTENCY = {
    "consistency_bc": ["--algo.consistency-target", "online"],
    "consistency_ac": ["--algo.consistency-target", "online", "--algo.scale-consistency-loss"],
}
# updates/s measured here (bench_offline.py, bench_generative.py): the order runs start in, longest first
RATES = {
    "bc": 270,
    "td3bc": 100,
    "iql": 70,
    "rebrac": 20,
    "cql": 3.6,
    "diffusion_bc": 45,
    "diffusion_ql": 15,
    "edp": 27,
    "consistency_bc": 45,
    "consistency_ac": 30,
    "fql": 18,
}
# ReBRAC's per-dataset (actor_bc_coef, critic_bc_coef), CORL's for Gym-MuJoCo v2 (algos/offline/rebrac.py)
REBRAC_COEFS = {
    "hopper-medium": (0.01, 0.01),
    "hopper-medium-replay": (0.05, 0.5),
    "hopper-medium-expert": (0.1, 0.01),
    "walker2d-medium": (0.05, 0.1),
    "walker2d-medium-replay": (0.05, 0.01),
    "walker2d-medium-expert": (0.01, 0.01),
}
# CORL's final scores on D4RL's v2 files, 1M updates, mean over 4 seeds (corl-team/CORL README)
CORL = {
    "bc": (53.51, 29.81, 52.30, 63.23, 21.80, 98.96),
    "td3bc": (60.37, 64.42, 101.17, 82.71, 85.62, 110.03),
    "iql": (67.53, 97.43, 107.42, 80.91, 82.15, 111.72),
    "cql": (59.08, 95.11, 99.26, 80.75, 73.09, 109.56),
    "rebrac": (102.29, 94.98, 109.45, 85.82, 84.25, 111.86),
}
NAMES = {
    "bc": "BC",
    "td3bc": "TD3+BC",
    "iql": "IQL",
    "cql": "CQL",
    "rebrac": "ReBRAC",
    "d3rlpy-iql": "d3rlpy IQL",
    "diffusion_bc": "Diffusion-BC",
    "diffusion_ql": "Diffusion-QL",
    "edp": "EDP",
    "consistency_bc": "Consistency-BC",
    "consistency_ac": "Consistency-AC",
    "fql": "FQL",
}
EVAL_EPISODES, EVAL_SEED_OFFSET = 10, 10_000

# d3rlpy's IQL (CORL's settings: 256x256, batch 256, expectile 0.7, beta 3, return-based reward
# scaling x1000, standardized observations, cosine actor lr), evaluated deterministically on
# gymnasium's env, one episode per seed seed+10000+i as our evaluation env seeds its copies.
D3RLPY_IQL = r"""
import json, sys, time, h5py, numpy as np, torch, gymnasium as gym
import d3rlpy
torch.set_num_threads(1)
path, env_id, updates, seed, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
d3rlpy.seed(seed)
with h5py.File(path, "r") as f:
    a = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
a["timeouts"] &= ~a["terminals"].astype(bool)  # D4RL's convention, which d3rlpy asserts (files of the earlier recipe can set both)
data = d3rlpy.dataset.MDPDataset(a["observations"], a["actions"], a["rewards"], a["terminals"], timeouts=a["timeouts"])
enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[256, 256])
iql = d3rlpy.algos.IQLConfig(batch_size=256, actor_encoder_factory=enc, critic_encoder_factory=enc, value_encoder_factory=enc,
    expectile=0.7, weight_temp=3.0, max_weight=100.0,
    actor_optim_factory=d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=d3rlpy.optimizers.lr_schedulers.CosineAnnealingLRFactory(T_max=updates)),
    observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
    reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0)).create(device="cpu:0")
t0 = time.perf_counter()
iql.fit(data, n_steps=updates, n_steps_per_epoch=updates, show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
seconds = time.perf_counter() - t0
env = gym.make(env_id)
returns = []
for i in range(episodes):
    obs, _ = env.reset(seed=seed + 10000 + i)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(iql.predict(obs[None].astype(np.float32))[0])
        total += float(r); done = term or trunc
    returns.append(total)
print(json.dumps({"return": float(np.mean(returns)), "seconds": seconds, "d3rlpy": d3rlpy.__version__}))
"""


@dataclass
class Run:
    """Train every cell of the chosen tables and append each run's record to the results file."""

    tables: list[str] = field(default_factory=lambda: list(TABLES))
    """which tables: standard, mixed"""
    algos: list[str] = field(default_factory=lambda: list(UPDATES))
    """restrict to these algorithms"""
    datasets: list[str] | None = None
    """restrict to these datasets (names without .hdf5; default: each table's)"""
    seeds: list[int] = field(default_factory=lambda: [0])
    jobs: int = 2
    """runs at a time (each on one torch thread)"""
    dataset_dir: Path = Path("datasets")
    runs_root: Path = Path("runs/offline")
    out: Path = RESULTS


@dataclass
class Reference:
    """d3rlpy's IQL on the standard datasets at our IQL's budget, from d3rlpy's own venv."""

    d3rlpy_python: str
    """the python of a venv with d3rlpy, h5py and gymnasium[mujoco] installed"""
    datasets: list[str] = field(default_factory=lambda: list(STANDARD))
    seeds: list[int] = field(default_factory=lambda: [0])
    jobs: int = 2
    dataset_dir: Path = Path("datasets")
    out: Path = RESULTS


@dataclass
class Resample:
    """Evaluate the generative table's final checkpoints again with candidate resampling (RESAMPLE's settings)."""

    seeds: list[int] = field(default_factory=lambda: [0])
    dataset_dir: Path = Path("datasets")
    runs_root: Path = Path("runs/offline")
    out: Path = RESULTS


@dataclass
class Render:
    """Print the Markdown tables of the results file, or check a page's copy of them."""

    results: Path = RESULTS
    check: Path | None = None
    """a Markdown file whose tables between the markers must equal the rendered ones"""


def env_id_of(dataset: str) -> str:
    return {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}[dataset.split("-")[0]]


def command_for(algo: str, dataset: str, weighting: str, seed: int, dataset_dir: Path, run_dir: Path) -> list[str]:
    updates = UPDATES[algo]
    cmd = [
        "python",
        f"scripts/train_{algo}.py",
        "--dataset",
        str(dataset_dir / f"{dataset}.hdf5"),
        "--env-id",
        env_id_of(dataset),
        "--seed",
        str(seed),
        "--total-steps",
        str(updates),
        "--eval-every",
        str(updates // 2),
        "--eval-episodes",
        str(EVAL_EPISODES),
        "--checkpoint-every",
        "0",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        "--algo.weighting",
        weighting,
    ]
    coefs = REBRAC_COEFS.get(dataset.removesuffix("-v5"))
    if algo == "rebrac" and coefs is not None:
        cmd += ["--algo.actor-bc-coef", str(coefs[0]), "--algo.critic-bc-coef", str(coefs[1])]
    return cmd + CONSISTENCY.get(algo, []) + EXTRA.get(algo, [])


def eval_curve(run_dir: Path) -> list[list[float]]:
    """``[[update, normalized score], ...]`` from a run's ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [[r["step"], round(r["eval/normalized_score"], 2)] for r in rows if "eval/normalized_score" in r]


def references(path: Path, data: Any = None) -> list[float]:
    """The file's (random, expert) reference returns, to 0.1: what tells two builds of a dataset apart
    (``data``: the file already loaded, so it is not read twice)."""
    if data is None:
        from policyopt.buffers import OfflineDataset

        data = OfflineDataset.load(ROOT / path)
    return [round(float(v), 1) for v in data.reference_scores()]


def _append(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:  # one write per line: parallel runs never interleave a record
        f.write(json.dumps(record) + "\n")


def run(args: Run) -> None:
    commit, machine = results_table.provenance(short=True)
    cells = []
    for table in args.tables:
        algos, datasets, weightings = TABLES[table]
        for algo in (a for a in algos if a in args.algos):
            for dataset in (d for d in datasets if args.datasets is None or d in args.datasets):
                for weighting in weightings:
                    cells += [(table, algo, dataset, weighting, seed) for seed in args.seeds]
    cells.sort(key=lambda c: -UPDATES[c[1]] / RATES[c[1]])

    def one(cell: tuple) -> None:
        table, algo, dataset, weighting, seed = cell
        run_dir = args.runs_root / algo / dataset / f"{weighting}-seed{seed}"
        cmd = command_for(algo, dataset, weighting, seed, args.dataset_dir, run_dir)
        curve = eval_curve(ROOT / run_dir) if (ROOT / run_dir / "metrics.jsonl").is_file() else []
        done = bool(curve) and curve[-1][0] >= UPDATES[algo]  # finished earlier: recorded, not retrained
        t0 = time.perf_counter()
        if not done:
            print("$", shlex.join(cmd), flush=True)
            subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            curve = eval_curve(ROOT / run_dir)
        record = {
            "table": table,
            "algo": algo,
            "dataset": dataset,
            "weighting": weighting,
            "seed": seed,
            "updates": UPDATES[algo],
            "references": references(args.dataset_dir / f"{dataset}.hdf5"),
            "command": shlex.join(cmd),
            "commit": commit,
            "machine": machine,
            "seconds": round(time.perf_counter() - t0, 1) if not done else None,
            "curve": curve,
            "final": curve[-1][1],
        }
        _append(args.out, record)
        print(f"{algo} {dataset} {weighting} seed {seed}: final normalized {record['final']:.1f}", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, cells))


def reference(args: Reference) -> None:
    from policyopt.buffers import OfflineDataset

    commit, machine = results_table.provenance(short=True)

    def one(cell: tuple) -> None:
        dataset, seed = cell
        path = args.dataset_dir / f"{dataset}.hdf5"
        cmd = [
            args.d3rlpy_python,
            "-c",
            "<offline_table.D3RLPY_IQL>",
            str(path),
            env_id_of(dataset),
            str(UPDATES["iql"]),
            str(seed),
            str(EVAL_EPISODES),
        ]
        out = subprocess.run([args.d3rlpy_python, "-c", D3RLPY_IQL, *cmd[3:]], cwd=ROOT, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"d3rlpy failed on {dataset}:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        data = OfflineDataset.load(ROOT / path)
        score = float(data.normalized_score(result["return"]))
        _append(
            args.out,
            {
                "table": "standard",
                "algo": "d3rlpy-iql",
                "dataset": dataset,
                "weighting": "uniform",
                "seed": seed,
                "updates": UPDATES["iql"],
                "references": references(path, data),
                "command": shlex.join(cmd),
                "commit": commit,
                "machine": machine,
                "seconds": round(result["seconds"], 1),
                "d3rlpy": result["d3rlpy"],
                "curve": [[UPDATES["iql"], round(score, 2)]],
                "final": round(score, 2),
            },
        )
        print(f"d3rlpy-iql {dataset} seed {seed}: final normalized {score:.1f}", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, [(d, s) for d in args.datasets for s in args.seeds]))


def resample(args: Resample) -> None:
    """One record per run of the generative table's Q-guided methods: the same final checkpoint and
    evaluation episodes, acting by a softmax(Q / temperature) draw among ``candidates`` samples."""
    from policyopt.buffers import OfflineDataset

    commit, machine = results_table.provenance(short=True)
    n, temperature = RESAMPLE["candidates"], RESAMPLE["temperature"]
    for algo in RESAMPLE["algos"]:
        for dataset in STANDARD:
            for seed in args.seeds:
                run_dir = args.runs_root / algo / dataset / f"uniform-seed{seed}"
                cmd = [
                    "python",
                    "scripts/evaluate.py",
                    str(run_dir),
                    "--episodes",
                    str(EVAL_EPISODES),
                    "--seed",
                    str(seed + EVAL_SEED_OFFSET),
                    "--act-candidates",
                    str(n),
                    "--act-temperature",
                    str(temperature),
                ]
                if not (ROOT / run_dir / "checkpoint.pt").is_file():
                    print(f"skipped {run_dir}: no checkpoint (run the generative table first)", flush=True)
                    continue
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                path = args.dataset_dir / f"{dataset}.hdf5"
                data = OfflineDataset.load(ROOT / path)
                score = round(float(data.normalized_score(result["return_mean"])), 2)
                _append(
                    args.out,
                    {
                        "table": "generative",
                        "algo": algo,
                        "dataset": dataset,
                        "weighting": "uniform",
                        "seed": seed,
                        "candidates": n,
                        "updates": UPDATES[algo],
                        "references": references(path, data),
                        "command": shlex.join(cmd),
                        "commit": commit,
                        "machine": machine,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "curve": [[UPDATES[algo], score]],
                        "final": score,
                    },
                )
                print(f"{algo} {dataset} seed {seed}, {n} candidates: final normalized {score:.1f}", flush=True)


def _cell(records: list[dict]) -> str:
    if not records:
        return ""
    mean = sum(r["final"] for r in records) / len(records)
    return f"{mean:.1f}" if len(records) == 1 else f"{mean:.1f} (n={len(records)})"


def builds(records: list[dict], table: str) -> str:
    """The table's dataset build: each env's (random, expert) reference returns, which must be one per env."""
    refs: dict[str, set] = {}
    for r in records:
        if r["table"] == table:
            refs.setdefault(r["dataset"].split("-")[0], set()).add(tuple(r["references"]))
    mixed = {env: sorted(v) for env, v in refs.items() if len(v) > 1}
    if mixed:
        raise SystemExit(
            f"the {table} table mixes builds of the datasets (reference returns {mixed}); rerun its cells on one build"
        )
    return ", ".join(f"{env} {lo:g} / {hi:g}" for env, ((lo, hi),) in sorted(refs.items()))


def score_table(records: list[dict], table: str, rows: list[tuple[str, int]], corl: bool) -> list[str]:
    """Rows ``(algo, candidates)`` of one table over the standard datasets, with a mean column."""
    short = [d.removesuffix("-v5") for d in STANDARD]
    lines = [
        f"*{table.capitalize()} table, files with reference returns (random / expert): {builds(records, table)}.*",
        "",
        "| algorithm (updates) | " + " | ".join(short) + " | mean |",
        "|---|" + "---:|" * (len(short) + 1),
    ]
    for algo, n in rows:
        cells = [
            [
                r
                for r in records
                if r["table"] == table and r["algo"] == algo and r["dataset"] == d and r.get("candidates", 1) == n
            ]
            for d in STANDARD
        ]
        if not any(cells):
            continue
        finals = [sum(r["final"] for r in c) / len(c) for c in cells if c]
        mean = f"{sum(finals) / len(finals):.1f}" if len(finals) == len(STANDARD) else ""
        updates = UPDATES["iql" if algo == "d3rlpy-iql" else algo]
        label = f"{NAMES[algo]} ({updates:,})" + (f", {n} candidates" if n > 1 else "")
        lines.append(f"| {label} | " + " | ".join(_cell(c) for c in cells) + f" | {mean} |")
        if corl and algo in CORL:
            lines.append(
                f"| *CORL {NAMES[algo]}, D4RL v2, 1M* | "
                + " | ".join(f"*{v:.1f}*" for v in CORL[algo])
                + f" | *{sum(CORL[algo]) / len(CORL[algo]):.1f}* |"
            )
    return lines


def render(records: list[dict]) -> str:
    """Three Markdown tables of final normalized scores (mean over seeds): the standard datasets by
    algorithm with CORL's D4RL v2 numbers beside them, the mixed datasets by algorithm and weighting,
    and the generative methods beside Gaussian baselines rerun on the same files (with and without
    candidate resampling). Each table states its build of the files."""
    standard = [(a, 1) for a in ("bc", "td3bc", "iql", "d3rlpy-iql", "cql", "rebrac")]
    lines = score_table(records, "standard", standard, corl=True)
    short = [d.removesuffix("-v5") for d in MIXED]
    lines += [
        "",
        f"*Mixed table, files with reference returns (random / expert): {builds(records, 'mixed')}.*",
        "",
        "| algorithm (updates), weighting | " + " | ".join(short) + " |",
        "|---|" + "---:|" * len(short),
    ]
    for algo in TABLES["mixed"][0]:
        for weighting in TABLES["mixed"][2]:
            cells = [
                [
                    r
                    for r in records
                    if r["table"] == "mixed" and r["algo"] == algo and r["weighting"] == weighting and r["dataset"] == d
                ]
                for d in MIXED
            ]
            if any(cells):
                label = {"uniform": "uniform", "aw": "AW", "rw": "RW"}[weighting]
                lines.append(f"| {NAMES[algo]} ({UPDATES[algo]:,}), {label} | " + " | ".join(_cell(c) for c in cells) + " |")
    generative = [(a, 1) for a in TABLES["generative"][0]] + [(a, RESAMPLE["candidates"]) for a in RESAMPLE["algos"]]
    if any(r["table"] == "generative" for r in records):
        lines += [""] + score_table(records, "generative", generative, corl=False)
    return "\n".join(lines)


def readme_table(markdown: str) -> str:
    """The text between the two ``<!-- results:offline -->`` markers of a Markdown file."""
    return results_table.readme_table(markdown, MARKER)


def main(args: Run | Reference | Resample | Render) -> None:
    if isinstance(args, Run):
        run(args)
    elif isinstance(args, Reference):
        reference(args)
    elif isinstance(args, Resample):
        resample(args)
    else:
        table = render(results_table.load(args.results))
        if args.check is None:
            print(table)
        elif readme_table(args.check.read_text()) != table:
            raise SystemExit(
                f"the tables in {args.check} differ from {args.results}; regenerate them with: "
                "python scripts/offline_table.py render"
            )
        else:
            print(f"{args.check} matches {args.results}")


def cli(argv: list[str] | None = None) -> None:
    """The command line: its subcommands (run, reference, resample, render)."""
    main(tyro.cli(Run | Reference | Resample | Render, args=argv))  # type: ignore[arg-type]
