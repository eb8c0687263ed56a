"""IQL: Implicit Q-Learning (Kostrikov, Nair & Levine 2022, arXiv:2110.06169).

Never queries Q on actions outside the dataset: V(s) is an upper expectile of Q(s, a) over the
dataset's actions, Q regresses onto r + gamma V(s'), and the actor is extracted by
advantage-weighted regression, exp(beta (Q - V)) times the dataset action's log-likelihood.
Defaults as CORL's ``iql.py`` for locomotion, with IQL's reward scaling (1000 / return range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.algos.offpolicy.base import polyak_update
from policyopt.nets import DeterministicActor, GaussianActor, ValueCritic, default_init


@dataclass
class IQLConfig(OfflineConfig):
    """IQL settings; the defaults are the paper's and CORL's for MuJoCo locomotion."""

    reward_convention: str = "iql-locomotion"
    """rewrite the rewards first (IQL scales locomotion rewards by 1000 / return range; antmaze: 'antmaze')"""
    learning_rate: float = 3e-4
    """Adam learning rate of the actor, the critics and V"""
    expectile: float = 0.7
    """the expectile of Q that V regresses to (0.5: the mean; -> 1: the max); antmaze 0.9"""
    beta: float = 3.0
    """inverse temperature of the advantage weights exp(beta A); antmaze 10"""
    max_weight: float = 100.0
    """the advantage weights are clipped at this"""
    deterministic_actor: bool = False
    """a deterministic actor with an MSE loss instead of the Gaussian's log-likelihood (CORL on hopper-medium)"""
    cosine_actor_lr: bool = True
    """decay the actor's learning rate along a cosine over the offline updates (online: constant)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.expectile < 1.0 or self.beta < 0 or self.max_weight <= 0:
            raise ValueError(
                f"expectile must lie in (0, 1), beta >= 0 and max_weight > 0; got {self.expectile}, "
                f"{self.beta}, {self.max_weight}"
            )


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """E[|tau - 1(u < 0)| u^2], u = Q(s, a) - V(s)  (Kostrikov et al. 2022, eq. 5)."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.square()).mean()


def awr_weights(advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """min(exp(beta A), max_weight)  (Kostrikov et al. 2022, eq. 7; Peng et al. 2019)."""
    return torch.exp(beta * advantage).clamp(max=max_weight)


class IQL(OfflineAlgorithm):
    """Implicit Q-Learning with a Gaussian (or deterministic) actor; twin Q critics and V."""

    config_class = IQLConfig
    config: IQLConfig
    default_temperature = 0.1  # Hong et al.'s run_iql.py: RW-0.1, AW-0.1

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            actor = DeterministicActor if cfg.deterministic_actor else GaussianActor
            self.policy = actor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.critic, self.critic_target = self.twin_critics()
        self.value = default_init(ValueCritic(self.obs_dim, cfg.critic_hidden, cfg.activation)).to(self.device)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.learning_rate)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), cfg.learning_rate)
        self.optimizers["value"] = self.adam(self.value.parameters(), cfg.learning_rate)
        self._online, self._targets = list(self.critic.parameters()), list(self.critic_target.parameters())
        self._value_loss = self.compiled(self.value_loss)
        self._critic_loss = self.compiled(self.critic_loss)
        self._actor_loss = self.compiled(self.actor_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "policy": self.policy,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "value": self.value,
            "obs_normalizer": self.obs_normalizer,
        }

    def value_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The expectile loss of V against the target critics' min Q, and the advantage Q - V (compiled)."""
        with torch.no_grad():
            q = self.critic_target(batch["obs"], batch["actions"]).min(0).values
        v = self.value(batch["obs"])
        return expectile_loss(q - v, self.config.expectile), (q - v).detach()

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each critic's MSE to r + gamma (1 - d) V(s'), averaged over the critics (compiled)."""
        with torch.no_grad():
            y = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminated"]) * self.value(batch["next_obs"])
        q = self.critic(batch["obs"], batch["actions"])
        return (q - y).square().mean(1).mean(), q.detach()

    def actor_loss(self, batch: dict[str, torch.Tensor], advantage: torch.Tensor) -> torch.Tensor:
        """Advantage-weighted regression onto the dataset's actions (compiled)."""
        weights = awr_weights(advantage, self.config.beta, self.config.max_weight)
        if self.config.deterministic_actor:
            bc = (self.policy(batch["obs"]) - batch["actions"]).square().sum(-1)
        else:
            bc = -self.policy.log_prob(batch["obs"], batch["actions"])
        return (weights * bc).mean()

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        v_loss, advantage = self._value_loss(batch)
        self.step("value", v_loss)
        q_loss, q = self._critic_loss(batch)
        self.step("critic", q_loss)
        with torch.no_grad():
            polyak_update(self._targets, self._online, cfg.tau)
        if cfg.cosine_actor_lr:  # a Python float: CORL's CosineAnnealingLR over the run, without a scheduler's state
            decay = 1.0 if self.online else 0.5 * (1.0 + math.cos(math.pi * progress))  # online: the constant rate
            for group in self.optimizers["actor"].param_groups:
                group["lr"] = cfg.learning_rate * decay
        pi_loss = self._actor_loss(batch, advantage)
        self.step("actor", pi_loss)
        return {
            "value_loss": v_loss.detach(),
            "critic_loss": q_loss.detach(),
            "actor_loss": pi_loss.detach(),
            "q_mean": q.mean(),
            "advantage_mean": advantage.mean(),
        }
