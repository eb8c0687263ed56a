"""The on-policy family: env wrapping, rollouts and GAE. One iteration is a rollout and its
update; the loop, evaluation, NaN guard and checkpoints are :class:`policyopt.algos.core.base.Algorithm`'s.
PPO, SPO and TRPO only add a config and an ``update``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import nn

from policyopt.algos.core import distributed
from policyopt.algos.core.base import EPISODE_SUMS, Algorithm, AlgorithmConfig, episode_sums
from policyopt.algos.core.checkpoint import (
    PretrainedPolicy,
    atomic_save,
    check_pretrained_fits,
    load_pretrained_policy,
    space_shape,
)
from policyopt.buffers import RolloutBuffer
from policyopt.nets import DistributionPolicy, StochasticPolicy, ValueCritic, make_policy
from policyopt.vecenvs import ClipAction, NormalizeObservation, NormalizeReward, RecordEpisodeStatistics, TorchVecEnvWrapper
from policyopt.vecenvs.wrappers import RunningMeanStd


# What differs between ranks in a checkpoint: each rank's env, next observation and RNG streams.
RANK_STATE = ("extra", "rng", "cuda_rng")


@dataclass
class OnPolicyConfig(AlgorithmConfig):
    """Settings shared by every on-policy algorithm (rollout, GAE, normalisation, networks)."""

    compile: bool = True
    """torch.compile the minibatch loss and the rollout's act path (CUDA: CUDA graphs too); on by default: 1.5-2x the eager steps/s of PPO on HalfCheetah (scripts/bench_learner.py)"""

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

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {self.gamma}, {self.gae_lambda}")
        self.actor_hidden = tuple(self.actor_hidden)
        self.critic_hidden = tuple(self.critic_hidden)


# --- what the generative on-policy algorithms (DPPO, FPO) share ---------------------------------
def load_pretrained(
    path: str, user: str, expected: type, observation_space: gym.Space, action_space: gym.Space, advice: str
) -> PretrainedPolicy:
    """An offline checkpoint's ``expected`` policy and dataset normaliser, checked against the env's spaces
    (DPPO's and FPO's ``pretrained``)."""
    pre = load_pretrained_policy(path, user, expected, f"--algo.pretrained {advice}")
    check_pretrained_fits(
        pre.source,
        pre.observation_space,
        pre.action_space,
        observation_space,
        action_space,
        "pretrain on a dataset of this env (the [-1, 1] action map needs the same bounds)",
    )
    return pre


def action_bounds(space: gym.Space, need: str) -> tuple[list[float], list[float]]:
    """The low and high bounds of a 1-D Box action space, which a generative policy maps ``[-1, 1]`` to."""
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise ValueError(f"{need}, got {space!r}")
    return space.low.tolist(), space.high.tolist()


class OnPolicyAlgorithm(Algorithm):
    """Base of PPO, SPO and TRPO: collects rollouts with any :class:`StochasticPolicy`.

    Subclasses set ``config_class``, build their optimisers in ``_setup`` (stored in
    ``self.optimizers`` so checkpoints find them) and implement ``update(buffer, progress)``.
    """

    config_class: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig
    config: OnPolicyConfig
    iteration_name = "rollouts of num_steps * num_envs ="
    default_num_envs = 8
    num_envs_help = "a rollout batch holds algo.num_steps * num_envs transitions"
    #: trains data-parallel under torchrun (algos/core/distributed.py): PPO and its subclasses
    supports_data_parallel: ClassVar[bool] = False

    def __init__(
        self, env: gym.vector.VectorEnv, config: OnPolicyConfig | None = None, policy: StochasticPolicy | None = None
    ) -> None:
        super().__init__(config, getattr(env, "device", "cpu"), env.single_observation_space, env.single_action_space)
        cfg = self.config
        #: the process group under torchrun (``env`` is then this rank's share of the envs), else None
        self.world = distributed.current()
        if self.world is not None:
            distributed.check_supported(type(self), self.world.size)
        box = isinstance(self.action_space, gym.spaces.Box)
        self.policy = (policy if policy is not None else self.default_policy()).to(self.device)
        obs_dim = int(self.observation_space.shape[0])
        self.critic = ValueCritic(obs_dim, hidden=cfg.critic_hidden, activation=cfg.activation).to(self.device)
        self.obs_rms = self._running_mean_std(self.observation_space.shape) if cfg.normalize_obs else None
        self.env = self._wrap(env)
        self.num_envs = env.num_envs
        self.buffer = RolloutBuffer(
            cfg.num_steps,
            self.num_envs,
            tuple(self.observation_space.shape),
            space_shape(self.action_space),
            device=self.device,
            action_dtype=torch.float32 if box else torch.int64,
        )
        if box:
            self._act_low = torch.as_tensor(self.action_space.low, device=self.device)
            self._act_high = torch.as_tensor(self.action_space.high, device=self.device)
        self._obs: torch.Tensor | None = None  # the (normalised) observation the next rollout starts from
        # The act path compiles only for stateless explore(); gSDE's counts steps in Python,
        # which a compiled graph would have to recompile for.
        stateless = type(self.policy).explore is DistributionPolicy.explore
        self._explore = self.compiled(self._explore_and_value) if stateless else self._explore_and_value
        self._setup()
        if self.world is not None:
            # Same seed, same init already; the broadcast makes it so for any policy passed in. Then
            # ranks > 0 reseed, so their action noise and minibatch permutations are their own.
            self.world.broadcast_modules(self.modules().values())
            if not self.world.is_main:
                torch.manual_seed(self.world.rank_seed(cfg.seed))

    def _running_mean_std(self, shape: tuple[int, ...]) -> RunningMeanStd:
        """A running normaliser; under torchrun one that merges every rank's batch, so all ranks agree."""
        if self.world is None:
            return RunningMeanStd(shape, device=self.device)
        return distributed.SyncedRunningMeanStd(self.world, shape, device=self.device)

    def default_policy(self) -> StochasticPolicy:
        """The policy built when none is passed: Gaussian or categorical from the config (DPPO, FPO: generative)."""
        cfg = self.config
        box = isinstance(self.action_space, gym.spaces.Box)
        return make_policy(
            self.observation_space,
            self.action_space,
            hidden=cfg.actor_hidden,
            activation=cfg.activation,
            **(
                {
                    "log_std_init": cfg.log_std_init,
                    "state_dependent_std": cfg.state_dependent_std,
                    "use_sde": cfg.use_sde,
                    "sde_sample_freq": cfg.sde_sample_freq,
                }
                if box
                else {"use_sde": cfg.use_sde}
            ),
        )

    def freeze_obs_normalization(self, normalizer: dict[str, torch.Tensor] | None = None) -> None:
        """Normalise observations with fixed statistics from now on: ``normalizer``'s ``mean`` and ``std`` (a
        pretrained offline policy's dataset statistics, as DPPO's env wrapper uses), or the current ones when None
        (a loaded agent's, restored from its checkpoint)."""
        if self.obs_rms is None:
            raise ValueError("freeze_obs_normalization needs normalize_obs=True: there is no observation normaliser")
        if normalizer is not None:
            mean, std = normalizer["mean"].to(self.device).double(), normalizer["std"].to(self.device).double()
            # RunningMeanStd divides by sqrt(var + 1e-8): this var reproduces (obs - mean) / std
            self.obs_rms.load_state_dict(
                {
                    "mean": mean,
                    "var": (std.square() - 1e-8).clamp(min=0.0),
                    "count": torch.tensor(1e12, dtype=torch.float64, device=self.device),
                }
            )
        env = self.env
        while isinstance(env, TorchVecEnvWrapper):
            if isinstance(env, NormalizeObservation):
                env.freeze()
            env = env.env

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
            env = NormalizeReward(env, gamma=self.config.gamma, clip=self.config.reward_clip, rms=self._running_mean_std(()))
        if isinstance(self.action_space, gym.spaces.Box):
            env = ClipAction(env)  # the policy's unclipped sample is what the buffer stores
        return env

    # --- one iteration: a rollout and its update -------------------------------------------
    @property
    def steps_per_iteration(self) -> int:
        """Env steps of one rollout, of all ranks' envs together under torchrun (``global_step`` is global)."""
        return self.config.num_steps * self.num_envs * (1 if self.world is None else self.world.size)

    def iterate(self, progress: float) -> tuple[int, dict[str, torch.Tensor]]:
        stats = self.collect()
        return self.steps_per_iteration, {**stats, **self.update(self.buffer, progress)}

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if self.obs_rms is not None:
            obs = self.obs_rms.normalize(obs, clip=self.config.obs_clip)
        action = self.policy.act(obs, deterministic=deterministic)
        if isinstance(self.action_space, gym.spaces.Box):
            action = torch.maximum(torch.minimum(action, self._act_high), self._act_low)
        return action

    def _explore_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The rollout's act path: the policy's sample, what it stores, and V(s) (compiled with ``config.compile``)."""
        action, stored = self.policy.explore(obs)
        return action, stored, self.critic(obs)

    @torch.no_grad()
    def collect(self) -> dict[str, torch.Tensor]:
        """Fill the buffer with ``num_steps`` steps of every env and compute advantages."""
        cfg, buf = self.config, self.buffer
        obs = self._reset_if_needed()
        buf.reset()
        episodes = {k: torch.zeros((), device=self.device) for k in EPISODE_SUMS}
        self.policy.begin_rollout(self.num_envs)
        for _ in range(cfg.num_steps):
            action, stored, value = self._explore(obs)
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            buf.add(obs, action, reward, terminated, truncated, value, info["final_obs"], stored)
            for k, v in episode_sums(info).items():
                episodes[k] += v
            obs = next_obs
        self._obs = obs
        final_values = self.critic(buf.final_obs.flatten(0, 1)).view(cfg.num_steps, self.num_envs)
        buf.compute_advantages(self.critic(obs), final_values, cfg.gamma, cfg.gae_lambda, cfg.truncation_as_termination)
        if self.world is not None:  # every rank reports all ranks' episodes (one all-reduce per rollout)
            episodes = self.world.sum_dict(episodes)
        return episodes

    # --- checkpoints --------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic}

    def extra_state(self) -> dict[str, Any]:
        """The observation normaliser, the env's own state and the observation the next rollout starts from."""
        return {"obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(), **self._env_state()}

    def state_dict(self) -> dict[str, Any]:
        """The base's state (rank 0's, under torchrun), plus under torchrun every rank's env and RNG state
        under ``data_parallel``: a collective, which every rank reaches at the same step."""
        state = super().state_dict()
        if self.world is not None:
            own = distributed.to_cpu({k: state[k] for k in RANK_STATE})
            state["data_parallel"] = {"world_size": self.world.size, "ranks": self.world.gather_objects(own)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The base's exact resume; under torchrun each rank takes its own env and RNG state from ``data_parallel``."""
        if self.world is not None:
            saved = state.get("data_parallel")
            written = 1 if saved is None else saved["world_size"]
            if written != self.world.size:
                raise ValueError(
                    f"this checkpoint was written by {written} process(es) and {self.world.size} are resuming it: each "
                    f"rank resumes its own envs, so resume with the same number (torchrun --nproc-per-node {written}"
                    f"{', or plain python' if written == 1 else ''})"
                )
            state = {**state, **saved["ranks"][self.world.rank]}
        super().load_state_dict(state)

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically; under torchrun every rank calls it and rank 0 writes."""
        state = self.state_dict()
        if self.world is not None and not self.world.is_main:
            return Path(path)
        return atomic_save(state, path)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.obs_rms is not None and state["obs_rms"] is not None:
            self.obs_rms.load_state_dict(state["obs_rms"])
        if not self._load_env_state(state):
            # The next learn() resets the env; the running statistics still carry over (the
            # observation one above, the reward one here), but not the per-env accumulators.
            env, env_state = self.env, state["env"]
            while isinstance(env, TorchVecEnvWrapper):
                if isinstance(env, NormalizeReward):
                    env.rms.load_state_dict(env_state[type(env).__name__]["rms"])
                env, env_state = env.env, env_state["env"]
