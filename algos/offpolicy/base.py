"""The off-policy family: a replay buffer and the update-to-data loop. One iteration is one
step of every env copy and, once ``learning_starts`` transitions are stored, every
``train_freq`` iterations, ``gradient_steps`` updates from the buffer. The loop, evaluation,
NaN guard and checkpoints are :class:`policyopt.algos.core.base.Algorithm`'s. SAC and TD3 add a config, their
networks and ``gradient_step(batch)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import gymnasium as gym
import torch
from torch import nn

from policyopt.algos.core.base import Algorithm, AlgorithmConfig, episode_sums
from policyopt.buffers import ReplayBuffer
from policyopt.nets import CriticEnsemble, QCritic, default_init
from policyopt.vecenvs import RecordEpisodeStatistics, RescaleAction


@dataclass
class OffPolicyConfig(AlgorithmConfig):
    """Settings shared by SAC and TD3 (replay, update-to-data ratio, networks)."""

    buffer_size: int = 1_000_000
    """replay capacity in transitions (all env copies together)"""
    learning_starts: int = 5_000
    """act uniformly at random and do not update until this many env steps are stored"""
    batch_size: int = 256
    """transitions per gradient step"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks: target <- (1 - tau) target + tau online"""
    train_freq: int = 1
    """iterations (steps of all env copies) between rounds of gradient steps"""
    gradient_steps: int = 1
    """gradient steps per round; the update-to-data ratio is gradient_steps / (train_freq * num_envs)"""
    n_step: int = 1
    """n-step returns in the critic target (1: one-step TD)"""
    actor_hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor MLP"""
    critic_hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of each Q MLP"""
    activation: str = "relu"
    """hidden activation of the actor and the critics"""
    save_buffer: bool = True
    """store the replay buffer in checkpoints, so a resumed run continues exactly (HalfCheetah at 1M: about 180 MB)"""

    def __post_init__(self) -> None:
        checks = [
            ("buffer_size", self.buffer_size >= 1),
            ("learning_starts", self.learning_starts >= 0),
            ("batch_size", self.batch_size >= 1),
            ("train_freq", self.train_freq >= 1),
            ("gradient_steps", self.gradient_steps >= 0),
            ("n_step", self.n_step >= 1),
            ("gamma", 0.0 <= self.gamma <= 1.0),
            ("tau", 0.0 < self.tau <= 1.0),
        ]
        bad = [name for name, ok in checks if not ok]
        if bad:
            raise ValueError(
                f"invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}: sizes and frequencies "
                "must be >= 1 (learning_starts, gradient_steps >= 0), gamma in [0, 1], tau in (0, 1]"
            )
        self.actor_hidden = tuple(self.actor_hidden)
        self.critic_hidden = tuple(self.critic_hidden)


def polyak_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """target <- target + tau (online - target), in one fused op (Lillicrap et al. 2016, "soft" target updates)."""
    torch._foreach_lerp_(target, online, tau)


def step_into_buffer(
    agent: Algorithm, action: torch.Tensor, next_actions: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Step ``agent.env`` (under ``RecordEpisodeStatistics``) once from ``agent._obs`` with ``action``,
    store the transition in ``agent.buffer`` and return the step's :func:`~policyopt.algos.core.base.episode_sums`.

    The stored next observation is the true one: ``final_obs`` where an episode ended (the env
    has already reset). ``next_actions(next_obs)``, where given, is stored as the action at it.
    """
    obs = agent._obs
    next_obs, reward, terminated, truncated, info = agent.env.step(action)
    final_obs = info["final_obs"]
    extra = {} if next_actions is None else {"next_actions": next_actions(final_obs)}
    agent.buffer.add(obs, action, reward, final_obs, terminated, truncated, **extra)
    agent._obs = next_obs
    return episode_sums(info)


class OffPolicyAlgorithm(Algorithm):
    """Base of SAC and TD3: continuous actions in ``[-1, 1]`` mapped to the env's bounds, twin Q
    critics in one :class:`nets.CriticEnsemble`, a :class:`buffers.ReplayBuffer` on the device.

    Subclasses set ``config_class``, build ``self.policy`` and their optimisers in ``_setup``,
    and implement ``explore(obs)`` and ``gradient_step(batch)``.
    """

    config_class: ClassVar[type[OffPolicyConfig]] = OffPolicyConfig
    config: OffPolicyConfig
    default_log_every = 1_000
    iteration_name = "steps of all num_envs ="
    num_envs_help = "each step adds num_envs transitions to the replay buffer"

    def __init__(self, env: gym.vector.VectorEnv, config: OffPolicyConfig | None = None, policy: nn.Module | None = None) -> None:
        super().__init__(config, getattr(env, "device", "cpu"), env.single_observation_space, env.single_action_space)
        space = self.action_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise ValueError(
                f"{type(self).__name__} needs continuous actions, a 1-D gymnasium.spaces.Box; got {space!r}. "
                "For discrete actions use PPO or TRPO."
            )
        if not (isinstance(self.observation_space, gym.spaces.Box) and len(self.observation_space.shape) == 1):
            raise ValueError(f"{type(self).__name__} needs 1-D Box observations; got {self.observation_space!r}")
        cfg = self.config
        self.obs_dim, self.act_dim = int(self.observation_space.shape[0]), int(space.shape[0])
        self.num_envs = env.num_envs
        self.env = RescaleAction(RecordEpisodeStatistics(env), -1.0, 1.0)  # the actor acts in [-1, 1]
        self._low = torch.as_tensor(space.low, device=self.device)
        self._half_range = torch.as_tensor((space.high - space.low) / 2, device=self.device)

        def make_q() -> nn.Module:  # PyTorch's default init, as CleanRL and SB3
            return default_init(QCritic(self.obs_dim, self.act_dim, cfg.critic_hidden, cfg.activation))

        self.critic = CriticEnsemble(2, make_q).to(self.device)
        self.critic_target = CriticEnsemble(2, make_q).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.buffer = ReplayBuffer(
            cfg.buffer_size,
            self.num_envs,
            (self.obs_dim,),
            (self.act_dim,),
            device=self.device,
            n_step=cfg.n_step,
            gamma=cfg.gamma,
        )
        self._obs: torch.Tensor | None = None
        self.gradient_steps_done = 0
        self.policy = policy
        self._setup()
        self.policy = self.policy.to(self.device)

    # --- to implement -----------------------------------------------------------------------
    def _setup(self) -> None:
        """Build ``self.policy`` (unless one was passed), target networks and optimisers."""
        raise NotImplementedError

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Exploration actions in [-1, 1] once learning has started."""
        raise NotImplementedError

    def gradient_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One update from a replay batch; returns device metrics."""
        raise NotImplementedError

    # --- one iteration: an env step and its gradient steps --------------------------------------
    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs

    def budget_note(self, planned: int) -> str | None:
        starts = self.config.learning_starts
        if planned >= starts or self.gradient_steps_done > 0:  # the iteration reaching learning_starts updates
            return None
        return (
            f"{type(self).__name__}: training ends at {planned:,} env steps, before learning starts at {starts:,} "
            f"(learning_starts): no gradient update will run; raise --total-steps above {starts:,} or lower "
            "--algo.learning-starts"
        )

    def iterate(self, progress: float) -> tuple[int, dict[str, torch.Tensor]]:
        cfg = self.config
        obs = self._reset_if_needed()
        with torch.no_grad():
            if self.global_step < cfg.learning_starts:
                action = torch.rand(self.num_envs, self.act_dim, device=self.device) * 2 - 1
            else:
                action = self.explore(obs)
        metrics = step_into_buffer(self, action)
        ready = len(self.buffer) >= max(cfg.learning_starts, cfg.n_step * self.num_envs)
        if ready and (self.num_updates + 1) % cfg.train_freq == 0:
            for _ in range(cfg.gradient_steps):
                step_metrics = self.gradient_step(self.buffer.sample(cfg.batch_size))
                self.gradient_steps_done += 1
            if cfg.gradient_steps:
                metrics.update(step_metrics)  # the last step's: averaging every one would cost ops per step
        return self.num_envs, metrics

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.to_env_bounds(self.policy.act(obs, deterministic=deterministic).clamp(-1.0, 1.0))

    def to_env_bounds(self, action: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1] mapped to the action space's ``[low, high]``, as RescaleAction does."""
        return self._low + (action + 1.0) * self._half_range

    # --- checkpoints ----------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "critic": self.critic, "critic_target": self.critic_target}

    def extra_state(self) -> dict[str, Any]:
        """The replay buffer (with ``save_buffer``), the env's state and the next observation."""
        return {
            "buffer": self.buffer.state_dict() if self.config.save_buffer else None,
            **self._env_state(),
            "gradient_steps_done": self.gradient_steps_done,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.gradient_steps_done = state["gradient_steps_done"]
        if state["buffer"] is not None and state["num_envs"] == self.num_envs:
            self.buffer.load_state_dict(state["buffer"])
        # Without its buffer a resumed run refills learning_starts transitions before it updates again.
        self._load_env_state(state)
