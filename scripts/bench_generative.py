"""Generative policies' speed, in one run: action-sampling latency and offline training updates/s.

Three tables, the first two compared side by side in the same run (CPU by default, one torch thread):

1. ``latency``: milliseconds per sampling call at batch 1 and 4,096, HalfCheetah-sized (obs 17,
   actions 6), every network a 3x256 Mish MLP: the Gaussian (``GaussianActor.act``); diffusion
   at K = 5 / 20 / 100 with DDPM and DDIM (``sample_steps = K``) and DPM-Solver++(2M)
   (``min(K, 15)`` steps, EDP's setting); flow with 1 / 5 / 10 Euler steps; consistency with 1 / 2
   steps; FQL's one-step actor. Each eager and under ``torch.compile`` of the sampling call (mode
   default, ``dynamic=False``, one compile per batch size; its seconds are reported apart and
   excluded from the timing; a failed compile prints ``failed`` in its cell). The median of timed
   calls after warm-up; the number of calls adapts to ``--cell-seconds`` per cell.
2. ``updates``: training updates/s (``learn``, eager, batch 256, the same 3x256 Mish networks) of
   EDP against Diffusion-QL at equal K (5 and 20), FQL and Diffusion-BC, on a synthetic
   D4RL-shaped dataset (200k transitions; ``bench_datasets.synthetic``, as ``bench_offline.py``),
   with the ratio to Diffusion-QL and the issue's targets (EDP and FQL >= 2x Diffusion-QL).

Run time is mostly compilation: torch.compile unrolls the sampling loop, and a 100-step chain
took ~130 s per cell to compile on the project's 2-core CPU under load (4 such cells: DDPM and
DDIM at K = 100, two batch sizes); inductor's on-disk cache makes a second run compile faster.

3. ``scores``: the generative table of ``results/offline.jsonl`` (final normalized scores of the
   generative methods beside BC, TD3+BC and IQL rerun on the same dataset files, with and without
   candidate resampling), printed from the file: those are training runs
   (``scripts/offline_table.py run --tables generative``), minutes each, not timed here.

    python scripts/bench_generative.py                    # both tables, full size
    python scripts/bench_generative.py --quick            # smoke run, tiny sizes: checks the script, measures nothing
    python scripts/bench_generative.py --only latency     # one table
    python scripts/bench_generative.py --compile none     # eager cells only (skips every compile)
    python scripts/bench_generative.py --compile-max-calls 20   # skip compiling the 100-step chains
    python scripts/bench_generative.py --only latency --rows "K=5 /" consistency   # some latency rows
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]

from policyopt.algos import EDP, FQL, DiffusionBC, DiffusionQL  # noqa: E402
from policyopt.algos.offline.generative.diffusion_bc import DiffusionBCConfig  # noqa: E402
from policyopt.algos.offline.generative.diffusion_ql import DiffusionQLConfig  # noqa: E402
from policyopt.algos.offline.generative.edp import EDPConfig  # noqa: E402
from policyopt.algos.offline.generative.fql import FQLConfig, OneStepActor  # noqa: E402
from policyopt.algos.run.benchmarks import load, print_table, progress, short_error, synthetic  # noqa: E402
from policyopt.buffers import OfflineDataset  # noqa: E402
from policyopt.nets.actors import GaussianActor  # noqa: E402
from policyopt.nets.generative import ConsistencyPolicy, DiffusionPolicy, FlowPolicy  # noqa: E402

OBS_DIM, ACT_DIM = 17, 6  # HalfCheetah
HIDDEN = (256, 256, 256)
ACTIVATION = "mish"
DIFFUSION_KS = (5, 20, 100)
DPM_MAX_STEPS = 15  # EDP's dpm_steps
FLOW_STEPS = (1, 5, 10)
CONSISTENCY_STEPS = (1, 2)
UPDATE_KS = (5, 20)
TARGET_RATIO = 2.0  # EDP and FQL: >= 2x Diffusion-QL's updates/s
LATENCY_TARGET_GAUSSIAN = 3.0  # compiled batch-1 consistency and FQL within 3x of the Gaussian
LATENCY_TARGET_COMPILE = 2.0  # diffusion K=5: compiled >= 2x faster than eager
#: ``--compile some`` (the --quick default): only these rows, at the smallest batch; the other cells print 'skipped'
SOME_COMPILE = ("Gaussian", "diffusion K=5 / ddpm")  # one plain MLP, one unrolled chain


# --- helpers --------------------------------------------------------------------------------------
def threads() -> str:
    n = torch.get_num_threads()
    return f"{n} torch thread{'s' * (n > 1)}"


def synchronizer(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


@dataclasses.dataclass
class Budget:
    """How long each timed cell runs: about ``seconds`` of calls, at least ``min_calls``, at most ``max_calls``."""

    seconds: float
    min_calls: int
    max_calls: int


def median_ms(fn: Callable[[], Any], budget: Budget, sync: Callable[[], None]) -> float:
    """Median milliseconds per call of ``fn`` after warm-up; the number of calls adapts to ``budget``."""
    t0 = time.perf_counter()
    fn()
    sync()
    est = time.perf_counter() - t0
    if est < budget.seconds / 4:  # a second warm-up call where it is cheap
        t0 = time.perf_counter()
        fn()
        sync()
        est = min(est, time.perf_counter() - t0)
    n = max(budget.min_calls, min(budget.max_calls, int(budget.seconds / max(est, 1e-7))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def compile_call(
    fn: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor, sync: Callable[[], None]
) -> tuple[Callable[[], torch.Tensor] | None, float, int, str]:
    """``torch.compile(fn)`` (mode default, dynamic=False), compiled by a first call on ``obs``: returns the
    compiled zero-argument call, the compile seconds, the graphs compiled, and the error ('' if none)."""
    torch._dynamo.reset()  # a fresh cache per cell: no recompile limit, no graph reused across rows
    before = graphs_compiled()
    try:
        compiled = torch.compile(fn, mode="default", dynamic=False)
        t0 = time.perf_counter()
        out = compiled(obs)
        sync()
        seconds = time.perf_counter() - t0
        if tuple(out.shape) != (obs.shape[0], ACT_DIM):
            raise RuntimeError(f"compiled call returned shape {tuple(out.shape)}")
    except Exception as e:  # noqa: BLE001 - a failed compile is the cell's text, never the end of the run
        traceback.print_exc(file=sys.stderr)
        return None, float("nan"), 0, short_error(e)
    graphs = graphs_compiled() - before
    if graphs == 0:  # dynamo gave up on the frame and ran it eagerly
        return None, seconds, 0, "no graph compiled (ran eagerly)"
    return (lambda: compiled(obs)), seconds, graphs, ""


def fmt_ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.3f}" if x < 1 else f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


# --- 1. sampling latency ----------------------------------------------------------------------------
@dataclasses.dataclass
class LatencyRow:
    policy: str
    sampler: str
    calls: int  # network evaluations per sampled action
    fn: Callable[[torch.Tensor], torch.Tensor]
    eager: dict[int, float] = dataclasses.field(default_factory=dict)
    compiled: dict[int, float | str] = dataclasses.field(default_factory=dict)
    compile_s: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.policy} / {self.sampler}" if self.sampler != "-" else self.policy


def latency_rows(hidden: tuple[int, ...], device: torch.device) -> list[LatencyRow]:
    """Every policy and sampler of the table, with randomly initialised networks (speed does not depend on weights)."""
    torch.manual_seed(0)
    rows: list[LatencyRow] = []

    gaussian = GaussianActor(OBS_DIM, ACT_DIM, hidden, ACTIVATION).to(device).eval()
    rows.append(LatencyRow("Gaussian", "-", 1, lambda o: gaussian.act(o)))
    for k in DIFFUSION_KS:
        policy = DiffusionPolicy(OBS_DIM, ACT_DIM, num_timesteps=k, hidden=hidden, activation=ACTIVATION).to(device).eval()
        for sampler in ("ddpm", "ddim", "dpm"):
            steps = min(k, DPM_MAX_STEPS) if sampler == "dpm" else k
            rows.append(
                LatencyRow(
                    f"diffusion K={k}", sampler, steps, lambda o, p=policy, s=steps, m=sampler: p.sample(o, steps=s, sampler=m)
                )
            )
    flow = FlowPolicy(OBS_DIM, ACT_DIM, hidden=hidden, activation=ACTIVATION).to(device).eval()
    for steps in FLOW_STEPS:
        rows.append(
            LatencyRow(
                "flow",
                f"euler, {steps} step{'s' * (steps > 1)}",
                steps,
                lambda o, s=steps: flow.sample(o, steps=s, solver="euler"),
            )
        )
    consistency = ConsistencyPolicy(OBS_DIM, ACT_DIM, hidden=hidden, activation=ACTIVATION).to(device).eval()
    for steps in CONSISTENCY_STEPS:
        rows.append(
            LatencyRow(
                "consistency", f"{steps} step{'s' * (steps > 1)}", steps, lambda o, s=steps: consistency.sample(o, steps=s)
            )
        )
    one_step = OneStepActor(OBS_DIM, ACT_DIM, hidden, ACTIVATION).to(device).eval()
    rows.append(LatencyRow("FQL one-step actor", "-", 1, lambda o: one_step.act(o)))
    return rows


def section_latency(
    compile: str,
    batches: tuple[int, ...],
    budget: Budget,
    hidden: tuple[int, ...],
    device: torch.device,
    patterns: list[str] | None = None,
    max_calls: int | None = None,
) -> list[LatencyRow]:
    sync = synchronizer(device)
    rows = [r for r in latency_rows(hidden, device) if not patterns or any(p in r.key for p in patterns)]
    if not rows:
        raise SystemExit(f"no latency row matches {patterns}")
    load0 = load()
    for batch in batches:
        obs = torch.randn(batch, OBS_DIM, device=device)
        for row in rows:
            fn = row.fn
            with torch.no_grad():
                row.eager[batch] = median_ms(lambda: fn(obs), budget, sync)
                if (
                    compile == "none"
                    or (compile == "some" and (row.key not in SOME_COMPILE or batch != min(batches)))
                    or (max_calls is not None and row.calls > max_calls)
                ):
                    row.compiled[batch], row.compile_s[batch] = "skipped", "-"
                else:
                    call, seconds, graphs, error = compile_call(fn, obs, sync)
                    if call is None:
                        row.compiled[batch] = "failed"
                        row.compile_s[batch] = "-" if not math.isfinite(seconds) else f"{seconds:.1f}"
                        progress(f"{row.key}, batch {batch:,}: compile failed: {error}")
                    else:
                        row.compiled[batch] = median_ms(call, budget, sync)
                        row.compile_s[batch] = f"{seconds:.1f}" + (f" ({graphs} graphs)" if graphs > 1 else "")
                    del call
                    torch._dynamo.reset()
            c = row.compiled[batch]
            progress(
                f"{row.key}, batch {batch:,}: eager {fmt_ms(row.eager[batch])} ms, compiled "
                f"{fmt_ms(c) if isinstance(c, float) else c}{' ms' if isinstance(c, float) else ''}"
            )
            gc.collect()

    header = ["policy", "sampler", "network calls"]
    for b in batches:
        header += [f"batch {b:,}: eager (ms)", f"batch {b:,}: compiled (ms)", f"batch {b:,}: compiled speed-up"]
    header += ["compile s (" + " / ".join(f"batch {b:,}" for b in batches) + ")"]
    table = []
    for row in rows:
        cells = [
            row.policy,
            row.sampler + (f" (min(K, {DPM_MAX_STEPS}) = {row.calls} steps)" if row.sampler == "dpm" else ""),
            str(row.calls),
        ]
        for b in batches:
            c = row.compiled[b]
            cells += [
                fmt_ms(row.eager[b]),
                fmt_ms(c) if isinstance(c, float) else c,
                f"{row.eager[b] / c:.2f}x" if isinstance(c, float) and c > 0 else "-",
            ]
        cells.append(" / ".join(row.compile_s[b] for b in batches))
        table.append(cells)
    print_table(
        f"**Action-sampling latency** (ms per call, median after warm-up; obs {OBS_DIM}, actions {ACT_DIM}, "
        f"{len(hidden)}x{hidden[0]} {ACTIVATION.capitalize()} MLPs, random weights; diffusion: VP-linear schedule, ddpm and "
        f"ddim (eta 0) with sample_steps = K, dpm = DPM-Solver++(2M) with min(K, {DPM_MAX_STEPS}) steps; flow: Euler; "
        f"compiled: torch.compile of the sampling call, mode default, dynamic=False, one compile per batch size, compile "
        f"time excluded{'' if max_calls is None else f', rows of more than {max_calls} network calls not compiled'}; "
        f"torch.no_grad; {threads()}, device {device}; {load0} at start, "
        f"{load()} at end)",
        header,
        table,
    )
    latency_targets(rows, batches)
    return rows


def latency_targets(rows: list[LatencyRow], batches: tuple[int, ...]) -> None:
    """The issue's latency targets, met or not, from the table's cells."""
    by_key = {r.key: r for r in rows}
    lines = []
    b1 = min(batches)
    g = by_key.get("Gaussian")
    if g is not None:
        g_ms, g_kind = (g.compiled[b1], "compiled") if isinstance(g.compiled[b1], float) else (g.eager[b1], "eager")
    for key in ("consistency / 1 step", "consistency / 2 steps", "FQL one-step actor"):
        if g is None or key not in by_key:
            continue  # a row left out by --rows
        c = by_key[key].compiled[b1]
        if not isinstance(c, float):
            lines.append(
                f"- {key}, compiled, batch {b1:,}: within {LATENCY_TARGET_GAUSSIAN:g}x of the Gaussian: "
                f"not measured (compiled cell {c})"
            )
            continue
        r = c / g_ms
        lines.append(
            f"- {key}, compiled, batch {b1:,}: {fmt_ms(c)} ms = {r:.2f}x the Gaussian's {g_kind} {fmt_ms(g_ms)} ms; "
            f"target <= {LATENCY_TARGET_GAUSSIAN:g}x: **{'met' if r <= LATENCY_TARGET_GAUSSIAN else 'not met'}**"
        )
    for b in batches:
        for sampler in ("ddpm", "ddim", "dpm"):
            row = by_key.get(f"diffusion K=5 / {sampler}")
            if row is None:
                continue
            c = row.compiled[b]
            if not isinstance(c, float):
                lines.append(
                    f"- diffusion K=5 / {sampler}, batch {b:,}: compiled >= {LATENCY_TARGET_COMPILE:g}x faster than "
                    f"eager: not measured (compiled cell {c})"
                )
                continue
            s = row.eager[b] / c
            lines.append(
                f"- diffusion K=5 / {sampler}, batch {b:,}: compiled {s:.2f}x faster than eager; target >= "
                f"{LATENCY_TARGET_COMPILE:g}x: **{'met' if s >= LATENCY_TARGET_COMPILE else 'not met'}**"
            )
    print("Latency targets (issue 14; the Gaussian's compiled time, or its eager one where compiling it was skipped or failed):")
    print("\n".join(lines or ["- none: their rows were left out (--rows)"]), flush=True)


# --- 2. training updates/s ----------------------------------------------------------------------------
@dataclasses.dataclass
class UpdateRow:
    name: str
    k: str
    make: Callable[[OfflineDataset], Any]
    ups: float | None = None
    error: str = ""
    n: int = 0


def update_rows(ks: tuple[int, ...], hidden: tuple[int, ...], batch: int) -> list[UpdateRow]:
    nets = dict(actor_hidden=hidden, critic_hidden=hidden, activation=ACTIVATION, batch_size=batch)
    ema = dict(ema_start=0)  # the EMA copy moves from the first update: steady state within the timed window
    rows = []
    for k in ks:
        rows.append(
            UpdateRow(
                "Diffusion-QL",
                str(k),
                lambda d, k=k: DiffusionQL(d, DiffusionQLConfig(num_timesteps=k, sampler="ddpm", **nets, **ema)),
            )
        )
        rows.append(
            UpdateRow(
                "EDP (td3)",
                str(k),
                lambda d, k=k: EDP(
                    d, EDPConfig(num_timesteps=k, sampler="dpm", sample_steps=min(k, DPM_MAX_STEPS), **nets, **ema)
                ),
            )
        )
    k0 = min(ks)
    rows.append(UpdateRow("FQL", "- (flow: 10 Euler steps)", lambda d: FQL(d, FQLConfig(**nets))))
    rows.append(
        UpdateRow(
            "Diffusion-BC", str(k0), lambda d, k=k0: DiffusionBC(d, DiffusionBCConfig(num_timesteps=k, sampler="ddpm", **nets))
        )
    )
    return rows


def updates_per_second(row: UpdateRow, data: OfflineDataset, warm: int, seconds: float, min_n: int, max_n: int) -> None:
    """Steady-state updates/s of ``learn``: ``warm`` updates first, a short probe to size the timed run to ``seconds``."""
    try:
        agent = row.make(data)
        agent.learn(warm, progress=False)
        probe = max(2, min_n // 2)
        t0 = time.perf_counter()
        agent.learn(warm + probe, progress=False)
        est = (time.perf_counter() - t0) / probe
        n = max(min_n, min(max_n, int(seconds / max(est, 1e-6))))
        t0 = time.perf_counter()
        agent.learn(warm + probe + n, progress=False)
        row.ups, row.n = n / (time.perf_counter() - t0), n
    except Exception as e:  # noqa: BLE001 - a failed row is its text
        traceback.print_exc(file=sys.stderr)
        row.error = short_error(e)
    finally:
        gc.collect()


def section_updates(
    quick: bool, ks: tuple[int, ...], hidden: tuple[int, ...], batch: int, seconds: float, transitions: int, device: torch.device
) -> list[UpdateRow]:
    data = OfflineDataset(**synthetic(transitions, 1000), device=device)
    rows = update_rows(ks, hidden, batch)
    load0 = load()
    warm, min_n, max_n = (5, 4, 20) if quick else (20, 20, 5000)
    for row in rows:
        updates_per_second(row, data, warm, seconds, min_n, max_n)
        progress(f"{row.name}, K {row.k}: " + (f"{row.ups:,.1f} upd/s over {row.n} updates" if row.ups else row.error))
    dql = {r.k: r.ups for r in rows if r.name == "Diffusion-QL"}
    k0 = str(min(ks))

    def base(r: UpdateRow) -> tuple[float | None, str]:
        return (dql.get(r.k), r.k) if r.k in dql else (dql.get(k0), k0)

    table = []
    for r in rows:
        b, bk = base(r)
        ratio = f"{r.ups / b:.2f}x" + ("" if bk == r.k else f" (vs K={bk})") if r.ups and b else "-"
        table.append([r.name, r.k, f"{r.ups:,.1f}" if r.ups else f"failed: {r.error}", ratio])
    print_table(
        f"**Training updates/s** (``learn``, eager, batch {batch}, {len(hidden)}x{hidden[0]} {ACTIVATION.capitalize()} actor "
        f"and twin critics; synthetic D4RL-shaped dataset, {data.num_transitions:,} transitions, obs {OBS_DIM}, actions "
        f"{ACT_DIM}; after {warm} warm-up updates, timed over about {seconds:g} s each; Diffusion-QL: DDPM through the "
        f"whole K-step chain with gradient, EMA actor for the TD targets; EDP: td3 variant, action approximation, DPM-Solver "
        f"with min(K, {DPM_MAX_STEPS}) steps for the TD targets; both with the EMA from update 0; FQL: its one-step actor, "
        f"10-step Euler distillation target, LayerNorm critics (its default); Diffusion-BC: the DDPM loss alone; "
        f"{threads()}, device {device}; {load0} at start, {load()} at end)",
        ["algorithm", "K", "upd/s", "ratio to Diffusion-QL (same K)"],
        table,
    )
    print("Updates/s targets (issue 14):")
    for name in ("EDP (td3)", "FQL"):
        for r in (r for r in rows if r.name == name):
            b, bk = base(r)
            if r.ups and b:
                ratio = r.ups / b
                print(
                    f"- {name}{'' if name == 'FQL' else f' at K={r.k}'} vs Diffusion-QL at K={bk}: {ratio:.2f}x; target >= "
                    f"{TARGET_RATIO:g}x: **{'met' if ratio >= TARGET_RATIO else 'not met'}**"
                )
            else:
                print(f"- {name} at K={r.k}: not measured ({r.error or 'Diffusion-QL failed'})")
    sys.stdout.flush()
    return rows


# --- main -----------------------------------------------------------------------------------------------
def section_scores(results: Path) -> None:
    """The generative table of the offline results: final normalized scores beside BC, TD3+BC and IQL on the same files."""
    from policyopt.algos.run import offline_table
    from policyopt.algos.run import results_table

    print(f"\n## scores: final normalized scores from {results.relative_to(ROOT) if results.is_relative_to(ROOT) else results}")
    print("(training runs, not timed here: `python scripts/offline_table.py run --tables generative`, then `resample`)")
    if not results.is_file():
        print(f"no results file at {results}")
        return
    records = results_table.load(results)
    rows = [(a, 1) for a in offline_table.TABLES["generative"][0]]
    rows += [(a, offline_table.RESAMPLE["candidates"]) for a in offline_table.RESAMPLE["algos"]]
    if not any(r["table"] == "generative" for r in records):
        print("no generative runs recorded yet")
        return
    print("\n".join(offline_table.score_table(records, "generative", rows, corl=False)))


SECTIONS = ("latency", "updates", "scores")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run, tiny sizes (3x32 nets, batches 1 and 64, two compiled cells): checks the script, measures nothing",
    )
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    p.add_argument(
        "--compile",
        choices=("all", "some", "none"),
        default=None,
        help=f"latency: compile every row (the default), only {' and '.join(SOME_COMPILE)} at the smallest batch "
        "(the --quick default), or none; cells not compiled print 'skipped'",
    )
    p.add_argument(
        "--compile-max-calls",
        type=int,
        default=None,
        metavar="N",
        help="latency: compile only the rows of at most N network calls (default: all; compiling the 100-step "
        "chains takes about 2 min per cell on a loaded 2-core CPU)",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="latency: only the rows whose 'policy / sampler' contains one of these strings",
    )
    p.add_argument("--cell-seconds", type=float, default=0.5, help="latency: about this many seconds of timed calls per cell")
    p.add_argument(
        "--update-seconds", type=float, default=10.0, help="updates/s: about this many seconds of timed updates per row"
    )
    p.add_argument("--update-ks", type=int, nargs="+", default=list(UPDATE_KS), help="updates/s: the K of Diffusion-QL and EDP")
    p.add_argument("--results", default=str(ROOT / "results" / "offline.jsonl"), help="scores: the offline results file")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.cell_seconds <= 0 or args.update_seconds <= 0 or args.threads < 1 or min(args.update_ks) < 1:
        p.error("--cell-seconds and --update-seconds must be > 0, --threads and --update-ks >= 1")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.quick:
        hidden, batches, budget = (32, 32, 32), (1, 64), Budget(0.01, 2, 10)
        update_seconds, transitions = 0.2, 5_000
    else:
        hidden, batches, budget = HIDDEN, (1, 4096), Budget(args.cell_seconds, 3, 2000)
        update_seconds, transitions = args.update_seconds, 200_000
    command = "python " + " ".join(shlex.quote(a) for a in ([sys.argv[0]] + (sys.argv[1:] if argv is None else argv)))
    print(
        f"# bench_generative: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} thread"
        f"{'s' * (torch.get_num_threads() > 1)}), device {device}"
    )
    print(f"command: `{command}`{' (quick: tiny sizes, not a measurement)' if args.quick else ''}", flush=True)
    print("compile s: with inductor's on-disk cache as found (a warm cache after an earlier run compiles faster)")
    t0 = time.perf_counter()
    if "latency" in args.only:
        section_latency(
            args.compile or ("some" if args.quick else "all"), batches, budget, hidden, device, args.rows, args.compile_max_calls
        )
    if "updates" in args.only:
        section_updates(
            args.quick, tuple(sorted(set(args.update_ks))), hidden, 32 if args.quick else 256, update_seconds, transitions, device
        )
    if "scores" in args.only:
        section_scores(Path(args.results))
    print(f"\n{time.perf_counter() - t0:.0f} s in all; {load()} at the end")


if __name__ == "__main__":
    main()
