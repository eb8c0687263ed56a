"""End-to-end PPO training on MuJoCo: the native ``cpu`` backend against the gymnasium adapter.

Both runs train the same PPO config on the same task with the same seeds, in the same process,
and are evaluated on gymnasium's own env (the reference task), so the returns must agree within
seed noise while the training steps/s differ by the backend alone.

    python scripts/bench_mujoco_train.py --env-id HalfCheetah-v5 --steps 100000 --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from policyopt import vecenvs
from policyopt.algos import PPO, PPOConfig


def run(env_id: str, backend: str, seed: int, steps: int, num_envs: int, num_steps: int) -> dict[str, float]:
    env = vecenvs.make(env_id, num_envs=num_envs, seed=seed, backend=backend)
    cfg = PPOConfig(num_steps=num_steps, seed=seed)  # CleanRL MuJoCo settings, batch num_envs * num_steps
    agent = PPO(env, cfg)
    t0 = time.perf_counter()
    agent.learn(steps, progress=False)
    seconds = time.perf_counter() - t0
    eval_env = vecenvs.make(env_id, num_envs=10, seed=10_000 + seed, backend="gymnasium")
    result = agent.evaluate(eval_env, seed=10_000 + seed)
    env.close()
    eval_env.close()
    return {"sps": agent.global_step / seconds, "return": result["return_mean"], "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env-id", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the cpu backend's physics pool is separate)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for backend in ("cpu", "gymnasium"):
        results = [run(args.env_id, backend, s, args.steps, args.num_envs, args.num_steps) for s in args.seeds]
        rows.append((backend, results))
    print(f"\nPPO on {args.env_id}, {args.steps:,} env steps, {args.num_envs} envs x {args.num_steps} steps, seeds {args.seeds}")
    print("| backend | train steps/s (mean) | eval return per seed | mean return |")
    print("|---|---|---|---|")
    for backend, results in rows:
        sps = statistics.mean(r["sps"] for r in results)
        rets = [r["return"] for r in results]
        print(f"| {backend} | {sps:,.0f} | {' / '.join(f'{x:.0f}' for x in rets)} | {statistics.mean(rets):.0f} |")


if __name__ == "__main__":
    main()
