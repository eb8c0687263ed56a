"""Stable-Baselines3 PPO on our tensor envs (``vecenvs.SB3VecEnv``) against SB3's own ``DummyVecEnv``.

Both sources run SB3 PPO with its defaults (``MlpPolicy``, 10 epochs of minibatch 64) and
``n_steps`` per env on the same env id and number of envs, on the CPU with one torch
thread, alternating in the same run; each source keeps the best of ``--repeats`` runs
(robust to other processes on a shared machine) and the median is shown too. Sources:

- ``vecenvs``: ``VecMonitor(SB3VecEnv(vecenvs.make(env_id, num_envs)))``, the native tensor env;
- ``sb3``: ``make_vec_env(env_id, n_envs=num_envs)``, a ``DummyVecEnv`` of gymnasium envs,
  each wrapped in SB3's ``Monitor``.

The env-only columns step each VecEnv with random actions (drawn beforehand, cycled)
through the same ``step`` interface PPO uses, which shows how much of the training time is
the env and how much is PPO itself.

    python scripts/bench_sb3_vecenv.py                        # Pendulum-v1, 16 envs, ~2-3 min
    python scripts/bench_sb3_vecenv.py --total-steps 20000 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch

from policyopt import vecenvs


def make_source(name: str, env_id: str, num_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecMonitor

    if name == "vecenvs":
        return VecMonitor(vecenvs.SB3VecEnv(vecenvs.make(env_id, num_envs, seed=seed)))
    return make_vec_env(env_id, n_envs=num_envs, seed=seed)


def train_steps_per_s(make: Callable, total_steps: int, n_steps: int, seed: int) -> float:
    """Env-steps/s of ``PPO.learn`` (rollouts and updates), construction excluded."""
    from stable_baselines3 import PPO

    env = make()
    model = PPO("MlpPolicy", env, n_steps=n_steps, device="cpu", seed=seed, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_steps)
    dt = time.perf_counter() - t0
    env.close()
    return model.num_timesteps / dt


def env_steps_per_s(make: Callable, steps: int, seed: int) -> float:
    """Env-steps/s of ``VecEnv.step`` with random actions drawn beforehand."""
    env = make()
    rng = np.random.default_rng(seed)
    space = env.action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    actions = [rng.uniform(low, high, size=(env.num_envs, *space.shape)).astype(np.float32) for _ in range(64)]
    env.reset()
    for i in range(20):  # warm-up
        env.step(actions[i % 64])
    t0 = time.perf_counter()
    for i in range(steps):
        env.step(actions[i % 64])
    dt = time.perf_counter() - t0
    env.close()
    return steps * env.num_envs / dt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="Pendulum-v1")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--n-steps", type=int, default=256, help="PPO rollout length per env")
    p.add_argument("--total-steps", type=int, default=50_000, help="PPO env-steps per run")
    p.add_argument("--env-steps", type=int, default=2_000, help="VecEnv.step calls per env-only run")
    p.add_argument("--repeats", type=int, default=2, help="runs per source, alternating (best and median reported)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    import stable_baselines3

    sources = {"vecenvs": "vecenvs `SB3VecEnv` (+ `VecMonitor`)", "sb3": "SB3 `make_vec_env` (`DummyVecEnv` + `Monitor`)"}
    train: dict[str, list[float]] = {k: [] for k in sources}
    env_only: dict[str, list[float]] = {k: [] for k in sources}
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    for r in range(args.repeats):
        order = list(sources) if r % 2 == 0 else list(sources)[::-1]  # alternate who goes first
        for name in order:
            make = lambda name=name: make_source(name, args.env_id, args.num_envs, seed=r)  # noqa: E731
            env_only[name].append(env_steps_per_s(make, args.env_steps, seed=r))
            train[name].append(train_steps_per_s(make, args.total_steps, args.n_steps, seed=r))
            print(
                f"repeat {r + 1}/{args.repeats} {name}: PPO {train[name][-1]:,.0f} steps/s, env only {env_only[name][-1]:,.0f} steps/s",
                flush=True,
            )
    elapsed = time.perf_counter() - t_start

    base_t, base_e = max(train["sb3"]), max(env_only["sb3"])
    print()
    print(
        f"SB3 PPO on {args.env_id}, {args.num_envs} envs, n_steps={args.n_steps}, ~{args.total_steps:,} steps per run, "
        f"best of {args.repeats} (median in brackets); torch 1 thread, device cpu"
    )
    print()
    print("| env source | PPO steps/s | speed-up | env-only steps/s | speed-up |")
    print("|---|---|---|---|---|")
    for name, label in sources.items():
        t, e = max(train[name]), max(env_only[name])
        print(
            f"| {label} | {t:,.0f} ({statistics.median(train[name]):,.0f}) | {t / base_t:.2f}x "
            f"| {e:,.0f} ({statistics.median(env_only[name]):,.0f}) | {e / base_e:.2f}x |"
        )
    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
        f"torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, numpy {np.__version__}; "
        f"load average {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; {elapsed:.0f} s in all"
    )


if __name__ == "__main__":
    main()
