"""Learner speed against Stable-Baselines3, side by side in one run (CPU, one torch thread).

Three sections, each printed as one markdown table:

1. ``ppo``: PPO on HalfCheetah-v5, steady-state env steps/s of whole iterations (rollout and
   update) at (a) CleanRL's defaults, 1 env x 2048 steps, and (b) 16 envs x 128 steps; 32
   minibatches and 10 epochs both. Ours eager and compiled on the native env with its
   compiled step (``vecenvs.make(..., compile=True)``, what ``--env-compile`` does), at (a)
   also on the uncompiled env; SB3 PPO with the same hyperparameters on gymnasium's own env
   (``make_vec_env`` + ``VecNormalize``, as an SB3 user runs it). A warm-up iteration (env
   reset, compilation) comes first; compile seconds are reported apart. CleanRL is not a pip
   package: its numbers on this machine are quoted from the issue, not run.
2. ``offpolicy``: SAC and TD3 on HalfCheetah-v5, 1 env, batch 256, 256x256 nets, one gradient
   step per env step: iterations/s after ``learning_starts`` (= updates/s = env steps/s), and
   the update alone (ours: ``gradient_step(buffer.sample(256))``; SB3: ``model.train``).
3. ``time``: env steps and training seconds (evaluation excluded) to a return: SAC on
   Pendulum-v1 to -200 (ours: the ``pendulum`` preset; SB3: rl-zoo's settings, learning
   after 1,000 steps as ours), evaluating every 1,000 steps on 10 episodes, 20k-step budget.
   ``--halfcheetah-target`` adds PPO on HalfCheetah-v5 to 1,500 (16 envs x 128 steps,
   evaluation every 20k steps, 300k-step budget; about 15 min for its three rows per seed on 2 CPUs).

    python scripts/bench_learner.py                  # sections 1-3(a), ~15-20 min on 2 CPUs
    python scripts/bench_learner.py --quick          # smoke run, ~1 min
    python scripts/bench_learner.py --only offpolicy # one section
    python scripts/bench_learner.py --cold-compile   # compile seconds as a first run pays them
    python scripts/bench_learner.py --only time --seeds 3 --halfcheetah-target

One run of each row, in sequence: on a shared machine, compare the load average printed
with each table, and rerun a section (``--only``) to check a surprising ratio.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, SAC, TD3, PPOConfig, SACConfig, TD3Config
from policyopt.algos.run.benchmarks import load, print_table, progress

ENV_ID = "HalfCheetah-v5"
#: CleanRL's ppo_continuous_action.py on this machine, as the issue quotes it (steps/s)
CLEANRL_QUOTED = {"a": 2065.0, "b": 3547.0}
EVAL_EPISODES = 10


# --- rows and tables ----------------------------------------------------------------------------
def attempt(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``, or ``{"error": ...}`` with the exception's first line (a failed compile must not end the run)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - any failure becomes the row's text
        traceback.print_exc(file=sys.stderr)
        msg = " ".join(str(e).split())[:160]
        return {"error": f"{type(e).__name__}: {msg}".replace("|", "/")}
    finally:
        gc.collect()


def fmt(x: Any, spec: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def ratio(x: float | None, base: float | None) -> str:
    return f"{x / base:.2f}x" if x and base else "-"


def sb3_vec_env(env_id: str, n_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_id, n_envs=n_envs, seed=seed)  # DummyVecEnv of gym.make(env_id) + Monitor


# --- 1. PPO steady state ------------------------------------------------------------------------
@dataclass
class PPOSetting:
    key: str
    num_envs: int
    num_steps: int
    iters: int  # timed iterations after the warm-up one

    @property
    def batch(self) -> int:
        return self.num_envs * self.num_steps

    def label(self) -> str:
        return f"({self.key}) {self.num_envs} x {self.num_steps}"


def ppo_ours(s: PPOSetting, compile_learner: bool, compile_env: bool) -> dict[str, Any]:
    env = vecenvs.make(ENV_ID, num_envs=s.num_envs, seed=0, **({"compile": True} if compile_env else {}))
    agent = PPO(env, PPOConfig(num_steps=s.num_steps, num_minibatches=32, update_epochs=10, compile=compile_learner))
    t0 = time.perf_counter()
    agent.learn(s.batch, progress=False)  # warm-up: env reset, compilation
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    agent.learn(agent.global_step + s.batch * s.iters, progress=False)
    dt = time.perf_counter() - t0
    return {"sps": s.batch * s.iters / dt, "warm": warm, "compile": agent.compile_seconds}


def ppo_sb3(s: PPOSetting) -> dict[str, Any]:
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    venv = VecNormalize(
        sb3_vec_env(ENV_ID, s.num_envs, seed=0), norm_obs=True, norm_reward=True, clip_obs=10.0, clip_reward=10.0, gamma=0.99
    )  # CleanRL's obs and reward normalization
    model = SB3PPO(
        "MlpPolicy",
        venv,
        n_steps=s.num_steps,
        batch_size=s.batch // 32,
        n_epochs=10,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh),
        device="cpu",
        seed=0,
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=s.batch)  # warm-up iteration
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.learn(total_timesteps=s.batch * s.iters, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    venv.close()
    return {"sps": s.batch * s.iters / dt, "warm": warm, "compile": None}


def section_ppo(quick: bool) -> None:
    settings = (
        [PPOSetting("a", 1, 128, 1), PPOSetting("b", 16, 8, 1)]
        if quick
        else [PPOSetting("a", 1, 2048, 2), PPOSetting("b", 16, 128, 3)]
    )
    load0 = load()
    rows = []
    for s in settings:
        runs: list[tuple[str, str, dict[str, Any] | None]] = []
        variants = [
            ("ours, eager", "native, compiled step", False, True),
            ("ours, compiled", "native, compiled step", True, True),
        ]
        if s.key == "a":
            variants += [
                ("ours, eager", "native, uncompiled", False, False),
                ("ours, compiled", "native, uncompiled", True, False),
            ]
        for name, env_label, cl, ce in variants:
            progress(f"PPO {s.label()}: {name}, {env_label} env")
            runs.append((name, env_label, attempt(lambda: ppo_ours(s, cl, ce))))
        progress(f"PPO {s.label()}: SB3")
        sb3 = attempt(lambda: ppo_sb3(s))
        runs.append(("SB3 PPO", "gymnasium `DummyVecEnv` + `VecNormalize`", sb3))
        runs.append(
            (
                "CleanRL (quoted from the issue, not run)",
                "gymnasium `SyncVectorEnv`",
                {"sps": CLEANRL_QUOTED[s.key], "quoted": True},
            )
        )
        base, cleanrl = sb3.get("sps"), CLEANRL_QUOTED[s.key]
        for name, env_label, r in runs:
            if "error" in r:
                rows.append([s.label(), name, env_label, r["error"], "-", "-", "-", "-"])
                continue
            quoted = r.get("quoted", False)
            rows.append(
                [
                    s.label(),
                    name,
                    env_label,
                    fmt(r["sps"]),
                    ratio(r["sps"], base),
                    "-" if quoted or name.startswith("SB3") else ratio(r["sps"], cleanrl),
                    fmt(r.get("compile"), ".1f"),
                    fmt(r.get("warm"), ".1f"),
                ]
            )
    k = "/".join(f"K={s.iters} at ({s.key})" for s in settings)
    print_table(
        f"**PPO on {ENV_ID}, steady-state env steps/s** (rollout + update; 32 minibatches, 10 epochs, 64x64 tanh, "
        f"obs+reward normalization; mean of {k} iterations after one warm-up; torch.set_num_threads(1) for ours "
        f"and SB3, same process, device cpu; {load0} at start, {load()} at end. Compile s: the learner's, counted "
        f"by `agent.compile_seconds`; a row whose graphs an earlier row compiled with the same shapes reuses them. "
        f"Warm-up s: the first iteration, env compilation included)",
        ["envs x steps", "implementation", "env", "steps/s", "vs SB3", "vs CleanRL (quoted)", "compile s", "warm-up s"],
        rows,
    )


# --- 2. SAC / TD3 iterations/s ------------------------------------------------------------------
def offpolicy_ours(algo: str, compile_learner: bool, learning_starts: int, n: int, warm: int) -> dict[str, Any]:
    env = vecenvs.make(ENV_ID, num_envs=1, seed=0, compile=True)
    cls, cfg_cls = (SAC, SACConfig) if algo == "SAC" else (TD3, TD3Config)
    agent = cls(
        env,
        cfg_cls(
            learning_starts=learning_starts,
            batch_size=256,
            actor_hidden=(256, 256),
            critic_hidden=(256, 256),
            compile=compile_learner,
        ),
    )
    t0 = time.perf_counter()
    agent.learn(learning_starts + warm, progress=False)  # random steps, then `warm` updates (compilation)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    agent.learn(agent.global_step + n, progress=False)
    dt = time.perf_counter() - t0
    # the update alone: sampling and one gradient step, no env
    for _ in range(10):
        agent.gradient_step(agent.buffer.sample(256))
    t1 = time.perf_counter()
    for _ in range(n):
        metrics = agent.gradient_step(agent.buffer.sample(256))
    float(next(iter(metrics.values())))  # wait for the last step
    dt_update = time.perf_counter() - t1
    return {"ips": n / dt, "ups": n / dt_update, "warm": warm_s, "compile": agent.compile_seconds}


def offpolicy_sb3(algo: str, learning_starts: int, n: int, warm: int) -> dict[str, Any]:
    from stable_baselines3 import SAC as SB3SAC, TD3 as SB3TD3
    from stable_baselines3.common.noise import NormalActionNoise

    venv = sb3_vec_env(ENV_ID, 1, seed=0)
    common = dict(
        batch_size=256,
        learning_starts=learning_starts,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs=dict(net_arch=[256, 256]),
        device="cpu",
        seed=0,
        verbose=0,
    )
    if algo == "SAC":
        model = SB3SAC("MlpPolicy", venv, learning_rate=3e-4, **common)
    else:  # ours (CleanRL's) TD3: lr 3e-4 and Gaussian exploration noise 0.1; SB3's defaults are 1e-3 and none
        act_dim = venv.action_space.shape[0]
        model = SB3TD3(
            "MlpPolicy",
            venv,
            learning_rate=3e-4,
            action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)),
            **common,
        )
    t0 = time.perf_counter()
    model.learn(total_timesteps=learning_starts + warm)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.learn(total_timesteps=n, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.train(gradient_steps=n, batch_size=256)  # the update alone: SB3's own loop of sample + gradient step
    dt_update = time.perf_counter() - t1
    venv.close()
    return {"ips": n / dt, "ups": n / dt_update, "warm": warm_s, "compile": None}


def section_offpolicy(quick: bool) -> None:
    learning_starts, n, warm = (100, 100, 10) if quick else (1000, 1000, 50)
    load0 = load()
    rows = []
    for algo in ("SAC", "TD3"):
        results = []
        for name, cl in (("ours, eager", False), ("ours, compiled", True)):
            progress(f"{algo}: {name}")
            results.append((name, attempt(lambda: offpolicy_ours(algo, cl, learning_starts, n, warm))))
        progress(f"{algo}: SB3")
        sb3 = attempt(lambda: offpolicy_sb3(algo, learning_starts, n, warm))
        results.append((f"SB3 {algo}", sb3))
        for kind, key in (("learn (env step + update)", "ips"), ("update only", "ups")):
            for name, r in results:
                if "error" in r:
                    rows.append([algo, name, kind, r["error"], "-", "-", "-"])
                    continue
                rows.append(
                    [algo, name, kind, fmt(r[key]), ratio(r[key], sb3.get(key)), fmt(r["compile"], ".1f"), fmt(r["warm"], ".1f")]
                )
    print_table(
        f"**SAC and TD3 on {ENV_ID}, iterations/s** (1 env, batch 256, 256x256 nets, train_freq 1, 1 gradient step "
        f"per env step: iterations/s = updates/s = env steps/s; {n:,} timed steps after learning_starts={learning_starts:,} "
        f"and {warm} warm-up updates; update only: ours `gradient_step(buffer.sample(256))`, SB3 `model.train`; "
        f"ours on the native env with its compiled step, SB3 on gymnasium's `DummyVecEnv`; "
        f"torch.set_num_threads(1) for ours and SB3, same process, device cpu; {load0} at start, {load()} at end)",
        ["algo", "implementation", "what", "iterations/s", "vs SB3", "compile s", "warm-up s"],
        rows,
    )


# --- 3. time to a return ------------------------------------------------------------------------
@dataclass
class Curve:
    """Training seconds exclude evaluation; ``points`` are (env steps, train seconds, return)."""

    target: float
    points: list[tuple[int, float, float]] = dataclasses.field(default_factory=list)
    eval_s: float = 0.0
    compile_s: float | None = None

    def reached(self) -> tuple[int, float] | None:
        for step, secs, ret in self.points:
            if ret >= self.target:
                return step, secs
        return None


def train_to_target(
    learn_to: Callable[[int], int], evaluate: Callable[[], float], target: float, eval_every: int, budget: int
) -> Curve:
    """Alternate ``learn_to(step)`` (returns the step reached) and ``evaluate()`` until the target or the budget."""
    curve = Curve(target)
    train_s, step = 0.0, 0
    while step < budget:
        t0 = time.perf_counter()
        step = learn_to(min(step + eval_every, budget))
        train_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        ret = evaluate()
        curve.eval_s += time.perf_counter() - t0
        curve.points.append((step, train_s, ret))
        if ret >= target:
            break
    return curve


def sb3_evaluator(model: Any, env_id: str, seed: int, venv_norm: Any = None) -> Callable[[], float]:
    """``evaluate_policy`` on a gymnasium env, 10 deterministic episodes, reseeded before each evaluation.
    With ``venv_norm`` (a training ``VecNormalize``) its observation statistics are applied, frozen."""
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    eval_env = DummyVecEnv([lambda: gym.make(env_id)])
    if venv_norm is not None:
        eval_env = VecNormalize(eval_env, training=False, norm_obs=True, norm_reward=False, clip_obs=venv_norm.clip_obs)

    def evaluate() -> float:
        if venv_norm is not None:
            eval_env.obs_rms = venv_norm.obs_rms.copy()
        eval_env.seed(seed)
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True, warn=False)
        return float(mean)

    return evaluate


def sac_pendulum_ours(seed: int, compile_learner: bool, budget: int, eval_every: int) -> Curve:
    env = vecenvs.make("Pendulum-v1", num_envs=1, seed=seed)
    eval_env = vecenvs.make("Pendulum-v1", num_envs=EVAL_EPISODES, seed=10_000)
    agent = SAC(env, dataclasses.replace(SACConfig.preset("pendulum"), seed=seed, compile=compile_learner))

    def learn_to(step: int) -> int:
        agent.learn(step, progress=False)
        return agent.global_step

    curve = train_to_target(learn_to, lambda: agent.evaluate(eval_env, seed=10_000)["return_mean"], -200.0, eval_every, budget)
    curve.compile_s = agent.compile_seconds
    return curve


def sac_pendulum_sb3(seed: int, budget: int, eval_every: int) -> Curve:
    from stable_baselines3 import SAC as SB3SAC

    # rl-zoo hyperparams/sac.yml Pendulum-v1: lr 1e-3, defaults otherwise; learning_starts 1000 as ours
    model = SB3SAC(
        "MlpPolicy",
        sb3_vec_env("Pendulum-v1", 1, seed=seed),
        learning_rate=1e-3,
        learning_starts=1000,
        device="cpu",
        seed=seed,
        verbose=0,
    )

    def learn_to(step: int) -> int:
        model.learn(total_timesteps=step - model.num_timesteps, reset_num_timesteps=False)
        return model.num_timesteps

    return train_to_target(learn_to, sb3_evaluator(model, "Pendulum-v1", 10_000), -200.0, eval_every, budget)


def ppo_halfcheetah_ours(seed: int, compile_learner: bool, budget: int, eval_every: int) -> Curve:
    env = vecenvs.make(ENV_ID, num_envs=16, seed=seed, compile=True)
    eval_env = vecenvs.make(ENV_ID, num_envs=EVAL_EPISODES, seed=10_000)
    # the lr anneals over the whole budget, although learn() is called once per evaluation
    agent = PPO(env, PPOConfig(num_steps=128, anneal_lr_steps=budget, seed=seed, compile=compile_learner))

    def learn_to(step: int) -> int:
        agent.learn(step, progress=False)
        return agent.global_step

    curve = train_to_target(learn_to, lambda: agent.evaluate(eval_env, seed=10_000)["return_mean"], 1500.0, eval_every, budget)
    curve.compile_s = agent.compile_seconds
    return curve


def ppo_halfcheetah_sb3(seed: int, budget: int, eval_every: int) -> Curve:
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    venv = VecNormalize(
        sb3_vec_env(ENV_ID, 16, seed=seed), norm_obs=True, norm_reward=True, clip_obs=10.0, clip_reward=10.0, gamma=0.99
    )
    holder: dict[str, Any] = {}

    def lr(_: float) -> float:  # CleanRL's linear annealing over the whole budget (SB3's own progress restarts per learn call)
        model = holder.get("model")
        return 3e-4 * max(1.0 - (model.num_timesteps if model is not None else 0) / budget, 0.0)

    model = SB3PPO(
        "MlpPolicy",
        venv,
        n_steps=128,
        batch_size=16 * 128 // 32,
        n_epochs=10,
        learning_rate=lr,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh),
        device="cpu",
        seed=seed,
        verbose=0,
    )
    holder["model"] = model

    def learn_to(step: int) -> int:
        model.learn(total_timesteps=step - model.num_timesteps, reset_num_timesteps=False)
        return model.num_timesteps

    return train_to_target(learn_to, sb3_evaluator(model, ENV_ID, 10_000, venv_norm=venv), 1500.0, eval_every, budget)


def section_time(quick: bool, seeds: int, halfcheetah: bool) -> None:
    tasks: list[tuple[str, int, int, list[tuple[str, Callable[[int], Curve]]]]] = []
    budget, every = (1_200, 600) if quick else (20_000, 1_000)
    tasks.append(
        (
            f"SAC, Pendulum-v1 to -200 (1 env; budget {budget:,}, eval every {every:,})",
            budget,
            every,
            [
                ("ours, eager (`pendulum` preset)", lambda s: sac_pendulum_ours(s, False, budget, every)),
                ("ours, compiled (`pendulum` preset)", lambda s: sac_pendulum_ours(s, True, budget, every)),
                ("SB3 SAC (rl-zoo: lr 1e-3, learning_starts 1000)", lambda s: sac_pendulum_sb3(s, budget, every)),
            ],
        )
    )
    if halfcheetah:
        hb, he = (4_096, 2_048) if quick else (300_000, 20_000)
        tasks.append(
            (
                f"PPO, {ENV_ID} to 1,500 (16 envs x 128; budget {hb:,}, eval every {he:,})",
                hb,
                he,
                [
                    ("ours, eager", lambda s, hb=hb, he=he: ppo_halfcheetah_ours(s, False, hb, he)),
                    ("ours, compiled", lambda s, hb=hb, he=he: ppo_halfcheetah_ours(s, True, hb, he)),
                    ("SB3 PPO (same hyperparameters)", lambda s, hb=hb, he=he: ppo_halfcheetah_sb3(s, hb, he)),
                ],
            )
        )
    load0 = load()
    rows = []
    for task, budget_, _, runs in tasks:
        for name, fn in runs:
            for seed in range(seeds):
                progress(f"{task.split(' (')[0]}: {name}, seed {seed}")
                r = attempt(lambda: {"curve": fn(seed)})
                if "error" in r:
                    rows.append([task, name, str(seed), r["error"], "-", "-", "-", "-", "-"])
                    continue
                c: Curve = r["curve"]
                hit = c.reached()
                last_step, last_s, last_ret = c.points[-1]
                rows.append(
                    [
                        task,
                        name,
                        str(seed),
                        "yes" if hit else "no",
                        fmt(hit[0]) if hit else f"> {budget_:,}",
                        fmt(hit[1] if hit else last_s, ".1f"),
                        fmt(c.compile_s, ".1f"),
                        fmt(last_ret, ".1f"),
                        fmt(c.eval_s, ".1f"),
                    ]
                )
    print_table(
        f"**Time to a return** (env steps and training wall seconds at the first evaluation that reaches the target, "
        f"or at the budget; evaluation: 10 deterministic episodes, excluded from the clock; training seconds include "
        f"compilation; torch.set_num_threads(1) for ours and SB3, same process, device cpu; {load0} at start, {load()} at end)",
        ["task", "implementation", "seed", "reached", "env steps", "train s", "compile s", "last eval return", "eval s"],
        rows,
    )


# --- main ---------------------------------------------------------------------------------------
SECTIONS = ("ppo", "offpolicy", "time")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="smoke run with tiny budgets (~1 min): checks the script, measures nothing"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for the time-to-return runs")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    p.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into a fresh, empty inductor cache (a first run's compile seconds); default: the cache as found",
    )
    p.add_argument(
        "--halfcheetah-target",
        action="store_true",
        help="in the time section, also PPO on HalfCheetah-v5 to 1,500 (300k-step budget: long)",
    )
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")

    if args.cold_compile:  # read when inductor first compiles, so setting it here is early enough
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache = tempfile.mkdtemp(prefix="bench_learner_inductor_")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    torch.set_num_threads(1)  # SB3 runs in this process, so this is its setting too
    import stable_baselines3

    command = "python " + " ".join(shlex.quote(a) for a in ([sys.argv[0]] + (sys.argv[1:] if argv is None else argv)))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} thread), stable-baselines3 {stable_baselines3.__version__}, "
        f"numpy {np.__version__}"
    )
    print(f"command: `{command}`{' (quick: tiny budgets, not a measurement)' if args.quick else ''}", flush=True)
    print(
        "compile s: "
        + (
            "cold, into a fresh inductor cache"
            if args.cold_compile
            else "with inductor's on-disk cache as found (warm after an earlier run; --cold-compile for a fresh one)"
        )
    )
    t0 = time.perf_counter()
    if "ppo" in args.only:
        section_ppo(args.quick)
    if "offpolicy" in args.only:
        section_offpolicy(args.quick)
    if "time" in args.only:
        section_time(args.quick, 1 if args.quick else args.seeds, args.halfcheetah_target)
    print(f"{time.perf_counter() - t0:.0f} s in all; {load()} at the end")


if __name__ == "__main__":
    main()
