"""Env-steps/s of the MuJoCo tensor envs against Gymnasium's sync vector env and raw physics.

For each task and number of envs it measures, in the same run:

- ``gym-sync``: ``gym.make_vec(id, n, vectorization_mode="sync")`` with numpy actions (reference);
- each available backend of ``vecenvs.make``: ``cpu`` eager and with ``compile=True``
  (``cpu+c``); ``warp`` when mujoco_warp is installed and a CUDA device is present, or with
  ``--warp-cpu``. Random actions, autoreset included;
- ``raw``: the ceiling of the cpu backend, MuJoCo's stepping alone (mjbatch ``step``, frame_skip
  substeps on the same threads, without task logic or the cfrc_ext replay of Ant/Humanoid). It
  is timed inside the ``cpu+c`` runs, so that it steps exactly the states the env visits: a
  separate mjbatch loop never resets, drifts into other states (a flipped HalfCheetah has more
  contacts) and ran 10-20% faster or slower than the same physics inside the env.
  ``raw`` and ``% raw`` (the share of the env's wall time spent in that stepping) come from the
  same round as the best ``cpu+c`` rate.

Example: ``python scripts/bench_mujoco.py --tasks HalfCheetah-v5 --sizes 64 --quick``
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import Callable

import numpy as np
import torch


def _rate(step: Callable[[], None], n: int, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return n * steps / (time.perf_counter() - t0)


def bench_gym(env_id: str, n: int, steps: int, warmup: int) -> float:
    """Gymnasium's SyncVectorEnv (same-step autoreset irrelevant for throughput)."""
    import gymnasium as gym

    env = gym.make_vec(env_id, n, vectorization_mode="sync")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.single_action_space.low, env.single_action_space.high
    acts = [rng.uniform(low, high, (n, low.size)).astype(np.float32) for _ in range(16)]
    i = [0]

    def step() -> None:
        env.step(acts[i[0] % 16])
        i[0] += 1

    r = _rate(step, n, steps, warmup)
    env.close()
    return r


def bench_vec(
    env_id: str, n: int, steps: int, warmup: int, backend: str, device: str, threads: int | None, compile: bool = False
) -> tuple[float, float]:
    """(env-steps/s, share of the wall time spent in MuJoCo's stepping; nan off the cpu backend)."""
    import policyopt.vecenvs.mujoco as vm

    opts = {"num_threads": threads} if backend == "cpu" and threads else {}
    env = vm.make_mujoco(env_id, n, device=device, seed=0, backend=backend, backend_options=opts, compile=compile)
    env.reset()
    g = torch.Generator(device=device).manual_seed(0)
    low = torch.as_tensor(env.single_action_space.low, device=device)
    high = torch.as_tensor(env.single_action_space.high, device=device)
    acts = [low + (high - low) * torch.rand((n, low.numel()), generator=g, device=device) for _ in range(16)]
    i = [0]

    def step() -> None:
        env.step(acts[i[0] % 16])
        i[0] += 1

    in_physics = [0.0]
    batch = getattr(env.physics, "batch", None)
    if batch is not None:  # time mjbatch's step inside the env (an instance attribute shadows the method)
        batch_step = batch.step

        def timed_step(*args: object) -> None:
            t = time.perf_counter()
            try:
                batch_step(*args)
            finally:
                in_physics[0] += time.perf_counter() - t

        batch.step = timed_step
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    in_physics[0] = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    wall = time.perf_counter() - t0
    env.close()
    return n * steps / wall, (in_physics[0] / wall if batch is not None else float("nan"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 64, 256])
    p.add_argument(
        "--steps", type=int, default=None, help="batch steps per measurement (default: ~20k env-steps, 2k with --quick)"
    )
    p.add_argument("--threads", type=int, default=None, help="physics threads for cpu/raw (default: min(n, cpu count))")
    p.add_argument("--quick", action="store_true", help="short measurements (numbers are noisier)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds per cell; the best is kept (robust to other load)")
    p.add_argument("--no-gym", action="store_true", help="skip the Gymnasium reference")
    p.add_argument(
        "--warp-cpu", action="store_true", help="also time the warp backend on Warp's CPU device (slow; development only)"
    )
    a = p.parse_args()

    backends = [("cpu", "cpu", False), ("cpu", "cpu", True)]  # (backend, device, compile)
    if importlib.util.find_spec("mujoco_warp") is not None:
        if torch.cuda.is_available():
            backends.append(("warp", "cuda", False))
        if a.warp_cpu:
            backends.append(("warp", "cpu", False))
    budget = 2_000 if a.quick else 20_000
    names = [f"{b}{'+c' if c else ''}@{d}" for b, d, c in backends]
    print(f"{'task':<15}{'n':>5}{'gym-sync':>11}" + "".join(f"{x:>12}" for x in names) + f"{'raw':>11}{'x gym':>8}{'% raw':>8}")
    for env_id in a.tasks:
        for n in a.sizes:
            steps = a.steps or max(20, budget // n)
            if a.quick and env_id.startswith("Humanoid"):
                steps = max(10, steps // 4)
            warm = max(2, steps // 10)
            gym_r, vals, share, raw = 0.0, [0.0] * len(backends), 0.0, 0.0
            for _ in range(max(1, a.repeat)):  # interleaved rounds, best kept: fair under shared CPUs
                if not a.no_gym:
                    gym_r = max(gym_r, bench_gym(env_id, n, max(10, steps // 2), warm))
                for j, (b, d, c) in enumerate(backends):
                    s = max(5, steps // 20) if (b == "warp" and d == "cpu") else steps
                    rate, in_mujoco = bench_vec(env_id, n, s, min(warm, s), b, d, a.threads, c)
                    if j == 1 and rate > vals[j]:  # cpu+c: raw and share from its best round, so rate = share * raw
                        share, raw = in_mujoco, rate / in_mujoco
                    vals[j] = max(vals[j], rate)
            ratio = vals[1] / gym_r if gym_r else float("nan")
            line = f"{env_id:<15}{n:>5}{gym_r or float('nan'):>11.0f}" + "".join(f"{v:>12.0f}" for v in vals)
            print(line + f"{raw:>11.0f}{ratio:>8.2f}{100 * share:>7.0f}%", flush=True)
    print("\nenv-steps/s (one env step = frame_skip physics substeps); 'x gym' and '% raw' are for cpu+c;")
    print("'raw' = env-steps/s of MuJoCo's stepping inside cpu+c's best round; '% raw' = its share of that round's wall time.")


if __name__ == "__main__":
    main()
