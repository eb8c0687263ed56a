"""SAC: Soft Actor-Critic (Haarnoja et al. 2018, arXiv:1801.01290; automatic entropy tuning
from arXiv:1812.05905).

A tanh-squashed Gaussian actor maximising Q minus alpha times the log-density, twin Q critics
with a clipped double-Q target, Polyak-averaged target critics and a temperature alpha tuned
towards a target entropy of -dim(A). Defaults as SB3 and CleanRL (``sac_continuous_action.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from policyopt.algos.offpolicy.base import OffPolicyAlgorithm, OffPolicyConfig, polyak_update
from policyopt.nets import SquashedGaussianActor


@dataclass
class SACConfig(OffPolicyConfig):
    """SAC settings; the defaults are SB3's and CleanRL's MuJoCo ones (CleanRL starts learning at 5,000 steps)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor"""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the twin critics (CleanRL: 1e-3; SB3 and the paper: 3e-4)"""
    alpha: float = 1.0
    """entropy temperature: the fixed value, or the initial one when autotune_alpha"""
    autotune_alpha: bool = True
    """tune alpha so the policy's entropy tracks target_entropy (Haarnoja et al. 2018b)"""
    alpha_learning_rate: float = 3e-4
    """Adam learning rate of log(alpha)"""
    target_entropy: float | None = None
    """the entropy alpha is tuned towards (None: -action_dim)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0 (it is tuned in log space), got {self.alpha}")


def critic_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """y = r + gamma^m (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))  (Haarnoja et al. 2018, eq. 3; Fujimoto et al. 2018)."""
    return rewards + discounts * (1.0 - terminated) * (q_next.min(0).values - alpha * next_log_prob)


def actor_loss(q_pi: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """J_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)], a ~ pi reparameterised  (Haarnoja et al. 2018, eq. 7)."""
    return (alpha * log_prob - q_pi.min(0).values).mean()


def alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """J(alpha) = E[-log(alpha) (log pi(a|s) + target entropy)]  (Haarnoja et al. 2018b, eq. 18, in log alpha as SB3)."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic with twin critics and automatic entropy tuning; any actor with ``sample`` and ``act``."""

    config_class = SACConfig
    config: SACConfig

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = SquashedGaussianActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.target_entropy = float(-self.act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), device=self.device, requires_grad=cfg.autotune_alpha)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.actor_learning_rate)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), cfg.critic_learning_rate)
        if cfg.autotune_alpha:
            self.optimizers["alpha"] = self.adam([self.log_alpha], cfg.alpha_learning_rate)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self._critic_loss = self.compiled(self.critic_loss)
        self._actor_loss = self.compiled(self.actor_and_alpha_loss)

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.sample(obs)[0]

    def critic_loss(self, batch: dict[str, torch.Tensor], alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The twin critics' summed MSE to the soft target, and Q(s, a) (compiled with ``config.compile``)."""
        with torch.no_grad():
            next_actions, next_log_prob = self.policy.sample(batch["next_obs"])
            q_next = self.critic_target(batch["next_obs"], next_actions)
            y = critic_target(batch["rewards"], batch["discounts"], batch["terminated"], q_next, next_log_prob, alpha)
        q = self.critic(batch["obs"], batch["actions"])
        return ((q - y) ** 2).mean(1).sum(), q.detach()  # the twin MSEs summed, as CleanRL

    def actor_and_alpha_loss(
        self, batch: dict[str, torch.Tensor], alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The actor's loss, alpha's loss (0 without autotune) and log pi(a|s) (compiled with ``config.compile``)."""
        actions, log_prob = self.policy.sample(batch["obs"])
        # detach_params: the actor's gradient flows through Q's input only, not into Q's weights
        pi_loss = actor_loss(self.critic(batch["obs"], actions, detach_params=True), log_prob, alpha)
        a_loss = (
            alpha_loss(self.log_alpha, log_prob, self.target_entropy) if self.config.autotune_alpha else torch.zeros_like(pi_loss)
        )
        return pi_loss, a_loss, log_prob.detach()

    def gradient_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        alpha = self.log_alpha.detach().exp()
        critic_loss, q = self._critic_loss(batch, alpha)
        self.optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        self.optimizers["critic"].step()

        pi_loss, a_loss, log_prob = self._actor_loss(batch, alpha)
        actor_opts = [self.optimizers["actor"]] + ([self.optimizers["alpha"]] if self.config.autotune_alpha else [])
        for opt in actor_opts:
            opt.zero_grad(set_to_none=True)
        (pi_loss + a_loss).backward()  # disjoint parameters: the actor's from pi_loss, log(alpha) from a_loss
        for opt in actor_opts:
            opt.step()
        with torch.no_grad():
            polyak_update(self._target_params, self._critic_params, self.config.tau)
        metrics = {
            "critic_loss": critic_loss.detach(),
            "actor_loss": pi_loss.detach(),
            "q_mean": q.mean(),
            "entropy": -log_prob.mean(),
            "alpha": alpha,
        }
        if self.config.autotune_alpha:
            metrics["alpha_loss"] = a_loss.detach()
        return metrics

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "log_alpha": self.log_alpha.detach().clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
