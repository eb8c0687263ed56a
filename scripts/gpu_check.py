"""The GPU check: the CUDA tests and the GPU-sized benchmarks, in one command and one table.

    bash scripts/gpu_check.sh                      # on a machine with a CUDA GPU, < 8 minutes
    python scripts/gpu_check.py --device cpu --quick --no-tests --eager-only   # a smoke run (tests/test_gpu_check.py)

Rows: the CUDA tests (``pytest -m cuda``: envs, the Warp backend, compiled and graph-captured
updates, checkpoints across devices); classic envs at 2^16-2^20 copies; HalfCheetah-v5 on
MuJoCo Warp at 4,096 and 8,192 worlds; PPO's update and SAC's gradient step, eager
and compiled (CUDA graphs on CUDA), as samples/s and updates/s. Each row says what it timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import subprocess
import sys
import time
from typing import Callable

import torch

from policyopt import vecenvs
from policyopt.algos import PPO, SAC, PPOConfig, SACConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], object], units: int, device: torch.device, min_time: float) -> float:
    """units per second of ``fn``, after a warm-up call, over at least ``min_time`` seconds."""
    fn()
    sync(device)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 4 == 0:
            sync(device)
            if time.perf_counter() - t0 >= min_time:
                break
    return units * calls / (time.perf_counter() - t0)


def env_rate(env_id: str, n: int, device: torch.device, min_time: float, **kwargs) -> float:
    env = vecenvs.make(env_id, num_envs=n, device=device, seed=0, **kwargs)
    env.reset()
    space = env.single_action_space
    if hasattr(space, "n"):
        actions = torch.zeros(n, dtype=torch.int64, device=device)
    else:
        actions = torch.zeros(n, *space.shape, device=device)
    return rate(lambda: env.step(actions), n, device, min_time)


def ppo_rate(device: torch.device, compile: bool, n: int, min_time: float) -> tuple[float, float]:
    """PPO's update (one epoch of 4 minibatches: loss, backward, clip, Adam) as samples/s, on a rollout of n envs x 16 steps."""
    agent = PPO(
        vecenvs.make("Pendulum-v1", num_envs=n, device=device, seed=0),
        PPOConfig(num_steps=16, num_minibatches=4, update_epochs=1, compile=compile),
    )
    agent.collect()
    return rate(lambda: agent.update(agent.buffer, 0.0), agent.buffer.num_samples, device, min_time), agent.compile_seconds


def sac_rate(device: torch.device, compile: bool, batch: int, min_time: float) -> tuple[float, float]:
    """SAC gradient steps per second (critic, actor, alpha, Polyak), 256x256 networks."""
    agent = SAC(
        vecenvs.make("Pendulum-v1", num_envs=1, device=device, seed=0),
        SACConfig(learning_starts=10**9, batch_size=batch, buffer_size=4096, compile=compile),
    )
    agent.learn(max(batch, 512), progress=False)
    b = agent.buffer.sample(batch)
    return rate(lambda: agent.gradient_step(b), 1, device, min_time), agent.compile_seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a smoke run of this script)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and timings: checks the script, measures nothing useful")
    p.add_argument("--no-tests", action="store_true", help="skip the pytest row")
    p.add_argument("--eager-only", action="store_true", help="skip the compiled rows (their compile takes 10-30 s each)")
    a = p.parse_args()
    device = vecenvs.check_device(a.device)
    quick = a.quick
    min_time = 0.1 if quick else 1.0
    rows: list[tuple[str, str, str]] = []

    def row(what: str, size: str, fn: Callable[[], str]) -> None:
        try:
            rows.append((what, size, fn()))
        except Exception as e:  # a failing row is reported, not fatal: the rest of the check still runs
            rows.append((what, size, f"FAILED: {type(e).__name__}: {str(e)[:120]}"))
        print(f"  {rows[-1][0]} [{rows[-1][1]}]: {rows[-1][2]}", file=sys.stderr, flush=True)

    if not a.no_tests:

        def tests() -> str:
            out = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py"], capture_output=True, text=True
            )
            last = (out.stdout.strip().splitlines() or ["no output"])[-1]
            return last if out.returncode in (0, 5) else f"FAILED ({last})"

        row("CUDA tests (pytest -m cuda)", "-", tests)

    sizes = [256, 1024] if quick else [2**16, 2**18, 2**20]
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        for n in sizes:
            row(
                f"{env_id} env steps/s (compiled step)",
                f"{n:,} copies",
                lambda env_id=env_id, n=n: f"{env_rate(env_id, n, device, min_time, compile=True):,.0f}",
            )
    if device.type == "cuda" and importlib.util.find_spec("mujoco_warp") is not None:
        for n in (4096, 8192):
            row(
                "HalfCheetah-v5 env steps/s (Warp)",
                f"{n:,} worlds",
                lambda n=n: f"{env_rate('HalfCheetah-v5', n, device, min_time, backend='warp'):,.0f}",
            )
    else:
        rows.append(("HalfCheetah-v5 env steps/s (Warp)", "-", "skipped: needs CUDA and mujoco-warp"))
    ppo_n = 64 if quick else 4096
    modes = (False,) if a.eager_only else (False, True)
    for compile in modes:
        row(
            f"PPO update samples/s ({'compiled' if compile else 'eager'})",
            f"{ppo_n * 4:,} per minibatch",
            lambda c=compile: "{:,.0f} (compile {:.0f} s)".format(*ppo_rate(device, c, ppo_n, min_time)),
        )
    for batch in [64] if quick else [256, 4096]:
        for compile in modes:
            row(
                f"SAC gradient steps/s ({'compiled' if compile else 'eager'})",
                f"batch {batch}, 256x256",
                lambda c=compile, b=batch: "{:,.1f} (compile {:.0f} s)".format(*sac_rate(device, c, b, min_time)),
            )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"\n# GPU check on {name} (torch {torch.__version__}): `python {' '.join(sys.argv)}`\n")
    print("| what | size | result |\n|---|---|---|")
    for what, size, result in rows:
        print(f"| {what} | {size} | {result} |")


if __name__ == "__main__":
    main()
