"""Time-to-target benchmark of PPO, TRPO and SPO on the native classic-control envs (CPU).

For every algorithm and env it trains with the env's preset (``algos/core/presets.py``) and
evaluates the deterministic policy on a separate 10-copy eval env every ``--eval-every``
env steps. The training clock excludes evaluation (reported separately); a run stops at
the first evaluation that reaches the target or at the step budget.

    /work/venv/bin/python scripts/bench_onpolicy.py --seeds 3 --sb3
    /work/venv/bin/python scripts/bench_onpolicy.py --quick          # smoke run

Targets: Pendulum-v1 >= -200, CartPole-v1 >= 475 (mean of 10 episodes). ``--sb3`` adds
Stable-Baselines3 PPO with the rl-zoo Pendulum-v1 hyperparameters, measured the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from policyopt import vecenvs
from policyopt.algos import ALGORITHMS
from policyopt.algos.core.presets import RECOMMENDED_NUM_ENVS

# env id -> (target return, preset name, step budget)
ENVS: dict[str, tuple[float, str, int]] = {
    "Pendulum-v1": (-200.0, "pendulum", 300_000),
    "CartPole-v1": (475.0, "cartpole", 300_000),
}
EVAL_EPISODES = 10


class TargetReached(Exception):
    """Raised from the logger to end ``learn`` at the first evaluation that reaches the target."""


@dataclass
class RunResult:
    seed: int
    reached: bool
    steps: int  # env steps at the first evaluation >= target (or at the end of the budget)
    train_s: float  # wall-clock seconds without evaluation
    eval_s: float
    final_return: float  # last evaluation's mean return
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train_s, return)


class EvalClock:
    """Evaluates every ``eval_every`` env steps, keeps evaluation off the training clock and
    stops training (by raising :class:`TargetReached`) once the target is reached."""

    def __init__(self, evaluate: Callable[[], float], target: float, eval_every: int) -> None:
        self.evaluate, self.target, self.eval_every = evaluate, target, eval_every
        self.start = time.perf_counter()
        self.eval_s = 0.0
        self.last_eval_step = 0
        self.curve: list[tuple[int, float, float]] = []

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_s

    def check(self, step: int, force: bool = False) -> None:
        if not force and step // self.eval_every <= self.last_eval_step // self.eval_every:
            return
        train_s = self.train_seconds()
        t0 = time.perf_counter()
        ret = self.evaluate()
        self.eval_s += time.perf_counter() - t0
        self.last_eval_step = step
        self.curve.append((step, train_s, ret))
        if ret >= self.target:
            raise TargetReached

    # the logger interface of OnPolicyAlgorithm.learn: called once per update
    def log(self, step: int, record: dict[str, Any]) -> None:
        self.check(step)


def _result(clock: EvalClock, seed: int, target: float, budget_steps: int) -> RunResult:
    step, train_s, ret = clock.curve[-1]
    reached = ret >= target
    if not reached:  # report the time spent on the whole budget
        step, train_s = max(step, budget_steps), clock.train_seconds()
    return RunResult(seed, reached, step, train_s, clock.eval_s, ret, clock.curve)


def run_ours(algo: str, env_id: str, seed: int, num_envs: int, budget: int, eval_every: int) -> RunResult:
    """Train one of our algorithms with the env's preset until the target or the budget."""
    target, preset_name, _ = ENVS[env_id]
    cls = ALGORITHMS[algo]
    config = dataclasses.replace(cls.config_class.preset(preset_name), seed=seed)
    env = vecenvs.make(env_id, num_envs=num_envs, device="cpu", seed=seed)
    eval_env = vecenvs.make(env_id, num_envs=EVAL_EPISODES, device="cpu", seed=seed + 10_000)
    clock = EvalClock(lambda: 0.0, target, eval_every)  # evaluate is bound once the agent exists
    agent = cls(env, config)
    clock.evaluate = lambda: agent.evaluate(eval_env, seed=seed + 10_000)["return_mean"]
    try:
        agent.learn(budget, logger=clock, progress=False)  # type: ignore[arg-type]
        clock.check(agent.global_step, force=clock.last_eval_step != agent.global_step)
    except TargetReached:
        pass
    return _result(clock, seed, target, budget)


def run_sb3(seed: int, budget: int, eval_every: int) -> RunResult:
    """SB3 PPO with the rl-zoo Pendulum-v1 hyperparameters (hyperparams/ppo.yml), same clock."""
    import numpy as np
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env_id = "Pendulum-v1"
    target = ENVS[env_id][0]
    venv = VecNormalize(make_vec_env(env_id, n_envs=4, seed=seed), norm_obs=True, norm_reward=True, gamma=0.9)
    model = SB3PPO(
        "MlpPolicy",
        venv,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        seed=seed,
        device="cpu",
    )
    eval_env = vecenvs.make(env_id, num_envs=EVAL_EPISODES, device="cpu", seed=seed + 10_000)

    def act(obs: torch.Tensor) -> torch.Tensor:
        # freeze the training normaliser's statistics, as our evaluate() does
        action, _ = model.predict(venv.normalize_obs(obs.numpy()), deterministic=True)
        return torch.as_tensor(np.asarray(action), dtype=torch.float32)

    from policyopt.algos.core.evaluation import evaluate

    clock = EvalClock(lambda: evaluate(act, eval_env, seed=seed + 10_000)["return_mean"], target, eval_every)

    class Callback(BaseCallback):
        def _on_rollout_start(self) -> None:  # after each update: the policy just changed
            if self.num_timesteps:
                clock.check(self.num_timesteps)

        def _on_step(self) -> bool:
            return True

    try:
        model.learn(budget, callback=Callback())
        clock.check(model.num_timesteps, force=clock.last_eval_step != model.num_timesteps)
    except TargetReached:
        pass
    return _result(clock, seed, target, budget)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(label: str, env_id: str, preset_name: str, num_envs: int | str, runs: list[RunResult]) -> list[str]:
    ok = [r for r in runs if r.reached]
    steps = f"{_median([r.steps for r in ok]):,.0f}" if ok else "-"
    secs = f"{_median([r.train_s for r in ok]):.1f}" if ok else "-"
    each = " ".join(f"{r.train_s:.1f}{'' if r.reached else '*'}" for r in runs)
    return [
        label,
        env_id,
        preset_name,
        str(num_envs),
        f"{len(ok)}/{len(runs)}",
        steps,
        secs,
        each,
        f"{_median([r.eval_s for r in runs]):.1f}",
        f"{_median([r.final_return for r in runs]):.1f}",
    ]


def print_table(rows: list[list[str]]) -> None:
    header = [
        "algo",
        "env",
        "preset",
        "num_envs",
        "reached",
        "steps to target (med)",
        "train s (med)",
        "train s each (*=missed)",
        "eval s",
        "final return (med)",
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=["ppo", "trpo", "spo"], choices=sorted(ALGORITHMS))
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    p.add_argument("--budget", type=int, default=None, help="env-step budget (default: per env)")
    p.add_argument("--eval-every", type=int, default=2048, help="env steps between evaluations")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--sb3", action="store_true", help="also run SB3 PPO with rl-zoo Pendulum hyperparameters")
    p.add_argument("--sb3-budget", type=int, default=100_000, help="SB3 step budget (rl-zoo: 100k)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 20k-step budget")
    p.add_argument("--verbose", action="store_true", help="print each run's evaluation curve")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    seeds = range(1 if args.quick else args.seeds)

    rows: list[list[str]] = []
    for env_id in args.envs:
        target, preset_name, env_budget = ENVS[env_id]
        budget = 20_000 if args.quick else (args.budget or env_budget)
        for algo in args.algos:
            name = ALGORITHMS[algo].__name__
            num_envs = RECOMMENDED_NUM_ENVS.get((name, env_id), 8)
            runs = []
            for seed in seeds:
                r = run_ours(algo, env_id, seed, num_envs, budget, args.eval_every)
                runs.append(r)
                print(
                    f"{name} {env_id} seed {seed}: reached={r.reached} steps={r.steps:,} train={r.train_s:.1f}s "
                    f"eval={r.eval_s:.1f}s return={r.final_return:.1f}",
                    flush=True,
                )
                if args.verbose:
                    print("   ", [(s, round(t, 1), round(v, 1)) for s, t, v in r.curve])
            rows.append(summarize(name, env_id, preset_name, num_envs, runs))
    if args.sb3 and "Pendulum-v1" in args.envs:
        runs = []
        for seed in seeds:
            r = run_sb3(seed, 10_000 if args.quick else args.sb3_budget, max(args.eval_every, 4096))
            runs.append(r)
            print(
                f"SB3-PPO Pendulum-v1 seed {seed}: reached={r.reached} steps={r.steps:,} train={r.train_s:.1f}s "
                f"return={r.final_return:.1f}",
                flush=True,
            )
        rows.append(summarize("SB3 PPO", "Pendulum-v1", "rl-zoo", 4, runs))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
