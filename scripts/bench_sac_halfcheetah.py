"""SAC on HalfCheetah-v5: our SAC and Stable-Baselines3's, trained side by side at one budget.

Both run at the same time, one process each (one torch thread each, so one core each on a
2-core machine), with SB3's and CleanRL's MuJoCo settings: 1 env, 256x256 networks, batch 256,
Adam 3e-4, automatic entropy tuning, a 1M buffer, 5,000 random steps first, one gradient step
per env step. Every ``--eval-every`` env steps each evaluates its deterministic policy on 10
episodes (ours: 10 native env copies; SB3: ``evaluate_policy`` on gymnasium's env). The table
gives the return at each evaluation and the training wall time (evaluation excluded); it
reports the final policy, not the best one.

    python scripts/bench_sac_halfcheetah.py --steps 300000        # the issue's budget (~1.5 h on 2 CPUs)
    python scripts/bench_sac_halfcheetah.py --steps 2000 --eval-every 1000 --learning-starts 500   # smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run_ours(steps: int, eval_every: int, learning_starts: int, seed: int) -> list[dict]:
    import torch

    from policyopt import vecenvs
    from policyopt.algos import SAC, SACConfig

    torch.set_num_threads(1)
    agent = SAC(
        vecenvs.make("HalfCheetah-v5", num_envs=1, seed=seed, compile=True), SACConfig(learning_starts=learning_starts, seed=seed)
    )
    eval_env = vecenvs.make("HalfCheetah-v5", num_envs=10, seed=seed + 10_000)
    rows, train_s = [], 0.0
    while agent.global_step < steps:
        t0 = time.perf_counter()
        agent.learn(min(steps, agent.global_step + eval_every), progress=False)
        train_s += time.perf_counter() - t0
        rows.append(
            {"step": agent.global_step, "train_s": train_s, "return": agent.evaluate(eval_env, seed=seed + 10_000)["return_mean"]}
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def run_sb3(steps: int, eval_every: int, learning_starts: int, seed: int) -> list[dict]:
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC as SB3SAC
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    model = SB3SAC(
        "MlpPolicy",
        gym.make("HalfCheetah-v5"),
        learning_starts=learning_starts,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(net_arch=[256, 256]),
        verbose=0,
    )
    eval_env = gym.make("HalfCheetah-v5")
    eval_env.reset(seed=seed + 10_000)
    rows, train_s = [], 0.0
    while model.num_timesteps < steps:
        t0 = time.perf_counter()
        model.learn(min(eval_every, steps - model.num_timesteps), reset_num_timesteps=False)
        train_s += time.perf_counter() - t0
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
        rows.append({"step": model.num_timesteps, "train_s": train_s, "return": float(mean)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--learning-starts", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--impl", choices=["ours", "sb3"], default=None, help="run one side only and print its rows as JSON (used internally)"
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    a = p.parse_args()
    args = [str(a.steps), str(a.eval_every), str(a.learning_starts), str(a.seed)]
    if a.impl is not None:
        fn = run_ours if a.impl == "ours" else run_sb3
        print(json.dumps(fn(a.steps, a.eval_every, a.learning_starts, a.seed)))
        return
    base = [
        sys.executable,
        __file__,
        "--steps",
        args[0],
        "--eval-every",
        args[1],
        "--learning-starts",
        args[2],
        "--seed",
        args[3],
    ]
    procs = {impl: subprocess.Popen(base + ["--impl", impl], stdout=subprocess.PIPE, text=True) for impl in ("ours", "sb3")}
    results = {}
    for impl, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{impl} failed (exit {proc.returncode})")
        results[impl] = {r["step"]: r for r in json.loads(out.strip().splitlines()[-1])}
    import torch

    lines = [
        f"SAC on HalfCheetah-v5, seed {a.seed}, {a.steps:,} env steps, both at once (one process and torch thread each), "
        f"torch {torch.__version__}: `python scripts/bench_sac_halfcheetah.py {' '.join(sys.argv[1:])}`",
        "",
        "| env steps | ours: eval return | SB3: eval return | ours: train s | SB3: train s |",
        "|---|---|---|---|---|",
    ]
    for step in sorted(set(results["ours"]) | set(results["sb3"])):
        o, s = results["ours"].get(step), results["sb3"].get(step)
        lines.append(
            f"| {step:,} | {o['return']:.0f} | {s['return']:.0f} | {o['train_s']:.0f} | {s['train_s']:.0f} |"
            if o and s
            else f"| {step:,} | {o['return'] if o else '-'} | {s['return'] if s else '-'} | | |"
        )
    table = "\n".join(lines)
    print(table)
    if a.out is not None:
        a.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
