"""Offline learner speed: updates/s of our BC, TD3+BC, IQL, CQL and ReBRAC next to d3rlpy's
implementations of the same algorithms, on the same dataset file, network sizes and batch, in the
same run; and the cost of weighted (AW) against uniform sampling for ours.

d3rlpy pins its own gymnasium, so it runs in a subprocess from its own virtual environment:

    python3 -m venv /tmp/d3venv && /tmp/d3venv/bin/pip install torch==2.13.0 --find-links /opt/wheels \
        && /tmp/d3venv/bin/pip install d3rlpy h5py
    python scripts/bench_offline.py --d3rlpy-python /tmp/d3venv/bin/python

Without ``--d3rlpy-python`` only our side is measured. One torch thread on both sides; the
dataset is ``--dataset`` (default: a synthetic D4RL-shaped file of 200k transitions, obs 17, actions 6).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from policyopt import algos  # noqa: E402
from policyopt.algos.run.benchmarks import synthetic  # noqa: E402
from policyopt.buffers import OfflineDataset  # noqa: E402

# d3rlpy's side: the same hdf5 file, 256x256 networks (CQL and ReBRAC: our 3x256 defaults), the same batch
D3RLPY_SCRIPT = r"""
import json, sys, time, h5py, numpy as np, torch
import d3rlpy
torch.set_num_threads(1)
path, names, updates, batch = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4])
with h5py.File(path, "r") as f:
    a = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
data = d3rlpy.dataset.MDPDataset(a["observations"], a["actions"], a["rewards"], a["terminals"], timeouts=a["timeouts"])
def enc(h): return d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=list(h))
configs = {
    "bc": lambda: d3rlpy.algos.BCConfig(batch_size=batch, encoder_factory=enc((256, 256))),
    "td3bc": lambda: d3rlpy.algos.TD3PlusBCConfig(batch_size=batch, actor_encoder_factory=enc((256, 256)), critic_encoder_factory=enc((256, 256))),
    "iql": lambda: d3rlpy.algos.IQLConfig(batch_size=batch, actor_encoder_factory=enc((256, 256)), critic_encoder_factory=enc((256, 256)), value_encoder_factory=enc((256, 256))),
    "cql": lambda: d3rlpy.algos.CQLConfig(batch_size=batch, actor_encoder_factory=enc((256, 256, 256)), critic_encoder_factory=enc((256, 256, 256))),
    "rebrac": lambda: d3rlpy.algos.ReBRACConfig(batch_size=1024, actor_encoder_factory=enc((256, 256, 256)), critic_encoder_factory=enc((256, 256, 256))),
}
out = {}
for name in names:
    algo = configs[name]().create(device="cpu:0")
    kw = dict(n_steps_per_epoch=updates, show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    algo.fit(data, n_steps=20, **{**kw, "n_steps_per_epoch": 20})  # build and warm up
    t0 = time.perf_counter()
    algo.fit(data, n_steps=updates, **kw)
    out[name] = updates / (time.perf_counter() - t0)
print(json.dumps(out))
"""


def ours(name: str, data: OfflineDataset, updates: int, weighting: str, compile: bool) -> float:
    cls = algos.ALGORITHMS[name]
    agent = cls(data, cls.config_class(weighting=weighting, compile=compile))
    agent.learn(20, progress=False)  # build, compile, warm up
    t0 = time.perf_counter()
    agent.learn(20 + updates, progress=False)
    return updates / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="a D4RL hdf5 file (default: synthetic, 200k transitions)")
    parser.add_argument("--algos", nargs="+", default=["bc", "td3bc", "iql", "cql", "rebrac"])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--compile", action="store_true", help="our updates under torch.compile (default: eager)")
    parser.add_argument("--d3rlpy-python", default=None, help="the python of a venv with d3rlpy installed")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    args = parser.parse_args(argv)
    names = [n for n in args.algos if n in algos.ALGORITHMS]
    if missing := [n for n in args.algos if n not in algos.ALGORITHMS]:
        print(f"not implemented here (skipped): {', '.join(missing)}")
    if args.quick:
        args.updates = 30
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset is None:
            path = OfflineDataset(**synthetic(20_000 if args.quick else 200_000, 1000)).save_d4rl(
                Path(tmp) / "synthetic.hdf5", compression=None
            )
        else:
            path = Path(args.dataset)
        data = OfflineDataset.load(path)
        theirs: dict[str, float] = {}
        if args.d3rlpy_python:
            run = subprocess.run(
                [args.d3rlpy_python, "-c", D3RLPY_SCRIPT, str(path), ",".join(names), str(args.updates), "256"],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                print(f"d3rlpy failed:\n{run.stderr[-3000:]}")
            else:
                theirs = json.loads(run.stdout.strip().splitlines()[-1])
        rows = [
            (n, ours(n, data, args.updates, "uniform", args.compile), ours(n, data, args.updates, "aw", args.compile))
            for n in names
        ]
    print(
        f"# bench_offline: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
        f"{data.num_transitions:,} transitions, {args.updates:,} updates each, ours {'compiled' if args.compile else 'eager'}\n"
    )
    print(
        "| algorithm | ours, uniform (upd/s) | ours, AW (upd/s) | AW's share of the update time | d3rlpy (upd/s) | ours / d3rlpy |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for n, uni, aw in rows:
        share = max(0.0, 1.0 - aw / uni)
        d3 = theirs.get(n)
        print(
            f"| {n} | {uni:,.1f} | {aw:,.1f} | {100 * share:.1f}% | {'-' if d3 is None else f'{d3:,.1f}'} | "
            f"{'-' if d3 is None else f'{uni / d3:.2f}x'} |"
        )


if __name__ == "__main__":
    main()
