"""Per-step cost of the on-policy learner's wrapper stack, against the bare env and the old stack.

The stack is the one ``algos/onpolicy/base.py`` builds (innermost first): RecordEpisodeStatistics ->
NormalizeObservation -> NormalizeReward -> ClipAction (Box actions only). The reference ("old")
is ``vecenvs/wrappers.py`` as committed at ``--ref`` (default HEAD), loaded side by side into a
temporary module, so both stacks run in the same process on the same machine. Before timing,
the two stacks are stepped together and every output compared bitwise.

    python scripts/bench_wrappers.py                  # CartPole-v1, Pendulum-v1 at 1 and 16 envs
    python scripts/bench_wrappers.py --profile new    # cProfile of the new stack (Pendulum, 1 env)
    python scripts/bench_wrappers.py --ops            # torch ops dispatched per step, per stack
    python scripts/bench_wrappers.py --per-wrapper    # each wrapper alone, over an env that costs ~0

Numbers are µs per ``env.step`` (the fastest of interleaved rounds), one torch thread, CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import platform
import pstats
import subprocess
import time
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

ROOT = Path(__file__).resolve().parents[1]

from policyopt import vecenvs  # noqa: E402
from policyopt.vecenvs import wrappers as new_wrappers  # noqa: E402


def load_reference(ref: str) -> ModuleType:
    """``vecenvs/wrappers.py`` at git revision ``ref`` as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{ref}:vecenvs/wrappers.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("_wrappers_ref", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:vecenvs/wrappers.py", "exec"), module.__dict__)
    return module


def make_stack(w: ModuleType | None, env_id: str, n: int, seed: int = 0):
    env = vecenvs.make(env_id, num_envs=n, device="cpu", seed=seed)
    if w is None:
        return env
    env = w.RecordEpisodeStatistics(env)
    env = w.NormalizeObservation(env, clip=10.0, rms=w.RunningMeanStd(env.single_observation_space.shape))
    env = w.NormalizeReward(env, gamma=0.99, clip=10.0)
    if isinstance(env.single_action_space, gym.spaces.Box):
        env = w.ClipAction(env)
    return env


def make_actions(env, count: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    space = env.unwrapped.single_action_space
    n = env.num_envs
    if isinstance(space, gym.spaces.Discrete):
        return [torch.randint(0, int(space.n), (n,), generator=g) for _ in range(count)]
    # unclipped Gaussian samples, as the learner sends them: ClipAction has work to do
    scale = float(space.high.max())
    return [scale * torch.randn(n, *space.shape, generator=g) for _ in range(count)]


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def check_identical(ref: ModuleType, env_id: str, n: int, steps: int = 1200) -> None:
    """Step the old and the new stack together; outputs and state_dicts must match bitwise."""
    old, new = make_stack(ref, env_id, n), make_stack(new_wrappers, env_id, n)
    if not _equal(old.reset(), new.reset()):
        raise AssertionError(f"{env_id} n={n}: reset differs")
    for t, a in enumerate(make_actions(old, steps, seed=2)):
        if not _equal(old.step(a), new.step(a)):
            raise AssertionError(f"{env_id} n={n}: step {t} differs")
    if not _equal(old.state_dict(), new.state_dict()):
        raise AssertionError(f"{env_id} n={n}: state_dict differs")


def time_steps(env, actions: list[torch.Tensor], steps: int) -> float:
    """Seconds per step over ``steps`` steps (the env is already warm)."""
    k = len(actions)
    step = env.step
    start = time.perf_counter()
    for i in range(steps):
        step(actions[i % k])
    return (time.perf_counter() - start) / steps


def bench(ref: ModuleType, env_id: str, n: int, steps: int, rounds: int) -> dict[str, float]:
    envs = {"bare": make_stack(None, env_id, n), "old": make_stack(ref, env_id, n), "new": make_stack(new_wrappers, env_id, n)}
    actions = make_actions(envs["bare"], 256)
    for env in envs.values():
        env.reset()
        time_steps(env, actions, 300)  # warm-up
    samples: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(rounds):  # interleaved, so drift and neighbours hit all three alike
        for name, env in envs.items():
            samples[name].append(time_steps(env, actions, steps))
    # the minimum: on a shared machine other processes only ever add time
    return {k: 1e6 * min(v) for k, v in samples.items()}


def profile(ref: ModuleType, which: str, env_id: str, n: int, steps: int) -> None:
    env = make_stack(ref if which == "old" else new_wrappers, env_id, n)
    actions = make_actions(env, 256)
    env.reset()
    time_steps(env, actions, 300)
    prof = cProfile.Profile()
    prof.enable()
    time_steps(env, actions, steps)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def count_ops(ref: ModuleType, env_id: str, n: int, steps: int = 100) -> None:
    """ATen ops dispatched per step by the bare env and each stack (each costs µs at small sizes)."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.__name__] += 1
            return func(*args, **(kwargs or {}))

    counts = {}
    for name, w in (("bare", None), ("old", ref), ("new", new_wrappers)):
        env = make_stack(w, env_id, n)
        actions = make_actions(env, 64)
        env.reset()
        time_steps(env, actions, 50)
        with Count() as c:
            time_steps(env, actions, steps)
        counts[name] = c.ops
    bare = counts["bare"]
    for name in ("old", "new"):
        extra = counts[name] - bare
        top = ", ".join(f"{k} {v / steps:g}" for k, v in extra.most_common(8))
        print(
            f"{env_id} n={n} {name}: {sum(extra.values()) / steps:g} ops/step over the bare env's "
            f"{sum(bare.values()) / steps:g} ({top}, ...)"
        )


class ConstantEnv(gym.vector.VectorEnv):
    """Replays a few precomputed steps (3-dim obs, 1-dim Box actions): what a wrapper costs is all that is timed."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, n: int) -> None:
        self.num_envs, self.device = n, torch.device("cpu")
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.single_action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        g = torch.Generator().manual_seed(0)
        self.steps = []
        for _ in range(8):
            done = torch.rand(n, generator=g) < 0.05
            obs, final = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
            info = {"final_obs": final, "_final_obs": done}
            self.steps.append((obs, torch.randn(n, generator=g), done, torch.zeros(n, dtype=torch.bool), info))
        self.i = 0

    def reset(self, *, seed=None, options=None):
        return self.steps[0][0], {}

    def step(self, actions):
        self.i = (self.i + 1) % 8
        return self.steps[self.i]


def per_wrapper(ref: ModuleType, n: int, steps: int, rounds: int) -> None:
    names = ("RecordEpisodeStatistics", "NormalizeObservation", "NormalizeReward", "ClipAction")
    envs = {"bare": ConstantEnv(n)}
    for w, tag in ((ref, "old"), (new_wrappers, "new")):
        for name in names:
            envs[tag, name] = getattr(w, name)(ConstantEnv(n))
    actions = [torch.randn(n, 1)]
    for env in envs.values():
        env.reset()
        time_steps(env, actions, 200)
    samples: dict = {k: [] for k in envs}
    for _ in range(rounds):
        for k, env in envs.items():
            samples[k].append(time_steps(env, actions, steps))
    t = {k: 1e6 * min(v) for k, v in samples.items()}
    cells = "  ".join(f"{name} {t['old', name] - t['bare']:.1f} -> {t['new', name] - t['bare']:.1f}" for name in names)
    print(f"n={n:<3} µs/step old -> new: {cells}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    p.add_argument("--num-envs", nargs="+", type=int, default=[1, 16])
    p.add_argument("--steps", type=int, default=300, help="steps per timing round")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--ref", default="HEAD", help="git revision of the reference wrappers.py")
    p.add_argument("--profile", choices=["old", "new"], help="cProfile one stack instead of the table")
    p.add_argument("--ops", action="store_true", help="count the torch ops per step instead of timing")
    p.add_argument("--per-wrapper", action="store_true", help="time each wrapper alone over a constant env")
    args = p.parse_args()
    torch.set_num_threads(1)
    ref = load_reference(args.ref)
    if args.profile:
        profile(ref, args.profile, args.envs[-1], args.num_envs[0], 4 * args.steps)
        return
    if args.per_wrapper:
        for n in args.num_envs:
            per_wrapper(ref, n, 4 * args.steps, args.rounds)
        return
    if args.ops:
        for env_id in args.envs:
            for n in args.num_envs:
                count_ops(ref, env_id, n)
        return
    for env_id in args.envs:
        for n in args.num_envs:
            check_identical(ref, env_id, n)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; "
        f"µs/step, min of {args.rounds} x {args.steps} steps; reference wrappers.py at {args.ref}"
    )
    print(f"{'env':<14}{'n':>4}{'bare':>9}{'old':>9}{'new':>9}{'old-bare':>10}{'new-bare':>10}{'overhead':>10}")
    for env_id in args.envs:
        for n in args.num_envs:
            r = bench(ref, env_id, n, args.steps, args.rounds)
            o, w = r["old"] - r["bare"], r["new"] - r["bare"]
            print(f"{env_id:<14}{n:>4}{r['bare']:>9.1f}{r['old']:>9.1f}{r['new']:>9.1f}{o:>10.1f}{w:>10.1f}{w / o:>9.2f}x")
    print("# overhead = (new - bare) / (old - bare); outputs and state_dicts checked bitwise equal first")


if __name__ == "__main__":
    main()
