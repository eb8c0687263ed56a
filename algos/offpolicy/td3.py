"""TD3: Twin Delayed DDPG (Fujimoto et al. 2018, arXiv:1802.09477).

A deterministic actor explored with Gaussian noise, twin critics with a clipped double-Q
target, target policy smoothing (clipped noise on the target action) and actor and target
updates delayed to every ``policy_frequency`` critic updates. Defaults as CleanRL's
``td3_continuous_action.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from policyopt.algos.offpolicy.base import OffPolicyAlgorithm, OffPolicyConfig, polyak_update
from policyopt.nets import DeterministicActor


@dataclass
class TargetSmoothing:
    """TD3's target policy smoothing and delayed actor updates: the fields TD3, TD3+BC and ReBRAC share."""

    policy_noise: float = 0.2
    """std of the target policy smoothing noise (actions in [-1, 1])"""
    noise_clip: float = 0.5
    """the smoothing noise is clipped to [-noise_clip, noise_clip]"""
    policy_frequency: int = 2
    """critic updates per actor and target update (the delay)"""

    def check_smoothing(self) -> None:
        if self.policy_frequency < 1 or self.policy_noise < 0 or self.noise_clip < 0:
            raise ValueError(
                f"policy_frequency must be >= 1 and the noise scales >= 0; got "
                f"{self.policy_frequency}, {self.policy_noise}, {self.noise_clip}"
            )


@dataclass
class TD3Config(TargetSmoothing, OffPolicyConfig):
    """TD3 settings; the defaults are CleanRL's MuJoCo ones (learning starts at 25,000 steps)."""

    learning_starts: int = 25_000
    """act uniformly at random and do not update until this many env steps are stored"""
    learning_rate: float = 3e-4
    """Adam learning rate of the actor and the critics"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to the actor's action when collecting data (actions in [-1, 1])"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_smoothing()
        if self.exploration_noise < 0:
            raise ValueError(f"exploration_noise must be >= 0, got {self.exploration_noise}")


def smoothed_target_action(target_action: torch.Tensor, policy_noise: float, noise_clip: float) -> torch.Tensor:
    """a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma)  (Fujimoto et al. 2018, eq. 15)."""
    noise = (torch.randn_like(target_action) * policy_noise).clamp(-noise_clip, noise_clip)
    return (target_action + noise).clamp(-1.0, 1.0)


def critic_target(rewards: torch.Tensor, discounts: torch.Tensor, terminated: torch.Tensor, q_next: torch.Tensor) -> torch.Tensor:
    """y = r + gamma^m (1 - d) min_i Q'_i(s', a')  (Fujimoto et al. 2018, eq. 10, clipped double Q)."""
    return rewards + discounts * (1.0 - terminated) * q_next.min(0).values


def smoothed_critic_loss(
    agent: Any, batch: dict[str, torch.Tensor], y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """TD3's critic loss for any agent with ``critic``, ``critic_target``, ``policy_target`` and a
    :class:`TargetSmoothing` config (TD3, TD3+BC; ReBRAC passes its own target ``y``): the
    critics' summed MSE to the smoothed clipped double-Q target, and Q(s, a)."""
    cfg = agent.config
    if y is None:
        with torch.no_grad():
            next_actions = smoothed_target_action(agent.policy_target(batch["next_obs"]), cfg.policy_noise, cfg.noise_clip)
            y = critic_target(
                batch["rewards"], batch["discounts"], batch["terminated"], agent.critic_target(batch["next_obs"], next_actions)
            )
    q = agent.critic(batch["obs"], batch["actions"])
    return ((q - y) ** 2).mean(1).sum(), q.detach()


def actor_loss(q1_pi: torch.Tensor) -> torch.Tensor:
    """J = -E[Q_1(s, mu(s))]  (deterministic policy gradient, Silver et al. 2014; TD3 uses the first critic)."""
    return -q1_pi.mean()


class TD3(OffPolicyAlgorithm):
    """Twin Delayed DDPG; any actor whose ``forward(obs)`` gives actions in [-1, 1]."""

    config_class = TD3Config
    config: TD3Config

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = DeterministicActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.policy_target = copy.deepcopy(self.policy).requires_grad_(False)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.learning_rate)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), cfg.learning_rate)
        self._online = list(self.critic.parameters()) + list(self.policy.parameters())
        self._targets = list(self.critic_target.parameters()) + list(self.policy_target.parameters())
        self._critic_loss = self.compiled(self.critic_loss)
        self._actor_loss = self.compiled(self.delayed_actor_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), "policy_target": self.policy_target}

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        action = self.policy(obs)
        return (action + torch.randn_like(action) * self.config.exploration_noise).clamp(-1.0, 1.0)

    def gradient_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, q = self._critic_loss(batch)
        self.optimizers["critic"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["critic"].step()
        metrics = {"critic_loss": loss.detach(), "q_mean": q.mean()}
        # the delay is counted in Python, so each compiled loss is one fixed graph
        if (self.gradient_steps_done + 1) % self.config.policy_frequency == 0:
            pi_loss = self._actor_loss(batch)
            self.optimizers["actor"].zero_grad(set_to_none=True)
            pi_loss.backward()
            self.optimizers["actor"].step()
            with torch.no_grad():
                polyak_update(self._targets, self._online, self.config.tau)
            metrics["actor_loss"] = pi_loss.detach()
        return metrics

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The twin critics' summed MSE to the smoothed target, and Q(s, a) (compiled with ``config.compile``)."""
        return smoothed_critic_loss(self, batch)

    def delayed_actor_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """-Q_1(s, mu(s)) (compiled with ``config.compile``); the critic's weights are detached, so
        the gradient reaches the actor through the action only."""
        return actor_loss(self.critic.member(0, batch["obs"], self.policy(batch["obs"]), detach_params=True))
