"""Online generative policies against Gaussian PPO, side by side in one run: return against env steps, wall time, throughput.

Every method of a table runs the same env steps with the same seeds (``--seeds``: seed s seeds torch, the
training env and, with 10,000 + s, the eval env), through the Python API (``Algo(env, config).learn``),
eagerly by default (``--compile-runs`` compiles them). A curve is the deterministic policy's return
(``act(obs, deterministic=True)``: the Gaussian's mean, zero noise for the generative policies), over
``--eval-episodes`` episodes of a separate env reseeded at every checkpoint, so each point of every curve
sees the same initial states. Training stops at each checkpoint (``learn`` continues where it stopped;
the learning rates anneal over the whole budget through ``anneal_lr_steps``); the wall time is that of
the ``learn`` calls, evaluation excluded. Cells are the mean ± std over seeds.

1. ``scratch``: FPO and DPPO (K = K' = 10 denoising steps, clip 0.1 at every step: DPPO's from-scratch
   setting) against Gaussian PPO on Pendulum-v1 (``--pendulum-steps``), HalfCheetah-v5 and Hopper-v5
   (``--mujoco-steps``), native batched envs (``vecenvs.make``), 8 copies each. MuJoCo: every algorithm at
   its library defaults (PPO: CleanRL's; FPO: the FPO paper's; DPPO: its fine-tuning values but for
   K, K' and the clip) with one rollout shape, 8 envs x 256 steps = 2,048 per update. Pendulum: the
   settings tests/test_dppo_fpo.py measured FPO and DPPO learning with, shared by all three (8 x 128
   steps, gamma 0.9, lr 1e-3, 64x64 networks, 32 minibatches, 10 epochs), except FPO's lr, its default
   3e-4 (at 1e-3 it peaked near -280 and fell back to -570 by 100k steps; see ``PENDULUM_CHANGES``).
2. ``finetune``: fine-tuning on Hopper-v5 from policies pretrained on the local hopper-medium dataset
   (``--dataset``, built by scripts/make_dataset.py) for ``--bc-updates`` updates each, per seed, or
   given as checkpoints (``--diffusion-bc``, ``--flow-bc``, ``--gaussian-bc``; ``{seed}`` in a path is
   replaced by the seed): DPPO from Diffusion-BC (K = 10, every step fine-tuned, ``--algo.pretrained``),
   FPO from flow Diffusion-BC (``--algo.family flow``, FPO's ``pretrained``), DSRL (SAC in the noise
   space of the same frozen Diffusion-BC, ``--base``), and Gaussian PPO from Gaussian BC. The three
   on-policy methods share 8 envs x 256 steps; DSRL is SAC at its defaults (1 env, one gradient step per
   env step, 5,000 random-noise steps first). Each keeps its pretrained policy's frozen observation
   normaliser (the dataset's statistics).

   Gaussian PPO cannot load a ``BC`` checkpoint directly: ``PPO.load_modules(path, ["policy"])`` raises,
   since PPO's ``GaussianPolicy`` is ``body.*`` / ``head.mean`` with a linear, unbounded mean and a
   ``head.log_std``, while BC's ``DeterministicActor`` is ``trunk.*`` / ``head`` with a tanh mean in
   [-1, 1] mapped to the action bounds, on observations normalised by the dataset. Renaming keys would
   load the weights but drop the tanh and the bounds map, so the policy would not act like BC. The
   adapter here, :class:`BCGaussianPolicy`, keeps BC's actor as it is and adds a state-independent
   log-std (``--bc-log-std``, as BC has none): ``N(bounds(tanh(MLP(s))), exp(log_std)^2)``, whose mode
   is BC's action; the dataset's normaliser is installed and frozen as DPPO does.
3. ``throughput``: steady-state env steps/s and gradient updates/s of whole iterations (rollout and
   update) of each method with ``compile`` off and on (``--compile``), after warm-up iterations that
   pay the compile; on ``--throughput-env``, at the from-scratch MuJoCo settings (DSRL: its defaults,
   with an untrained Diffusion-BC-sized base, as speed does not depend on weights). An on-policy
   "update" is one minibatch gradient step (epochs x minibatches per rollout); DSRL's is one SAC step.

Targets (the issue's), printed as met / not met: FPO's final return at least Gaussian PPO's on
HalfCheetah-v5 and on Hopper-v5 (mean over seeds); FPO reaches -250 or better on Pendulum-v1; DPPO's
fine-tuning ends above its pretrained start; wall time per env step at most 3x Gaussian PPO's for FPO
and 6x for DPPO (K' = 10), from the throughput table (compile off and on) and from the MuJoCo runs.

Time with the defaults on the project's 2-core CPU under load (about 4 on 2 cores, measured per update;
an idle machine is about 1.5-2x faster): scratch about 2 h 15 min (DPPO, about 300 steps/s on MuJoCo,
is two thirds of it), finetune about 1 h (DSRL's SAC steps, about 65 steps/s, half of it), throughput
10-15 min (mostly compiling FPO and DPPO), so about 3.5 h in all. ``--seeds 1`` is a third of the first two.

    python scripts/bench_generative_online.py                        # everything, 3 seeds, about 3.5 h
    python scripts/bench_generative_online.py --quick                # smoke run, tiny sizes: checks the script, measures nothing
    python scripts/bench_generative_online.py --only scratch --envs Pendulum-v1
    python scripts/bench_generative_online.py --only finetune --diffusion-bc runs/dbc/seed{seed}/checkpoint.pt \\
        --flow-bc runs/flow/seed{seed}/checkpoint.pt --gaussian-bc runs/bc/seed{seed}/checkpoint.pt
    python scripts/bench_generative_online.py --only throughput --compile off
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

ROOT = Path(__file__).resolve().parents[1]

from policyopt import vecenvs  # noqa: E402
from policyopt.algos import (  # noqa: E402
    BC,
    DPPO,
    DSRL,
    FPO,
    PPO,
    Algorithm,
    BCConfig,
    DiffusionBC,
    DiffusionBCConfig,
    DPPOConfig,
    DSRLConfig,
    FPOConfig,
    PPOConfig,
)
from policyopt.algos.core.checkpoint import load_checkpoint, space_from_description  # noqa: E402
from policyopt.algos.offpolicy.dsrl import BasePolicy  # noqa: E402
from policyopt.algos.core.evaluation import evaluate  # noqa: E402
from policyopt.algos.offline.base import DatasetSpaces  # noqa: E402
from policyopt.algos.onpolicy.base import OnPolicyAlgorithm  # noqa: E402
from policyopt.algos.run.benchmarks import load, print_table, progress, short_error  # noqa: E402
from policyopt.buffers import OfflineDataset  # noqa: E402
from policyopt.buffers.dataset import load_dataset  # noqa: E402
from policyopt.nets import DeterministicActor, DistributionPolicy  # noqa: E402
from policyopt.nets.spec import build_module  # noqa: E402

SCRATCH_ENVS = ("Pendulum-v1", "HalfCheetah-v5", "Hopper-v5")
FINETUNE_ENV = "Hopper-v5"
DEFAULT_DATASET = ROOT / "datasets" / "hopper-medium-v5.hdf5"
MAKE_DATASET = "python scripts/make_dataset.py --env-id Hopper-v5 --out-dir datasets --levels medium"
NUM_ENVS = 8
MUJOCO_ROLLOUT = dict(num_steps=256)  # 8 envs x 256 = 2,048 per update, CleanRL's batch
# tests/test_dppo_fpo.py's Pendulum settings (FPO and DPPO measured learning with them), for all three methods
PENDULUM = dict(
    num_steps=128,
    num_minibatches=32,
    update_epochs=10,
    gamma=0.9,
    learning_rate=1e-3,
    actor_hidden=(64, 64),
    critic_hidden=(64, 64),
)
# per-method changes to PENDULUM: FPO at its own default lr, 3e-4; at 1e-3 it reached -279 by 25k steps, then fell back to
# -571 by 100k (seed 0; -369 sampling its actions), while at 3e-4 it reached -189 and stayed there
PENDULUM_CHANGES: dict[str, dict[str, Any]] = {"FPO": dict(learning_rate=3e-4)}
# DPPO from scratch (Ren et al. 2025): K = K' = 10 denoising steps, one clip range at every step
DPPO_SCRATCH = dict(num_timesteps=10, ft_denoising_steps=None, clip_coef=0.1, clip_coef_base=0.1)
DIFFUSION_BC = dict(num_timesteps=10)  # DPPO fine-tunes K' = 10 steps; Diffusion-BC's other settings are its defaults
EVAL_SEED_OFFSET = 10_000
# the targets
PENDULUM_TARGET = -250.0
FPO_WALL_TARGET, DPPO_WALL_TARGET = 3.0, 6.0
# --quick: tiny networks and rollouts for every config that has the field
QUICK_FIELDS: dict[str, Any] = dict(
    num_steps=16,
    num_minibatches=2,
    update_epochs=1,
    actor_hidden=(16, 16),
    critic_hidden=(16, 16),
    num_mc_samples=2,
    num_timesteps=3,
    time_dim=4,
    batch_size=16,
    learning_starts=16,
    buffer_size=2_000,
)
QUICK_NUM_ENVS = 2


# --- helpers --------------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def num(x: float, spec: str = ",.0f") -> str:
    text = format(x, spec)
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no "-0"


def mean_std(xs: Sequence[float], spec: str = ",.0f") -> str:
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return "-"
    return num(statistics.fmean(xs), spec) + (f" ± {num(statistics.pstdev(xs), spec)}" if len(xs) > 1 else "")


def fmean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return statistics.fmean(xs) if xs else float("nan")


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


@dataclass
class Sizes:
    """What ``--quick`` shrinks: networks and rollouts (``QUICK_FIELDS``), env copies, evaluation."""

    quick: bool
    compile_runs: bool
    eval_episodes: int
    device: torch.device

    @property
    def num_envs(self) -> int:
        return QUICK_NUM_ENVS if self.quick else NUM_ENVS

    def config(self, cls: type, **fields: Any) -> Any:
        """``cls(**fields)`` with ``compile`` from ``--compile-runs`` and, with ``--quick``, the tiny sizes it has fields for."""
        names = {f.name for f in dataclasses.fields(cls)}
        quick = {k: v for k, v in QUICK_FIELDS.items() if k in names} if self.quick else {}
        return cls(**{"compile": self.compile_runs, **fields, **quick})

    def eval_env(self, env_id: str, seed: int) -> gym.vector.VectorEnv:
        # --quick: 20-step episodes, so a check of the script does not wait for 1,000-step MuJoCo episodes
        kwargs = {"max_episode_steps": 20} if self.quick else {}
        return vecenvs.make(env_id, num_envs=self.eval_episodes, seed=EVAL_SEED_OFFSET + seed, device=self.device, **kwargs)


def grid_checkpoints(budget: int, count: int, per_iteration: Sequence[int]) -> list[int]:
    """``count`` evaluation points up to ``budget`` env steps, on multiples of every method's iteration size
    (their least common multiple), so every method of a table is evaluated at exactly the same steps."""
    grid = math.lcm(*per_iteration)
    last = grid * max(1, math.ceil(budget / grid))
    points = sorted({grid * max(1, round(last * i / count / grid)) for i in range(1, count + 1)})
    return points[:-1] + [last] if points[-1] != last else points


# --- the adapter: Gaussian PPO from a Gaussian BC checkpoint ------------------------------------------
class BCGaussianPolicy(DistributionPolicy):
    """Gaussian PPO's policy around a ``BC`` actor: ``N(low + (actor(s) + 1) (high - low) / 2, diag(exp(log_std))^2)``.

    ``actor`` is BC's :class:`nets.DeterministicActor` unchanged (``tanh(MLP(s))`` in [-1, 1]), mapped to the
    action bounds as BC maps it, so the mode is BC's action; ``log_std`` is one learned parameter per action
    dimension, as PPO's ``GaussianPolicy``. The samples are unbounded: the env side clips them (PPO's
    ``ClipAction``), as for any Gaussian PPO policy.
    """

    def __init__(
        self, actor_kwargs: dict[str, Any], action_low: Sequence[float], action_high: Sequence[float], log_std_init: float = -1.0
    ) -> None:
        super().__init__()
        self.actor = DeterministicActor(**actor_kwargs)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))
        self.log_std = nn.Parameter(torch.full((self.actor.act_dim,), float(log_std_init)))

    def distribution(self, obs: Tensor) -> Distribution:
        mean = self.action_low + (self.actor(obs) + 1.0) * (self.action_high - self.action_low) / 2
        return Independent(Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False), 1, validate_args=False)

    @classmethod
    def from_bc_checkpoint(
        cls, path: str | Path, observation_space: gym.Space, action_space: gym.Space, log_std_init: float
    ) -> tuple["BCGaussianPolicy", dict[str, Tensor]]:
        """The policy around the checkpoint's actor, with its weights, and the checkpoint's ``obs_normalizer`` state."""
        state = load_checkpoint(path, map_location="cpu")
        spec = state.get("policy_spec")
        if spec is None or not spec["class"].endswith(":DeterministicActor"):
            raise ValueError(
                f"{path} holds a {state['algo']} checkpoint whose policy is {state.get('policy_class')}; the "
                "Gaussian-BC adapter wraps a BC checkpoint's DeterministicActor (scripts/train_bc.py)"
            )
        obs, act = space_from_description(state["observation_space"]), space_from_description(state["action_space"])
        if (
            obs.shape != observation_space.shape
            or act.shape != action_space.shape
            or not (np.allclose(act.low, action_space.low) and np.allclose(act.high, action_space.high))
        ):
            raise ValueError(
                f"{path} was trained on observations {obs.shape} and actions {act}; the env has "
                f"{observation_space.shape} and {action_space}"
            )
        actor_kwargs = build_module(spec).init_kwargs()  # plain kwargs, however the checkpoint recorded the call
        policy = cls(actor_kwargs, action_space.low.tolist(), action_space.high.tolist(), log_std_init)
        policy.actor.load_state_dict(state["modules"]["policy"])
        return policy, state["modules"]["obs_normalizer"]


# --- one training run -------------------------------------------------------------------------------
@dataclass
class Method:
    """One row of a table: how to build its agent for a seed, and its iteration size in env steps."""

    name: str
    per_iteration: int
    build: Callable[[int], Algorithm]  # seed -> a new agent on its own training env
    pretrained: str = ""  # what it starts from (finetune)


@dataclass
class Run:
    """One seed of one method: the evaluation curve, the training seconds (evaluation excluded)."""

    table: str
    method: str
    seed: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    train_s: float = 0.0
    pretrain_s: float | None = None
    error: str = ""

    @property
    def steps(self) -> int:
        return self.curve[-1][0] if self.curve else 0


def eval_return(agent: Algorithm, env: gym.vector.VectorEnv, seed: int) -> float:
    """The deterministic policy's mean return, one episode per copy of ``env``, reseeded with ``seed``."""
    return evaluate(lambda obs: agent.act(obs, deterministic=True), env, seed=seed)["return_mean"]


def train_run(table: str, method: Method, seed: int, env_id: str, checkpoints: list[int], sizes: Sizes) -> Run:
    run = Run(table, method.name, seed)
    try:
        agent = method.build(seed)
        eval_env = sizes.eval_env(env_id, seed)
        run.curve.append((0, eval_return(agent, eval_env, EVAL_SEED_OFFSET + seed)))
        for point in checkpoints:
            t0 = time.perf_counter()
            agent.learn(point, progress=False)
            run.train_s += time.perf_counter() - t0
            run.curve.append((agent.global_step, eval_return(agent, eval_env, EVAL_SEED_OFFSET + seed)))
    except Exception as e:  # noqa: BLE001 - a failed run is its row's text, never the end of the benchmark
        traceback.print_exc(file=sys.stderr)
        run.error = short_error(e)
    finally:
        gc.collect()
    curve = ", ".join(f"{s:,}: {r:.0f}" for s, r in run.curve)
    progress(f"{table} / {method.name} / seed {seed}: {run.error or f'{curve} in {run.train_s:.0f} s'}")
    return run


def curve_table(title: str, methods: list[Method], runs: list[Run], checkpoints: list[int], pretrained: bool = False) -> None:
    header = ["method"] + (["pretrained from", "pretrain s"] if pretrained else [])
    header += ["return @ 0"] + [f"return @ {c:,}" for c in checkpoints] + ["final, each seed", "train s", "env steps/s"]
    rows = []
    for m in methods:
        mine = [r for r in runs if r.method == m.name]
        ok = [r for r in mine if not r.error]
        cells = [m.name] + (
            [
                m.pretrained,
                mean_std([r.pretrain_s for r in mine if r.pretrain_s is not None], ",.0f")
                if any(r.pretrain_s is not None for r in mine)
                else "given",
            ]
            if pretrained
            else []
        )
        for i in range(len(checkpoints) + 1):
            cells.append(mean_std([r.curve[i][1] for r in ok if len(r.curve) > i]))
        cells.append(" / ".join(num(r.curve[-1][1]) if not r.error else f"failed: {r.error}" for r in mine))
        cells += [mean_std([r.train_s for r in ok]), mean_std([r.steps / r.train_s for r in ok if r.train_s > 0])]
        rows.append(cells)
    print_table(title, header, rows)


def finals(runs: list[Run], table: str, method: str) -> list[float]:
    return [r.curve[-1][1] for r in runs if r.table == table and r.method == method and not r.error and r.curve]


# --- 1. from scratch ----------------------------------------------------------------------------------
def scratch_methods(env_id: str, anneal_steps: int, sizes: Sizes) -> list[Method]:
    pendulum = env_id == "Pendulum-v1"
    shared = dict(PENDULUM if pendulum else MUJOCO_ROLLOUT, anneal_lr_steps=anneal_steps)
    n = sizes.num_envs

    def fields(name: str, **own: Any) -> dict[str, Any]:
        return {**shared, **own, **(PENDULUM_CHANGES.get(name, {}) if pendulum else {})}

    configs = {
        "Gaussian PPO": (PPO, sizes.config(PPOConfig, **fields("Gaussian PPO"))),
        "FPO": (FPO, sizes.config(FPOConfig, **fields("FPO"))),
        "DPPO (K'=10)": (DPPO, sizes.config(DPPOConfig, **fields("DPPO (K'=10)", **DPPO_SCRATCH))),
    }

    def builder(cls: type, cfg: Any) -> Callable[[int], Algorithm]:
        return lambda seed: cls(
            vecenvs.make(env_id, num_envs=n, seed=seed, device=sizes.device), dataclasses.replace(cfg, seed=seed)
        )

    return [Method(name, n * cfg.num_steps, builder(cls, cfg)) for name, (cls, cfg) in configs.items()]


def section_scratch(envs: Sequence[str], budgets: dict[str, int], seeds: Sequence[int], count: int, sizes: Sizes) -> list[Run]:
    runs: list[Run] = []
    for env_id in envs:
        methods = scratch_methods(env_id, budgets[env_id], sizes)
        checkpoints = grid_checkpoints(budgets[env_id], count, [m.per_iteration for m in methods])
        methods = scratch_methods(env_id, checkpoints[-1], sizes)  # the learning rates anneal over the whole run
        load0 = load()
        for m in methods:
            for seed in seeds:
                runs.append(train_run(env_id, m, seed, env_id, checkpoints, sizes))
        settings = (
            "PPO, FPO and DPPO each at its library defaults but for one rollout shape, "
            f"{sizes.num_envs} envs x {methods[0].per_iteration // sizes.num_envs} steps"
            if env_id != "Pendulum-v1"
            else f"shared settings {sizes.num_envs} envs x {methods[0].per_iteration // sizes.num_envs} steps, gamma 0.9, "
            "lr 1e-3 (FPO: 3e-4, its default, as it was unstable at 1e-3), 64x64 networks, 32 minibatches, 10 epochs"
        )
        curve_table(
            f"**From scratch on {env_id}** (deterministic eval return, {sizes.eval_episodes} episodes, mean ± std over "
            f"{len(seeds)} seed{'s' * (len(seeds) > 1)}; {settings}; DPPO: K = K' = 10, clip 0.1; lr annealed over "
            f"{checkpoints[-1]:,} steps; train s excludes evaluation; compile {'on' if sizes.compile_runs else 'off'}; "
            f"{load0} at start, {load()} at end)",
            methods,
            [r for r in runs if r.table == env_id],
            checkpoints,
        )
    return runs


# --- 2. fine-tuning from BC -----------------------------------------------------------------------------
BASES = {  # kind -> (flag, algorithm, what it is)
    "diffusion": ("--diffusion-bc", "Diffusion-BC (K = 10)"),
    "flow": ("--flow-bc", "flow Diffusion-BC"),
    "gaussian": ("--gaussian-bc", "Gaussian BC"),
}


def pretrain(kind: str, data: OfflineDataset, seed: int, updates: int, out: Path, sizes: Sizes) -> tuple[Path, float]:
    """Train one base on the dataset for ``updates`` updates; its checkpoint path and training seconds."""
    if kind == "gaussian":
        agent: Algorithm = BC(data, sizes.config(BCConfig, seed=seed, compile=False))
    else:
        fields = DIFFUSION_BC if kind == "diffusion" else dict(family="flow")
        agent = DiffusionBC(data, sizes.config(DiffusionBCConfig, seed=seed, compile=False, **fields))
    t0 = time.perf_counter()
    agent.learn(updates, progress=False)
    seconds = time.perf_counter() - t0
    path = agent.save(out / f"{kind}-seed{seed}.pt")
    progress(f"pretrained {BASES[kind][1]}, seed {seed}: {updates:,} updates in {seconds:.0f} s -> {path}")
    return path, seconds


def finetune_methods(paths: dict[str, dict[int, Path]], anneal_steps: int, log_std: float, sizes: Sizes) -> list[Method]:
    n = sizes.num_envs
    shared = dict(MUJOCO_ROLLOUT, anneal_lr_steps=anneal_steps)

    def env(seed: int) -> gym.vector.VectorEnv:
        return vecenvs.make(FINETUNE_ENV, num_envs=n, seed=seed, device=sizes.device)

    def gaussian_ppo(seed: int) -> Algorithm:
        e = env(seed)
        policy, normalizer = BCGaussianPolicy.from_bc_checkpoint(
            paths["gaussian"][seed], e.single_observation_space, e.single_action_space, log_std
        )
        agent = PPO(e, sizes.config(PPOConfig, **shared, seed=seed), policy=policy)
        agent.freeze_obs_normalization(normalizer)  # the dataset statistics BC was trained on, as DPPO and FPO keep theirs
        return agent

    def dppo(seed: int) -> Algorithm:
        return DPPO(env(seed), sizes.config(DPPOConfig, **shared, seed=seed, pretrained=str(paths["diffusion"][seed])))

    def fpo(seed: int) -> Algorithm:
        return FPO(env(seed), sizes.config(FPOConfig, **shared, seed=seed, pretrained=str(paths["flow"][seed])))

    def dsrl(seed: int) -> Algorithm:
        return DSRL(
            vecenvs.make(FINETUNE_ENV, num_envs=1, seed=seed, device=sizes.device),
            sizes.config(DSRLConfig, seed=seed, base=str(paths["diffusion"][seed])),
        )

    per = n * sizes.config(PPOConfig, **shared).num_steps
    return [
        Method("Gaussian PPO", per, gaussian_ppo, "Gaussian BC (adapter)"),
        Method("FPO", per, fpo, BASES["flow"][1]),
        Method("DPPO (K'=10)", per, dppo, BASES["diffusion"][1]),
        Method("DSRL (SAC)", 1, dsrl, BASES["diffusion"][1] + ", frozen"),
    ]


def dataset_missing_message(path: Path) -> str:
    return (
        f"the fine-tuning section needs the hopper-medium dataset, and {path} does not exist. Build it with\n\n"
        f"    {MAKE_DATASET}\n\n(it trains a PPO behaviour agent first: about 10 minutes on 2 cores), or pass --dataset "
        "PATH, or pass all three pretrained checkpoints (--diffusion-bc, --flow-bc, --gaussian-bc), or leave the "
        "section out (--only scratch throughput)"
    )


def section_finetune(args: argparse.Namespace, seeds: Sequence[int], budget: int, count: int, sizes: Sizes) -> list[Run]:
    given = {kind: getattr(args, flag[2:].replace("-", "_")) for kind, (flag, _) in BASES.items()}
    data = None
    if any(v is None for v in given.values()):
        data = load_dataset(args.dataset)
        env = vecenvs.make(FINETUNE_ENV, num_envs=1)
        data.check_env(env)
        data.action_space = env.single_action_space  # the env's bounds, which a D4RL file does not store
    tmp = tempfile.TemporaryDirectory(prefix="bench_generative_online-")
    out = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(tmp.name)
    paths: dict[str, dict[int, Path]] = {kind: {} for kind in BASES}
    pretrain_s: dict[str, dict[int, float]] = {kind: {} for kind in BASES}
    updates = args.bc_updates
    for seed in seeds:
        for kind in BASES:
            if given[kind] is not None:
                paths[kind][seed] = Path(given[kind].replace("{seed}", str(seed)))
            else:
                paths[kind][seed], pretrain_s[kind][seed] = pretrain(kind, data, seed, updates, out, sizes)
    methods = finetune_methods(paths, budget, args.bc_log_std, sizes)
    checkpoints = grid_checkpoints(budget, count, [m.per_iteration for m in methods])
    methods = finetune_methods(paths, checkpoints[-1], args.bc_log_std, sizes)  # the learning rates anneal over the whole run
    base_of = {"Gaussian PPO": "gaussian", "DPPO (K'=10)": "diffusion", "FPO": "flow", "DSRL (SAC)": "diffusion"}
    runs: list[Run] = []
    load0 = load()
    for m in methods:
        for seed in seeds:
            run = train_run("finetune", m, seed, FINETUNE_ENV, checkpoints, sizes)
            run.pretrain_s = pretrain_s[base_of[m.name]].get(seed)
            runs.append(run)
    source = f"{args.dataset}, {updates:,} updates per base and seed" if data is not None else "given checkpoints"
    curve_table(
        f"**Fine-tuning on {FINETUNE_ENV} from BC-pretrained policies** ({source}; return @ 0 is the pretrained start; "
        f"deterministic eval return, {sizes.eval_episodes} episodes, mean ± std over {len(seeds)} seed"
        f"{'s' * (len(seeds) > 1)}; on-policy: {sizes.num_envs} envs x {methods[0].per_iteration // sizes.num_envs} steps, "
        f"each at its defaults (PPO: CleanRL's, with the Gaussian-BC adapter, log-std {args.bc_log_std:g}; DPPO: its gym "
        "fine-tuning values, all K' = K = 10 steps; FPO: the paper's), the pretrained obs normaliser frozen; DSRL: SAC's "
        "defaults, 1 env, in the noise space of the Diffusion-BC base; pretrain s: each base's own, shared by the rows on "
        f"it; train s excludes evaluation; compile {'on' if sizes.compile_runs else 'off'}; {load0} at start, {load()} at end)",
        methods,
        runs,
        checkpoints,
        pretrained=True,
    )
    if not args.checkpoint_dir:
        tmp.cleanup()
    return runs


# --- 3. throughput ------------------------------------------------------------------------------------
@dataclass
class Throughput:
    method: str
    compile: bool
    sps: float = float("nan")
    ups: float = float("nan")
    rollout_share: float | None = None
    compile_s: float = 0.0
    note: str = ""
    error: str = ""


def throughput_agents(env_id: str, compile: bool, sizes: Sizes) -> list[tuple[str, Callable[[], Algorithm]]]:
    quick = dataclasses.replace(sizes, compile_runs=compile)
    shared = dict(MUJOCO_ROLLOUT)
    n = sizes.num_envs

    def env(copies: int = n) -> gym.vector.VectorEnv:
        return vecenvs.make(env_id, num_envs=copies, seed=0, device=sizes.device)

    def dsrl() -> Algorithm:
        e = env(1)
        spaces = DatasetSpaces(e.single_observation_space, e.single_action_space, sizes.device)
        base = DiffusionBC(spaces, quick.config(DiffusionBCConfig, **DIFFUSION_BC, compile=False))  # untrained: speed only
        frozen = BasePolicy(
            base.policy.requires_grad_(False).eval(),
            base.obs_normalizer.requires_grad_(False).eval(),
            e.single_observation_space,
            e.single_action_space,
            "an untrained Diffusion-BC network",
        )
        # a short random phase: the timed steps are SAC's steady state
        return DSRL(e, quick.config(DSRLConfig, learning_starts=256), base=frozen)

    return [
        ("Gaussian PPO", lambda: PPO(env(), quick.config(PPOConfig, **shared))),
        ("FPO", lambda: FPO(env(), quick.config(FPOConfig, **shared))),
        ("DPPO (K'=10)", lambda: DPPO(env(), quick.config(DPPOConfig, **shared, **DPPO_SCRATCH))),
        ("DSRL (SAC)", dsrl),
    ]


def measure(row: Throughput, make: Callable[[], Algorithm], warm: int, timed: int, dsrl_steps: int) -> None:
    """Steady-state throughput of whole iterations: ``warm`` iterations first (compiling), then ``timed`` ones
    (on-policy) or ``dsrl_steps`` env steps after ``learning_starts`` (DSRL)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            agent = make()
            on_policy = isinstance(agent, OnPolicyAlgorithm)
            if on_policy:
                rollout_s = [0.0]
                collect = agent.collect

                def timed_collect() -> dict[str, Tensor]:
                    t0 = time.perf_counter()
                    out = collect()
                    rollout_s[0] += time.perf_counter() - t0
                    return out

                agent.collect = timed_collect  # type: ignore[method-assign]
                agent.learn(warm * agent.steps_per_iteration, progress=False)
                rollout_s[0] = 0.0
                step0, t0 = agent.global_step, time.perf_counter()
                agent.learn(step0 + timed * agent.steps_per_iteration, progress=False)
                dt = time.perf_counter() - t0
                cfg = agent.config
                updates = timed * cfg.update_epochs * cfg.num_minibatches  # no target_kl: every epoch runs
                row.rollout_share = rollout_s[0] / dt
            else:
                agent.learn(agent.config.learning_starts + warm * 32, progress=False)
                step0, grads0, t0 = agent.global_step, agent.gradient_steps_done, time.perf_counter()
                agent.learn(step0 + dsrl_steps, progress=False)
                dt = time.perf_counter() - t0
                updates = agent.gradient_steps_done - grads0
            row.sps, row.ups = (agent.global_step - step0) / dt, updates / dt
            row.compile_s = agent.compile_seconds
        failed = [w for w in caught if "torch.compile failed" in str(w.message)]
        if failed:
            row.note = f"compile failed, ran eagerly ({len(failed)} step{'s' * (len(failed) > 1)})"
    except Exception as e:  # noqa: BLE001 - a failed row is its text
        traceback.print_exc(file=sys.stderr)
        row.error = short_error(e)
    finally:
        gc.collect()


def section_throughput(
    env_id: str, compiles: Sequence[bool], warm: int, timed: int, dsrl_steps: int, sizes: Sizes
) -> list[Throughput]:
    rows: list[Throughput] = []
    load0 = load()
    for compile in compiles:
        for name, make in throughput_agents(env_id, compile, sizes):
            row = Throughput(name, compile)
            measure(row, make, warm, timed, dsrl_steps)
            rows.append(row)
            progress(
                f"throughput / {name} / compile {'on' if compile else 'off'}: "
                + (row.error or f"{row.sps:,.0f} env steps/s, {row.ups:,.0f} updates/s, compile {row.compile_s:.0f} s")
            )
    base = {r.compile: r.sps for r in rows if r.method == "Gaussian PPO" and not r.error}
    table = []
    for r in rows:
        if r.error:
            table.append([r.method, "on" if r.compile else "off", f"failed: {r.error}", "-", "-", "-", "-"])
            continue
        ppo = base.get(r.compile)
        ratio = f"{ppo / r.sps:.2f}x" if ppo and r.sps > 0 else "-"
        share = "-" if r.rollout_share is None else f"{100 * r.rollout_share:.0f}%"
        table.append(
            [
                r.method,
                "on" if r.compile else "off",
                f"{r.sps:,.0f}",
                f"{r.ups:,.0f}",
                share,
                ratio,
                f"{r.compile_s:.1f}" + (f" ({r.note})" if r.note else ""),
            ]
        )
    print_table(
        f"**Throughput on {env_id}** (steady state of whole iterations, rollout and update, after {warm} warm-up "
        f"iteration{'s' * (warm > 1)} that compile; on-policy: {timed} timed iteration{'s' * (timed > 1)} of "
        f"{sizes.num_envs} envs x {QUICK_FIELDS['num_steps'] if sizes.quick else MUJOCO_ROLLOUT['num_steps']} steps at the "
        "from-scratch MuJoCo settings, an update is one minibatch gradient step; DSRL: SAC's defaults on 1 env, "
        f"{dsrl_steps:,} timed env steps after its random phase, an update is one SAC step, untrained Diffusion-BC-sized "
        f"base (K = 10, 3x256); wall time per env step relative to Gaussian PPO with the same compile setting; "
        f"{torch.get_num_threads()} torch thread{'s' * (torch.get_num_threads() > 1)}, device {sizes.device}; {load0} at "
        f"start, {load()} at end)",
        ["method", "compile", "env steps/s", "updates/s", "rollout share", "wall time per env step vs Gaussian PPO", "compile s"],
        table,
    )
    return rows


# --- targets ------------------------------------------------------------------------------------------
def print_targets(runs: list[Run], throughput: list[Throughput], quick: bool = False) -> None:
    lines = []
    for env_id in ("HalfCheetah-v5", "Hopper-v5"):
        fpo, ppo = finals(runs, env_id, "FPO"), finals(runs, env_id, "Gaussian PPO")
        if fpo and ppo:
            lines.append(
                f"- FPO vs Gaussian PPO on {env_id}, final return (mean of {len(fpo)} / {len(ppo)} seeds): "
                f"{num(fmean(fpo))} vs {num(fmean(ppo))}; target FPO >= PPO: {met(fmean(fpo) >= fmean(ppo))}"
            )
        else:
            lines.append(f"- FPO vs Gaussian PPO on {env_id}: not measured (section scratch, env {env_id} not run or failed)")
    fpo = finals(runs, "Pendulum-v1", "FPO")
    lines.append(
        f"- FPO on Pendulum-v1, final return (mean of {len(fpo)} seeds): {num(fmean(fpo))}; target >= "
        f"{PENDULUM_TARGET:g}: {met(fmean(fpo) >= PENDULUM_TARGET)}"
        if fpo
        else "- FPO on Pendulum-v1: not measured (section scratch, Pendulum-v1 not run or failed)"
    )
    dppo = [r for r in runs if r.table == "finetune" and r.method == "DPPO (K'=10)" and not r.error and len(r.curve) > 1]
    if dppo:
        start, end = fmean([r.curve[0][1] for r in dppo]), fmean([r.curve[-1][1] for r in dppo])
        lines.append(
            f"- DPPO fine-tuning on {FINETUNE_ENV} (mean of {len(dppo)} seeds): pretrained start {num(start)} -> "
            f"final {num(end)}; target: improves on its start: {met(end > start)}"
        )
    else:
        lines.append("- DPPO fine-tuning: not measured (section finetune not run or failed)")
    for compile in (False, True):
        rows = {r.method: r for r in throughput if r.compile == compile and not r.error}
        ppo_row = rows.get("Gaussian PPO")
        for name, target in (("FPO", FPO_WALL_TARGET), ("DPPO (K'=10)", DPPO_WALL_TARGET)):
            if ppo_row is None or name not in rows:
                if throughput:
                    lines.append(
                        f"- wall time per env step, {name} / Gaussian PPO, compile {'on' if compile else 'off'}: not measured"
                    )
                continue
            ratio = ppo_row.sps / rows[name].sps
            lines.append(
                f"- wall time per env step, {name} / Gaussian PPO, throughput table, compile "
                f"{'on' if compile else 'off'}: {ratio:.2f}x; target <= {target:g}x: {met(ratio <= target)}"
            )
    if not throughput:
        lines.append("- wall time per env step from the throughput table: not measured (section throughput not run)")
    for name, target in (("FPO", FPO_WALL_TARGET), ("DPPO (K'=10)", DPPO_WALL_TARGET)):
        per_step = {
            m: fmean(
                [
                    r.train_s / r.steps
                    for r in runs
                    if r.table in ("HalfCheetah-v5", "Hopper-v5") and r.method == m and not r.error and r.steps
                ]
            )
            for m in (name, "Gaussian PPO")
        }
        if all(math.isfinite(v) for v in per_step.values()):
            ratio = per_step[name] / per_step["Gaussian PPO"]
            lines.append(
                f"- wall time per env step, {name} / Gaussian PPO, MuJoCo training runs (evaluation excluded): "
                f"{ratio:.2f}x; target <= {target:g}x: {met(ratio <= target)}"
            )
    print(f"Targets (the issue's){' (quick: tiny sizes, not a measurement)' if quick else ''}:")
    print("\n".join(lines), flush=True)


# --- main ---------------------------------------------------------------------------------------------
SECTIONS = ("scratch", "finetune", "throughput")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run, tiny sizes (16x16 networks, 2 envs x 16 steps, 2 iterations, 1 seed, 20-step eval "
        "episodes): checks the script, measures nothing",
    )
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of the scratch and finetune runs (default 3)")
    p.add_argument("--envs", nargs="+", choices=SCRATCH_ENVS, default=list(SCRATCH_ENVS), help="scratch: these envs")
    p.add_argument("--pendulum-steps", type=int, default=100_000, help="scratch: env steps on Pendulum-v1")
    p.add_argument("--mujoco-steps", type=int, default=200_000, help="scratch: env steps on HalfCheetah-v5 and Hopper-v5")
    p.add_argument("--finetune-steps", type=int, default=50_000, help="finetune: env steps of fine-tuning")
    p.add_argument("--checkpoints", type=int, default=4, help="evaluations after the start, evenly spaced (default 4)")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default 10)")
    p.add_argument("--dataset", default=str(DEFAULT_DATASET), help="finetune: the hopper-medium dataset the bases pretrain on")
    p.add_argument("--bc-updates", type=int, default=10_000, help="finetune: pretraining updates of each base (default 10,000)")
    for kind, (flag, what) in BASES.items():
        p.add_argument(
            flag,
            default=None,
            metavar="PATH",
            help=f"finetune: an existing {what} checkpoint instead of pretraining one ({{seed}} -> the seed)",
        )
    p.add_argument(
        "--bc-log-std",
        type=float,
        default=-1.0,
        help="finetune: initial log-std of the Gaussian-BC adapter (BC has none; default -1: std 0.37)",
    )
    p.add_argument("--checkpoint-dir", default=None, help="finetune: keep the pretrained checkpoints here (default: a temp dir)")
    p.add_argument("--compile-runs", action="store_true", help="scratch and finetune: train with compile on (default off)")
    p.add_argument("--compile", choices=("off", "on", "both"), default="both", help="throughput: compile settings measured")
    p.add_argument("--throughput-env", default="Hopper-v5", help="throughput: the env (default Hopper-v5)")
    p.add_argument("--throughput-iterations", type=int, default=3, help="throughput: timed on-policy iterations (default 3)")
    p.add_argument("--dsrl-steps", type=int, default=2048, help="throughput: timed DSRL env steps (default 2,048)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every run's curve and every throughput row here")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    positive = (
        "seeds",
        "pendulum_steps",
        "mujoco_steps",
        "finetune_steps",
        "checkpoints",
        "eval_episodes",
        "bc_updates",
        "throughput_iterations",
        "dsrl_steps",
        "threads",
    )
    if bad := [f"--{n.replace('_', '-')}" for n in positive if getattr(args, n) < 1]:
        p.error(f"{', '.join(bad)} must be >= 1")
    given_all = all(getattr(args, flag[2:].replace("-", "_")) for flag, _ in BASES.values())
    if "finetune" in args.only and not given_all and not Path(args.dataset).exists():
        raise SystemExit(f"bench_generative_online: {dataset_missing_message(Path(args.dataset))}")  # before hours of other runs

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    quick = args.quick
    sizes = Sizes(quick, args.compile_runs, 2 if quick else args.eval_episodes, device)
    seeds = range(1 if quick else args.seeds)
    tiny = 2 * QUICK_NUM_ENVS * QUICK_FIELDS["num_steps"]  # --quick: two iterations
    budgets = {e: tiny if quick else (args.pendulum_steps if e == "Pendulum-v1" else args.mujoco_steps) for e in SCRATCH_ENVS}
    count = 2 if quick else args.checkpoints
    if quick:
        args.bc_updates = 20
    command = "python " + " ".join(shlex.quote(a) for a in ([sys.argv[0]] + (sys.argv[1:] if argv is None else argv)))
    n = torch.get_num_threads()
    print(
        f"# bench_generative_online: {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({n} thread{'s' * (n > 1)}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"device {device}"
    )
    print(f"command: `{command}`{' (quick: tiny sizes, not a measurement)' if quick else ''}", flush=True)
    print(f"seeds {', '.join(map(str, seeds))}; {load()}")
    t0 = time.perf_counter()
    runs: list[Run] = []
    throughput: list[Throughput] = []
    if "scratch" in args.only:
        runs += section_scratch(args.envs, budgets, seeds, count, sizes)
    if "finetune" in args.only:
        runs += section_finetune(args, seeds, tiny if quick else args.finetune_steps, count, sizes)
    if "throughput" in args.only:
        compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
        throughput = section_throughput(
            args.throughput_env,
            compiles,
            1 if quick else 2,
            1 if quick else args.throughput_iterations,
            32 if quick else args.dsrl_steps,
            sizes,
        )
    print_targets(runs, throughput, quick)
    print(f"\n{time.perf_counter() - t0:.0f} s in all; {load()} at the end", flush=True)
    results = {
        "command": command,
        "torch": torch.__version__,
        "quick": quick,
        "runs": [dataclasses.asdict(r) for r in runs],
        "throughput": [dataclasses.asdict(r) for r in throughput],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
