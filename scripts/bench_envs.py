"""Throughput of the torch classic-control envs against gymnasium's own vector envs.

For every env and batch size it measures env-steps per second (``num_envs * steps / s``)
of our env eager and with ``compile=True`` on the CPU (and on CUDA when available), and
of gymnasium in the same run: the NumPy ``CartPoleVectorEnv`` for CartPole
(``vectorization_mode="vector_entry_point"``) and ``SyncVectorEnv`` (a Python loop over
single envs) for the others. Random actions are drawn beforehand on the env's device and
cycled, so the timing measures the env; ``torch.compile`` warm-up happens before timing.

SyncVectorEnv is a Python loop, so its per-env cost does not depend on the batch size:
batches above ``--sync-max`` are not built and the table says "skipped", with an
estimate from the largest measured batch marked ``~``.

    python scripts/bench_envs.py                      # 1, 64, 4096, 65536 envs
    python scripts/bench_envs.py --quick              # shorter timings, 1/64/4096
    python scripts/bench_envs.py --envs CartPole-v1 --num-envs 4096 --devices cpu
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from policyopt import vecenvs

ENV_IDS = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]


@dataclass
class Row:
    """One measurement: ``steps_per_s`` is env-steps/s, None when skipped."""

    env_id: str
    num_envs: int
    backend: str
    device: str
    steps_per_s: float | None
    measured: str  # how: "N steps", "skipped", "estimated from n=..."
    ratio: float | None = None


def _time_loop(
    step: Callable[[int], None], sync: Callable[[], None], min_time: float, max_steps: int, repeats: int
) -> tuple[float, int]:
    """Seconds per step: grow the number of steps until a run lasts ``min_time``, then keep
    the best of ``repeats`` such runs (robust to other processes on a shared machine)."""
    steps = 1
    while True:
        sync()
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_time or steps >= max_steps:
            break
        steps = min(max_steps, max(steps * 2, int(steps * min_time / max(dt, 1e-9) * 1.2)))
    best = dt
    for _ in range(repeats - 1):
        sync()
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        sync()
        best = min(best, time.perf_counter() - t0)
    return best / steps, steps


def bench_torch(env_id: str, n: int, device: str, compile: bool, min_time: float, max_steps: int, repeats: int) -> Row:
    env = vecenvs.make(env_id, n, device=device, seed=0, compile=compile)
    env.reset()
    space = env.single_action_space
    k = 16  # distinct action batches, cycled
    gen = torch.Generator(device=device).manual_seed(0)
    if isinstance(space, gym.spaces.Discrete):
        actions = torch.randint(0, int(space.n), (k, n), generator=gen, device=device)
    else:
        low = float(space.low[0])
        high = float(space.high[0])
        actions = low + (high - low) * torch.rand((k, n, *space.shape), generator=gen, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step(i: int) -> None:
        env.step(actions[i % k])

    for i in range(20 if compile else 5):  # warm-up: compilation, caches, allocator
        step(i)
    per_step, steps = _time_loop(step, sync, min_time, max_steps, repeats)
    backend = "torch-compile" if compile else "torch-eager"
    return Row(env_id, n, backend, device, n / per_step, f"best of {repeats} x {steps} steps")


def _gym_vec(env_id: str, n: int) -> tuple[gym.vector.VectorEnv, str]:
    if env_id.startswith("CartPole"):
        return gym.make_vec(env_id, n, vectorization_mode="vector_entry_point"), "gym-numpy-vec"
    return gym.make_vec(env_id, n, vectorization_mode="sync"), "gym-sync"


def bench_gym(env_id: str, n: int, min_time: float, max_steps: int, repeats: int) -> Row:
    env, backend = _gym_vec(env_id, n)
    env.reset(seed=0)
    k = 16
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(k)]

    def step(i: int) -> None:
        env.step(actions[i % k])

    for i in range(3):
        step(i)
    per_step, steps = _time_loop(step, lambda: None, min_time, max_steps, repeats)
    env.close()
    return Row(env_id, n, backend, "cpu", n / per_step, f"best of {repeats} x {steps} steps")


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    for env_id in args.envs:
        sync_rate: tuple[int, float] | None = None  # (n, per-env rate) of the largest measured sync batch
        for n in args.num_envs:
            # gymnasium first: the reference for the ratio column
            is_sync = not env_id.startswith("CartPole")
            if is_sync and n > args.sync_max:
                if sync_rate is None:
                    ref = Row(env_id, n, "gym-sync", "cpu", None, "skipped")
                else:
                    ref = Row(env_id, n, "gym-sync", "cpu", sync_rate[1], f"skipped; ~estimated from n={sync_rate[0]}")
            else:
                ref = bench_gym(env_id, n, args.min_time, args.max_steps, args.repeats)
                if is_sync:
                    sync_rate = (n, ref.steps_per_s)
            rows.append(ref)
            print(_fmt(ref), flush=True)
            for device in devices:
                for compile in args.compile_modes:
                    row = bench_torch(env_id, n, device, compile, args.min_time, args.max_steps, args.repeats)
                    row.ratio = row.steps_per_s / ref.steps_per_s if ref.steps_per_s else None
                    rows.append(row)
                    print(_fmt(row), flush=True)
    return rows


HEADER = f"{'env':<26} {'num_envs':>8} {'backend':<14} {'device':<6} {'steps/s':>14} {'vs gym':>9}  measured"


def _fmt(r: Row) -> str:
    approx = "~" if r.measured.startswith("skipped;") else ""
    rate = "skipped" if r.steps_per_s is None else f"{approx}{r.steps_per_s:,.0f}"
    ratio = "" if r.ratio is None else f"{approx}{r.ratio:.1f}x"
    return f"{r.env_id:<26} {r.num_envs:>8} {r.backend:<14} {r.device:<6} {rate:>14} {ratio:>9}  {r.measured}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=ENV_IDS)
    p.add_argument("--num-envs", nargs="+", type=int, default=None, help="batch sizes (default 1 64 4096 65536)")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is used only when available")
    p.add_argument("--no-compile", dest="compile_modes", action="store_const", const=[False], default=[False, True])
    p.add_argument("--quick", action="store_true", help="short timings and batch sizes 1 64 4096")
    p.add_argument("--min-time", type=float, default=None, help="seconds per timed run (default 1.0, quick 0.2)")
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the best is kept")
    p.add_argument("--sync-max", type=int, default=4096, help="largest gymnasium SyncVectorEnv batch actually built")
    p.add_argument("--json", type=str, default=None, help="also write the rows here")
    args = p.parse_args()
    if args.num_envs is None:
        args.num_envs = [1, 64, 4096] if args.quick else [1, 64, 4096, 65536]
    if args.min_time is None:
        args.min_time = 0.2 if args.quick else 1.0
    print(
        f"torch {torch.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"cuda {torch.cuda.get_device_name() if torch.cuda.is_available() else 'n/a'}"
    )
    print(HEADER)
    rows = run(args)
    print("\n" + HEADER)
    for r in rows:
        print(_fmt(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
