"""Offline data speed, each against a reference run in the same process:

1. index samplers: batches of 256 per second, uniform against RW / AW / top-k (target: a
   weighted batch costs at most 1.5x a uniform one), and against the reference codebases' way
   of drawing weighted indices (``np.random.choice(N, p=w)``), here per batch;
2. loading a 1M-transition D4RL hdf5 file: ``OfflineDataset.load`` against reading its arrays
   with h5py alone (the floor) and D4RL's ``qlearning_dataset`` loop over those arrays;
3. generating data: transitions per second of ``policyopt.algos.run.d4rl_recipe.collect`` on the batched
   native env against gymnasium's sync vector env, the same PPO policy acting in both.

    python scripts/bench_datasets.py            # 1M transitions, Hopper-v5, 64 envs
    python scripts/bench_datasets.py --quick    # small sizes (the smoke test)

One torch thread, CPU; times are the best of ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from policyopt.buffers.dataset import OfflineDataset  # noqa: E402
from policyopt.buffers.samplers import make_sampler  # noqa: E402
from policyopt.algos.run.benchmarks import synthetic  # noqa: E402


def best_of(fn, repeats: int, calls: int) -> float:
    """Seconds per call: the fastest of ``repeats`` rounds of ``calls`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def bench_samplers(data: OfflineDataset, batch: int, repeats: int, calls: int) -> list[tuple[str, float]]:
    rows = []
    for name, kw in (("uniform", {}), ("rw", {"temperature": 0.1}), ("aw", {"temperature": 0.1}), ("topk", {"fraction": 0.1})):
        sampler = make_sampler(data, name, **kw)
        rows.append((f"{name} (ours)", best_of(lambda: sampler.sample(batch), repeats, calls)))
    # the reference codebases draw np.random.choice(N, p=w) (up front, 1e8 indices); here once per batch
    p = make_sampler(data, "rw", temperature=0.1).transition_probs().cpu().numpy()
    rng = np.random.default_rng(0)
    rows.append(
        (
            "rw: np.random.choice(N, p=w) + gather",
            best_of(lambda: data.batch(torch.from_numpy(rng.choice(len(p), batch, p=p))), repeats, max(1, calls // 20)),
        )
    )
    return rows


def bench_load(arrays: dict[str, np.ndarray], repeats: int, compression: str | None) -> list[tuple[str, float]]:
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = OfflineDataset(**arrays).save_d4rl(Path(tmp) / "big.hdf5", compression=compression)

        def raw() -> dict:
            with h5py.File(path, "r") as f:
                return {k: f[k][()] for k in f.keys() if k != "infos"}

        def qlearning_loop() -> None:  # d4rl.qlearning_dataset's per-row Python loop, after the read
            a = raw()
            obs_, next_, act_, rew_, done_ = [], [], [], [], []
            for i in range(len(a["rewards"]) - 1):
                if a["timeouts"][i]:
                    continue
                obs_.append(a["observations"][i])
                next_.append(a["observations"][i + 1])
                act_.append(a["actions"][i])
                rew_.append(a["rewards"][i])
                done_.append(bool(a["terminals"][i]))
            np.array(obs_), np.array(next_), np.array(act_), np.array(rew_), np.array(done_)

        return [
            ("OfflineDataset.load (ours)", best_of(lambda: OfflineDataset.load(path), repeats, 1)),
            (
                "OfflineDataset.load(d4rl_compat=True) (ours)",
                best_of(lambda: OfflineDataset.load(path, d4rl_compat=True), repeats, 1),
            ),
            ("h5py read of the arrays (floor)", best_of(raw, repeats, 1)),
            ("h5py read + qlearning_dataset loop (D4RL)", best_of(qlearning_loop, 1, 1)),
        ]


def bench_generation(env_id: str, num_envs: int, transitions: int) -> list[tuple[str, float]]:
    import gymnasium as gym

    from policyopt import vecenvs
    from policyopt.algos import PPO, PPOConfig
    from policyopt.algos.run.d4rl_recipe import collect

    env = vecenvs.make(env_id, num_envs=num_envs, seed=0)
    agent = PPO(env, PPOConfig.preset("mujoco"))  # an untrained policy costs what a trained one does
    t0 = time.perf_counter()
    collect(env, lambda o: agent.act(o), transitions)
    ours = transitions / (time.perf_counter() - t0)

    ref = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    obs, _ = ref.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    store = []
    while steps < transitions:  # the same work: act, step, keep the transition
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = ref.step(action)
        store.append((obs, action, reward, terminated, truncated))
        obs = next_obs
        steps += num_envs
    theirs = steps / (time.perf_counter() - t0)
    return [
        (f"collect, native batched {env_id} x{num_envs} (ours)", ours),
        (f"gymnasium SyncVectorEnv {env_id} x{num_envs}, same policy", theirs),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=1_000_000, help="dataset size for the sampler and load benchmarks")
    parser.add_argument("--episode-len", type=int, default=1000, help="longest synthetic episode (about 1,600 episodes per 1M)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="sampler calls per round")
    parser.add_argument("--env-id", default="Hopper-v5")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--gen-transitions", type=int, default=64_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for the smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.transitions, args.episode_len, args.repeats, args.calls, args.gen_transitions, args.num_envs = (
            20_000,
            200,
            2,
            50,
            2_000,
            8,
        )
    torch.set_num_threads(1)
    print(f"# bench_datasets: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread\n")
    arrays = synthetic(args.transitions, args.episode_len)
    data = OfflineDataset(**arrays)

    rows = bench_samplers(data, args.batch, args.repeats, args.calls)
    uniform = rows[0][1]
    print(
        f"## Index samplers: batches of {args.batch} from {data.num_transitions:,} transitions, {data.num_episodes:,} episodes\n"
    )
    print("| sampler | µs per batch | batches/s | cost vs uniform |")
    print("|---|---:|---:|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec * 1e6:.1f} | {1 / sec:,.0f} | {sec / uniform:.2f}x |")
    worst = max(sec for name, sec in rows[1:4]) / uniform
    print(f"\nweighted samplers cost at most {worst:.2f}x uniform (target <= 1.5x): {'met' if worst <= 1.5 else 'MISSED'}\n")

    for compression in (None, "gzip"):
        rows = bench_load(arrays, max(1, args.repeats // 2), compression)
        print(f"## Loading a {data.num_transitions:,}-transition D4RL hdf5 file ({compression or 'uncompressed'})\n")
        print("| reader | seconds |")
        print("|---|---:|")
        for name, sec in rows:
            print(f"| {name} | {sec:.3f} |")
        print()

    rows = bench_generation(args.env_id, args.num_envs, args.gen_transitions)
    print(f"## Generating data: {args.gen_transitions:,} transitions, a PPO policy acting (stochastic)\n")
    print("| collector | transitions/s | vs gymnasium |")
    print("|---|---:|---:|")
    for name, tps in rows:
        print(f"| {name} | {tps:,.0f} | {tps / rows[1][1]:.2f}x |")


if __name__ == "__main__":
    main()
