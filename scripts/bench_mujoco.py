"""Env-steps/s of the MuJoCo tensor envs against Gymnasium's sync vector env and raw physics.

For each task and number of envs it measures, in the same run:

- ``gym-sync``: ``gym.make_vec(id, n, vectorization_mode="sync")`` with numpy actions (reference);
- each available backend of ``vecenvs.make`` (``cpu``; ``warp`` when mujoco_warp is installed
  and a CUDA device is present, or ``--warp-cpu``), random actions, autoreset included;
- ``raw``: mjbatch stepping alone (frame_skip substeps, no task logic, no replay of the last
  substep) on the same threads: the ceiling for the cpu backend.

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


def bench_vec(env_id: str, n: int, steps: int, warmup: int, backend: str, device: str, threads: int | None) -> float:
    import vecenvs.mujoco as vm

    opts = {"num_threads": threads} if backend == "cpu" and threads else {}
    env = vm.make_mujoco(env_id, n, device=device, seed=0, backend=backend, backend_options=opts)
    env.reset()
    g = torch.Generator(device=device).manual_seed(0)
    low = torch.as_tensor(env.single_action_space.low, device=device)
    high = torch.as_tensor(env.single_action_space.high, device=device)
    acts = [low + (high - low) * torch.rand((n, low.numel()), generator=g, device=device) for _ in range(16)]
    i = [0]

    def step() -> None:
        env.step(acts[i[0] % 16])
        i[0] += 1

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    r = _rate(lambda: step(), n, steps, warmup)
    sync()
    env.close()
    return r


def bench_raw(env_id: str, n: int, steps: int, warmup: int, threads: int | None) -> float:
    """mjbatch ``step(nstep=frame_skip)`` alone: the physics ceiling of the cpu backend."""
    import mujoco
    import mjbatch

    from vecenvs.mujoco.tasks import make_task

    name, _, version = env_id.partition("-")
    task = make_task(name, version)
    model = mujoco.MjModel.from_xml_path(task.model_xml_path())
    batch = mjbatch.Batch(model, n, threads or min(n, __import__("os").cpu_count() or 1))
    batch.reset()
    ctrl = batch.bind("ctrl")
    rng = np.random.default_rng(0)
    lo, hi = model.actuator_ctrlrange.T
    acts = [rng.uniform(lo, hi, (n, model.nu)) for _ in range(16)]
    i = [0]

    def step() -> None:
        ctrl[:] = acts[i[0] % 16]
        batch.step(None, task.frame_skip)
        i[0] += 1

    return _rate(step, n, steps, warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 64, 256])
    p.add_argument("--steps", type=int, default=None, help="batch steps per measurement (default: ~20k env-steps, 2k with --quick)")
    p.add_argument("--threads", type=int, default=None, help="physics threads for cpu/raw (default: min(n, cpu count))")
    p.add_argument("--quick", action="store_true", help="short measurements (numbers are noisier)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds per cell; the best is kept (robust to other load)")
    p.add_argument("--no-gym", action="store_true", help="skip the Gymnasium reference")
    p.add_argument("--warp-cpu", action="store_true", help="also time the warp backend on Warp's CPU device (slow; development only)")
    a = p.parse_args()

    backends = [("cpu", "cpu")]
    if importlib.util.find_spec("mujoco_warp") is not None:
        if torch.cuda.is_available():
            backends.append(("warp", "cuda"))
        if a.warp_cpu:
            backends.append(("warp", "cpu"))
    budget = 2_000 if a.quick else 20_000
    rows = []
    header = f"{'task':<15}{'n':>5}{'gym-sync':>11}" + "".join(f"{b + '@' + d:>12}" for b, d in backends) + f"{'raw':>11}{'x gym':>8}{'% raw':>8}"
    print(header)
    for env_id in a.tasks:
        for n in a.sizes:
            steps = a.steps or max(20, budget // n)
            if a.quick and env_id.startswith("Humanoid"):
                steps = max(10, steps // 4)
            warm = max(2, steps // 10)
            gym_r, vals, raw = float("nan"), [0.0] * len(backends), 0.0
            for _ in range(max(1, a.repeat)):  # interleaved rounds, best kept: fair under shared CPUs
                if not a.no_gym:
                    g = bench_gym(env_id, n, max(10, steps // 2), warm)
                    gym_r = g if gym_r != gym_r else max(gym_r, g)
                for j, (b, d) in enumerate(backends):
                    s = max(5, steps // 20) if (b == "warp" and d == "cpu") else steps
                    vals[j] = max(vals[j], bench_vec(env_id, n, s, min(warm, s), b, d, a.threads))
                raw = max(raw, bench_raw(env_id, n, steps, warm, a.threads))
            cpu = vals[0]
            line = f"{env_id:<15}{n:>5}{gym_r:>11.0f}" + "".join(f"{v:>12.0f}" for v in vals) + f"{raw:>11.0f}{cpu / gym_r:>8.2f}{100 * cpu / raw:>7.0f}%"
            print(line, flush=True)
            rows.append((env_id, n, gym_r, *vals, raw))
    print("\nenv-steps/s (one env step = frame_skip physics substeps); 'x gym' and '% raw' compare the cpu backend.")


if __name__ == "__main__":
    main()
