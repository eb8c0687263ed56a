"""The on-policy machinery written once: env wrapping, rollouts, GAE, the learn loop,
logging, evaluation, NaN guards and checkpoints. PPO, SPO and TRPO only add a config and
an ``update``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from algos.checkpoint import atomic_save, check_spaces, describe_space, load_checkpoint, space_from_description, space_shape
from algos.evaluation import evaluate
from algos.logger import RunLogger
from algos.presets import preset
from buffers import RolloutBuffer
from nets import StochasticPolicy, ValueCritic, make_policy
from vecenvs import ClipAction, NormalizeObservation, NormalizeReward, RecordEpisodeStatistics, TorchVecEnv, TorchVecEnvWrapper, check_device
from vecenvs.wrappers import RunningMeanStd


class TrainingDivergedError(RuntimeError):
    """Raised when a loss or a parameter becomes NaN or infinite; no checkpoint is written after it."""


@dataclass
class OnPolicyConfig:
    """Settings shared by every on-policy algorithm (rollout, GAE, normalisation, networks)."""

    num_steps: int = 2048
    """rollout length per env copy; a batch holds num_steps * num_envs transitions"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda (1: Monte Carlo returns, 0: one-step TD)"""
    truncation_as_termination: bool = False
    """CleanRL parity: treat time-limit truncation as termination (no bootstrap). Biased; off by default."""
    normalize_obs: bool = True
    """normalize observations by running mean/std (saved with the agent)"""
    obs_clip: float = 10.0
    """clip normalized observations to [-obs_clip, obs_clip]"""
    normalize_reward: bool = True
    """scale rewards by the running std of the discounted return"""
    reward_clip: float = 10.0
    """clip scaled rewards to [-reward_clip, reward_clip]"""
    actor_hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the policy MLP"""
    critic_hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the value MLP"""
    activation: str = "tanh"
    """hidden activation of both MLPs (tanh, relu, elu, mish, ...)"""
    log_std_init: float = 0.0
    """initial log standard deviation of a Gaussian policy"""
    state_dependent_std: bool = False
    """Gaussian std from the network (True) or one learned parameter per action dimension (False)"""
    use_sde: bool = False
    """Box actions: generalized state-dependent exploration (gSDE, Raffin et al. 2022) instead of white Gaussian noise"""
    sde_sample_freq: int = -1
    """with use_sde: redraw the exploration noise every this many steps (-1: once per rollout)"""
    seed: int = 0
    """seeds torch (network init, action sampling); the env's randomness comes from the env's own seed"""

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {self.gamma}, {self.gae_lambda}")
        self.actor_hidden = tuple(self.actor_hidden)
        self.critic_hidden = tuple(self.critic_hidden)

    @classmethod
    def preset(cls, name: str) -> "OnPolicyConfig":
        """A named hyperparameter set from :mod:`algos.presets` (e.g. ``PPOConfig.preset("mujoco")``)."""
        return preset(cls, name)


class OnPolicyAlgorithm:
    """Base of PPO, SPO and TRPO: collects rollouts with any :class:`StochasticPolicy`.

    Subclasses set ``config_class``, build their optimisers in ``_setup`` (stored in
    ``self.optimizers`` so checkpoints find them) and implement ``update(buffer)``.
    """

    config_class: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig

    def __init__(self, env: gym.vector.VectorEnv, config: OnPolicyConfig | None = None, policy: StochasticPolicy | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(self.config).__name__}")
        cfg = self.config
        self.device = check_device(getattr(env, "device", "cpu"))
        torch.manual_seed(cfg.seed)
        self.observation_space = env.single_observation_space
        self.action_space = env.single_action_space
        self.policy = (policy if policy is not None else make_policy(
            self.observation_space, self.action_space, hidden=cfg.actor_hidden, activation=cfg.activation,
            **({"log_std_init": cfg.log_std_init, "state_dependent_std": cfg.state_dependent_std,
                "use_sde": cfg.use_sde, "sde_sample_freq": cfg.sde_sample_freq}
               if isinstance(self.action_space, gym.spaces.Box) else {"use_sde": cfg.use_sde}),
        )).to(self.device)
        obs_dim = int(self.observation_space.shape[0])
        self.critic = ValueCritic(obs_dim, hidden=cfg.critic_hidden, activation=cfg.activation).to(self.device)
        self.obs_rms = RunningMeanStd(self.observation_space.shape, device=self.device) if cfg.normalize_obs else None
        self.env = self._wrap(env)
        self.num_envs = env.num_envs
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.buffer = RolloutBuffer(
            cfg.num_steps, self.num_envs, tuple(self.observation_space.shape), space_shape(self.action_space),
            device=self.device, action_dtype=torch.int64 if discrete else torch.float32,
        )
        if isinstance(self.action_space, gym.spaces.Box):
            self._act_low = torch.as_tensor(self.action_space.low, device=self.device)
            self._act_high = torch.as_tensor(self.action_space.high, device=self.device)
        self.global_step = 0
        self.num_updates = 0
        self._obs: torch.Tensor | None = None  # the (normalised) observation the next rollout starts from
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._setup()

    # --- to implement -------------------------------------------------------------------
    def _setup(self) -> None:
        raise NotImplementedError

    def update(self, buffer: RolloutBuffer, progress: float) -> dict[str, torch.Tensor]:
        """One update from a full rollout; ``progress`` in [0, 1) drives schedules. Returns tensor metrics."""
        raise NotImplementedError

    # --- env ----------------------------------------------------------------------------
    def _wrap(self, env: gym.vector.VectorEnv) -> gym.vector.VectorEnv:
        # Episode statistics innermost, so they report raw rewards.
        env = RecordEpisodeStatistics(env)
        if self.config.normalize_obs:
            env = NormalizeObservation(env, clip=self.config.obs_clip, rms=self.obs_rms)
        if self.config.normalize_reward:
            env = NormalizeReward(env, gamma=self.config.gamma, clip=self.config.reward_clip)
        if isinstance(self.action_space, gym.spaces.Box):
            env = ClipAction(env)  # the policy's unclipped sample is what the buffer stores
        return env

    # --- acting -------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor | np.ndarray, deterministic: bool = False) -> torch.Tensor | np.ndarray:
        """Env-ready actions for raw observations (normalised internally), like SB3's ``predict``.

        ``obs`` is a batch ``[B, obs_dim]`` or one observation ``[obs_dim]``, as a torch tensor
        or a NumPy array; the actions come back in the same form (NumPy in, NumPy out; one
        observation, one action), clipped to the action space's bounds.
        """
        expected = tuple(self.observation_space.shape)
        as_numpy = isinstance(obs, np.ndarray)
        if not (as_numpy or isinstance(obs, torch.Tensor)) or tuple(obs.shape[-len(expected):]) != expected or obs.ndim not in (1, 2):
            got = f"shape {tuple(obs.shape)}" if hasattr(obs, "shape") else type(obs).__name__
            raise ValueError(f"act expects observations of shape [B, {expected[0]}] or [{expected[0]}], as a torch "
                             f"tensor or NumPy array; got {got}")
        single = obs.ndim == 1
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        obs = obs[None] if single else obs
        if self.obs_rms is not None:
            obs = self.obs_rms.normalize(obs, clip=self.config.obs_clip)
        action = self.policy.act(obs, deterministic=deterministic)
        if isinstance(self.action_space, gym.spaces.Box):
            action = torch.maximum(torch.minimum(action, self._act_high), self._act_low)
        action = action[0] if single else action
        return action.cpu().numpy() if as_numpy else action

    # --- rollouts -----------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> dict[str, torch.Tensor]:
        """Fill the buffer with ``num_steps`` steps of every env and compute advantages."""
        cfg, buf = self.config, self.buffer
        if self._obs is None:
            self._obs, _ = self.env.reset()  # the env's own seed (vecenvs.make(seed=...)) decides its randomness
        obs = self._obs
        buf.reset()
        ep_return = torch.zeros((), device=self.device)
        ep_length = torch.zeros((), device=self.device)
        ep_count = torch.zeros((), device=self.device)
        self.policy.begin_rollout(self.num_envs)
        for _ in range(cfg.num_steps):
            action, stored = self.policy.explore(obs)
            value = self.critic(obs)
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            buf.add(obs, action, reward, terminated, truncated, value, info["final_obs"], stored)
            if "episode" in info:
                mask = info["_episode"]
                ep_return += torch.where(mask, info["episode"]["r"], 0.0).sum()
                ep_length += torch.where(mask, info["episode"]["l"], 0).sum()
                ep_count += mask.sum()
            obs = next_obs
        self._obs = obs
        final_values = self.critic(buf.final_obs.flatten(0, 1)).view(cfg.num_steps, self.num_envs)
        buf.compute_advantages(self.critic(obs), final_values, cfg.gamma, cfg.gae_lambda, cfg.truncation_as_termination)
        return {"episodes": ep_count, "return_sum": ep_return, "length_sum": ep_length}

    # --- the loop -----------------------------------------------------------------------
    def learn(
        self,
        total_steps: int,
        logger: RunLogger | None = None,
        eval_env: gym.vector.VectorEnv | None = None,
        eval_every: int = 0,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 0,
        progress: bool = True,
        callback: Callable[["OnPolicyAlgorithm", dict[str, float]], bool | None] | None = None,
        eval_seed: int | None = None,
    ) -> "OnPolicyAlgorithm":
        """Train until ``global_step`` (env steps) reaches ``total_steps``.

        Calling it again, or after :meth:`load`, continues where the last call stopped.
        Evaluation (every ``eval_every`` env steps on ``eval_env``, which must not share the
        training env's normaliser) and checkpoints (every ``checkpoint_every`` env steps) are
        optional. ``eval_seed`` reseeds ``eval_env`` before every evaluation, so each point of
        the curve sees the same initial states and a resumed run evaluates exactly as an
        uninterrupted one (the training scripts pass their seed + 10,000); ``None`` respects
        the eval env's own seed and continues its random stream. ``callback(agent, record)``
        sees each update's logged record and stops training early by returning ``False``. A
        NaN or inf stops training with :class:`TrainingDivergedError` before any checkpoint is
        written, so the last good one stays intact. Training runs whole rollouts, so it stops
        at the first multiple of ``num_steps * num_envs`` at or above ``total_steps``.
        """
        if not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be a non-negative int of env steps, got {total_steps!r}")
        batch = self.config.num_steps * self.num_envs
        # Training runs whole rollouts, so it stops at the first multiple of the batch >= total_steps.
        planned = self.global_step + max(0, math.ceil((total_steps - self.global_step) / batch)) * batch
        bar = tqdm(total=planned, initial=self.global_step, unit="step", disable=not progress, dynamic_ncols=True)
        if progress and planned != max(total_steps, self.global_step):
            bar.write(f"{type(self).__name__}: training to {planned:,} env steps: total_steps={total_steps:,} rounded up "
                      f"to whole rollouts of num_steps * num_envs = {batch:,}")
        recent_return = float("nan")
        if eval_env is not None and eval_every and self.global_step == 0:
            # the untrained policy's return: the baseline every learning curve starts from
            record = self._evaluate_and_report(eval_env, bar if progress else None, eval_seed)
            if logger is not None:
                logger.log(0, record)
        try:
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                stats = self.collect()
                metrics = self.update(self.buffer, progress=self.global_step / total_steps)
                self.global_step += batch
                self.num_updates += 1
                host = self._to_host_checked({**stats, **metrics})
                sps = batch / (time.perf_counter() - t0)
                record = {f"train/{k}": v for k, v in host.items() if k not in ("episodes", "return_sum", "length_sum")}
                record["train/sps"] = sps
                if host["episodes"] > 0:
                    recent_return = host["return_sum"] / host["episodes"]
                    record["charts/episodic_return"] = recent_return
                    record["charts/episodic_length"] = host["length_sum"] / host["episodes"]
                if eval_env is not None and eval_every and self._crossed(eval_every, batch):
                    record.update(self._evaluate_and_report(eval_env, bar if progress else None, eval_seed))
                if logger is not None:
                    logger.log(self.global_step, record)
                if checkpoint_path is not None and checkpoint_every and self._crossed(checkpoint_every, batch):
                    self.save(checkpoint_path)
                bar.update(batch)
                bar.set_postfix(sps=f"{sps:,.0f}", ret=f"{recent_return:.1f}", refresh=False)
                if callback is not None and callback(self, record) is False:
                    break
        finally:
            bar.close()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self

    def _evaluate_and_report(self, eval_env: gym.vector.VectorEnv, bar: tqdm | None, seed: int | None) -> dict[str, float]:
        result = self.evaluate(eval_env, seed=seed)
        line = f"env step {self.global_step:>10,}: eval return {result['return_mean']:9.1f} ± {result['return_std']:.1f}"
        if bar is not None:
            bar.write(line)  # above the bar, which stays at the bottom
        else:
            print(line, flush=True)
        return {"eval/return": result["return_mean"], "eval/return_std": result["return_std"]}

    def _crossed(self, every: int, batch: int) -> bool:
        return self.global_step // every > (self.global_step - batch) // every

    def _to_host_checked(self, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        """One host sync per update: fetch the metrics and check them and the parameters for NaN/inf."""
        names = list(metrics)
        params = [p for m in self.modules().values() for p in m.parameters()]
        params_ok = torch.stack([p.isfinite().all() for p in params]).all()
        values = torch.stack([torch.as_tensor(metrics[k], device=self.device).float().reshape(()) for k in names] + [params_ok.float()]).tolist()
        bad = [k for k, v in zip(names, values[:-1]) if not math.isfinite(v)]
        if bad or values[-1] != 1.0:
            what = f"metrics {bad}" if bad else "the network parameters"
            raise TrainingDivergedError(
                f"{type(self).__name__}: NaN or inf in {what} at update {self.num_updates} (env step {self.global_step}); "
                "training stopped and no checkpoint was written after this update, so the last good one is intact"
            )
        return dict(zip(names, values[:-1]))

    def check_env(self, env: gym.vector.VectorEnv) -> None:
        """Raise ``ValueError`` naming both spaces when ``env`` does not match the agent's spaces."""
        check_spaces(self.observation_space, self.action_space, env, f"this {type(self).__name__} agent")

    def evaluate(self, env: gym.vector.VectorEnv, seed: int | None = None) -> dict[str, float]:
        """Deterministic-policy return, one episode per copy of ``env`` (a raw env; normalisation is frozen).

        ``seed=None`` respects the env's own seed (the one given to ``vecenvs.make``, continued
        from its last episode); an int reseeds the env first.
        """
        self.check_env(env)
        return evaluate(lambda o: self.act(o, deterministic=True), env, seed=seed)

    # --- checkpoints --------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to evaluate or to continue exactly: networks, optimisers, normaliser,
        env state, RNG states and counters."""
        return {
            "algo": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "num_envs": self.num_envs,
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "env": self.env.state_dict(),
            "obs": self._obs,
            "global_step": self.global_step,
            "num_updates": self.num_updates,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_compatible(state)
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if self.obs_rms is not None and state["obs_rms"] is not None:
            self.obs_rms.load_state_dict(state["obs_rms"])
        self.global_step, self.num_updates = state["global_step"], state["num_updates"]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        # Exact resume needs the env's own state; only native tensor envs expose it.
        if state["num_envs"] == self.num_envs and isinstance(self.env.unwrapped, TorchVecEnv):
            self.env.load_state_dict(state["env"])
            self._obs = None if state["obs"] is None else state["obs"].to(self.device)
        else:
            # The next learn() resets the env; the running statistics still carry over (the
            # observation one above, the reward one here), but not the per-env accumulators.
            self._obs = None
            env, env_state = self.env, state["env"]
            while isinstance(env, TorchVecEnvWrapper):
                if isinstance(env, NormalizeReward):
                    env.rms.load_state_dict(env_state[type(env).__name__]["rms"])
                env, env_state = env.env, env_state["env"]

    def _check_compatible(self, state: dict[str, Any]) -> None:
        if state["algo"] != type(self).__name__:
            raise ValueError(f"checkpoint was written by {state['algo']}, not {type(self).__name__}")
        obs_space, act_space = space_from_description(state["observation_space"]), space_from_description(state["action_space"])
        check_spaces(obs_space, act_space, self.env.unwrapped, "the checkpoint")

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temporary file + rename)."""
        return atomic_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path, env: gym.vector.VectorEnv | None = None, device: str | torch.device | None = None) -> "OnPolicyAlgorithm":
        """Rebuild an agent from a checkpoint.

        With ``env`` it can keep training (exactly, for native tensor envs with the same
        number of copies); without one it is ready for :meth:`act` on raw observations.
        """
        # Loaded on the CPU: RNG states must stay CPU byte tensors; everything else is moved
        # to the agent's device by the load_state_dict calls.
        state = load_checkpoint(path, map_location="cpu")
        if state["algo"] != cls.__name__:
            raise ValueError(f"{path} holds a {state['algo']} checkpoint, not {cls.__name__}")
        config = cls.config_class(**state["config"])
        obs_space, act_space = space_from_description(state["observation_space"]), space_from_description(state["action_space"])
        if env is None:
            env = _SpacesOnly(obs_space, act_space, check_device(device or "cpu"))
        else:  # before anything is built, so a wrong env gets the space mismatch, not a policy error
            check_spaces(obs_space, act_space, env, f"checkpoint {path}")
        agent = cls(env, config)
        agent.load_state_dict(state)
        return agent


class _SpacesOnly(gym.vector.VectorEnv):
    """Stands in for an env when a checkpoint is loaded only to act."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, device: str | torch.device) -> None:
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.num_envs, self.device = 1, torch.device(device)

    def step(self, actions):  # pragma: no cover - never stepped
        raise RuntimeError("this agent was loaded without an env; pass env= to PPO.load(...) to train it")

    def reset(self, *, seed=None, options=None):  # pragma: no cover
        raise RuntimeError("this agent was loaded without an env; pass env= to PPO.load(...) to train it")
