"""TD3+BC: TD3 with a behaviour-cloning term in the actor loss (Fujimoto & Gu 2021, arXiv:2106.06860).

The actor maximises ``lambda Q(s, pi(s)) - (pi(s) - a)^2`` with ``lambda = alpha / mean|Q|``
(the Q scale is normalised away, so one ``alpha`` fits every dataset); the critics are TD3's,
with target policy smoothing and delayed actor and target updates. Defaults as CORL's
``td3_bc.py`` for locomotion (observations normalised by the dataset's statistics).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.algos.offpolicy.base import polyak_update
from policyopt.algos.offpolicy.td3 import TargetSmoothing, smoothed_critic_loss
from policyopt.nets import DeterministicActor


@dataclass
class TD3BCConfig(TargetSmoothing, OfflineConfig):
    """TD3+BC settings; the defaults are the paper's and CORL's (TD3's smoothing and delay)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the actor and the critics"""
    alpha: float = 2.5
    """weight of the Q term: lambda = alpha / mean |Q(s, pi(s))|"""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden layer of the critics (off, as TD3+BC's authors and CORL; ReBRAC turns it on)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_smoothing()
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")


def td3bc_actor_loss(q_pi: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor, alpha: float) -> torch.Tensor:
    """-lambda E[Q(s, pi(s))] + E[(pi(s) - a)^2], lambda = alpha / E|Q| detached (Fujimoto & Gu 2021, eq. 3)."""
    lmbda = alpha / q_pi.abs().mean().detach()
    return -lmbda * q_pi.mean() + (pi - actions).square().mean()


class TD3BC(OfflineAlgorithm):
    """TD3+BC with any actor whose ``forward(obs)`` gives actions in [-1, 1]. Also the base of
    ReBRAC, which changes the losses, the learning rates and the critics' layer norm."""

    config_class = TD3BCConfig
    config: TD3BCConfig
    default_temperature = 0.1  # Hong et al.'s run_td3bc.py: RW-0.1, AW-0.1

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = DeterministicActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.policy_target = copy.deepcopy(self.policy).requires_grad_(False)
        self.critic, self.critic_target = self.twin_critics(layer_norm=cfg.critic_layer_norm)
        actor_lr, critic_lr = self.learning_rates()
        self.optimizers["actor"] = self.adam(self.policy.parameters(), actor_lr)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), critic_lr)
        self._online = list(self.critic.parameters()) + list(self.policy.parameters())
        self._targets = list(self.critic_target.parameters()) + list(self.policy_target.parameters())
        self._critic_loss = self.compiled(self.critic_loss)
        self._actor_loss = self.compiled(self.actor_loss)

    def learning_rates(self) -> tuple[float, float]:
        """(actor, critic) Adam learning rates."""
        return self.config.learning_rate, self.config.learning_rate

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "policy": self.policy,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "policy_target": self.policy_target,
            "obs_normalizer": self.obs_normalizer,
        }

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """TD3's twin-critic loss to the smoothed clipped double-Q target, and Q(s, a) (compiled)."""
        return smoothed_critic_loss(self, batch)

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """TD3+BC's actor loss through the first critic, whose weights are detached, and extra metrics (compiled)."""
        pi = self.policy(batch["obs"])
        q_pi = self.critic.member(0, batch["obs"], pi, detach_params=True)
        return td3bc_actor_loss(q_pi, pi, batch["actions"], self.config.alpha), {}

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        loss, q = self._critic_loss(batch)
        self.step("critic", loss)
        metrics = {"critic_loss": loss.detach(), "q_mean": q.mean()}
        if (self.num_updates + 1) % self.config.policy_frequency == 0:  # counted in Python: one graph per loss
            pi_loss, extra = self._actor_loss(batch)
            self.step("actor", pi_loss)
            with torch.no_grad():
                polyak_update(self._targets, self._online, self.config.tau)
            metrics.update(actor_loss=pi_loss.detach(), **extra)
        return metrics
