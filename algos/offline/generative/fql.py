"""FQL: Flow Q-Learning (Park, Li & Levine 2025, arXiv:2502.02538; ``seohongpark/fql``'s ``agents/fql.py``).

Three networks: a behaviour *flow* policy, a velocity field trained by flow matching on the
dataset's actions; a *one-step policy* ``mu(s, z)``, a plain MLP from an observation and a noise
``z ~ N(0, I)`` straight to an action; and twin critics. The one-step policy acts (one network
call, as a Gaussian's) and is trained to maximise Q while staying close to what the flow makes of
the same noise:

    L_actor = L_flow(v) + alpha E||mu(s, z) - flow(s, z)||^2 - E[mean_i Q_i(s, clip(mu(s, z)))],

``flow(s, z)`` the flow's 10-step Euler integral from ``z``, clipped to [-1, 1] and without
gradient (distillation trains ``mu`` only, never the flow). The critics regress onto
``r + gamma (1 - d) mean_i Q'_i(s', clip(mu(s', z')))`` (``q_aggregate``: mean, or min).

Defaults are FQL's (lr 3e-4, batch 256, 4x512 GELU MLPs, layer norm in the critics, alpha 10,
the Q term unnormalised); alpha "needs to be tuned for each environment" (their README sweeps
0.03-10), and ``normalize_q`` divides the Q term by mean |Q|, which makes alpha scale-free.
Differences: the flow's network embeds time sinusoidally (FQL concatenates the raw ``t``); the
critic loss sums the two critics' MSEs (FQL averages them: a factor 2 on the critic's gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from policyopt.algos.offline.generative.base import (
    GenerativeOfflineAlgorithm,
    GenerativeOfflineConfig,
    normalized_q_loss,
    td_losses,
)
from policyopt.nets import default_init
from policyopt.nets.generative import FlowPolicy
from policyopt.nets.mlp import mlp
from policyopt.nets.spec import RecordsInit

AGGREGATES = ("mean", "min")


@dataclass
class FQLConfig(GenerativeOfflineConfig):
    """FQL settings; the defaults are FQL's (actor_hidden sizes the flow and the one-step policy alike)."""

    actor_hidden: tuple[int, ...] = (512, 512, 512, 512)
    """hidden layer sizes of the flow's velocity network and of the one-step policy (FQL: 4x512)"""
    critic_hidden: tuple[int, ...] = (512, 512, 512, 512)
    """hidden layer sizes of each critic (FQL: 4x512)"""
    activation: str = "gelu"
    """hidden activation of every MLP (FQL: GELU)"""
    learning_rate: float = 3e-4
    """Adam learning rate of the flow, the one-step policy and the critics"""
    alpha: float = 10.0
    """weight of the distillation loss ||mu(s, z) - flow(s, z)||^2 (FQL: 10, to tune per environment)"""
    flow_steps: int = 10
    """Euler steps of the flow's integral, the distillation target"""
    normalize_q: bool = False
    """divide the actor's Q term by mean |Q| (detached), FQL's normalize_q_loss"""
    q_aggregate: str = "mean"
    """how the TD target combines the target critics: mean (FQL's default) or min"""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden linear layer of the critics (FQL: on)"""
    time_dim: int = 16
    """width of the flow network's sinusoidal time embedding"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.q_aggregate not in AGGREGATES:
            raise ValueError(f"unknown q_aggregate {self.q_aggregate!r}; available: {', '.join(AGGREGATES)}")
        if self.alpha < 0 or self.flow_steps < 1 or self.learning_rate <= 0:
            raise ValueError(
                f"alpha must be >= 0, flow_steps >= 1 and learning_rate > 0; got {self.alpha}, {self.flow_steps}, "
                f"{self.learning_rate}"
            )


class OneStepActor(RecordsInit, nn.Module):
    """FQL's one-step policy ``mu(s, z) = MLP([s, z])``: noise to action in one call (no squashing; clipped when used)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (512, 512, 512, 512), activation: str = "gelu"
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.net = default_init(mlp(self.obs_dim + self.act_dim, self.act_dim, tuple(hidden), activation))

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if noise.shape != (obs.shape[0], self.act_dim):
            raise ValueError(f"noise must have shape {(obs.shape[0], self.act_dim)} ([batch, act_dim]), got {tuple(noise.shape)}")
        return self.net(torch.cat([obs, noise], -1))

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1] from fresh noise, or from zero noise when ``deterministic``."""
        shape = (obs.shape[0], self.act_dim)
        noise = obs.new_zeros(shape) if deterministic else torch.randn(shape, device=obs.device, dtype=obs.dtype)
        return self.forward(obs, noise).clamp(-1.0, 1.0)


def fql_actor_loss(
    flow_loss: torch.Tensor, mu: torch.Tensor, flow_actions: torch.Tensor, q: torch.Tensor, alpha: float, normalize_q: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_flow + alpha E||mu - flow(s, z)||^2 - E[Q] (/ E|Q| detached with normalize_q)  (Park et al. 2025; agents/fql.py's actor_loss).

    The squared error is averaged over the action dimensions, as FQL's ``distill_loss``; returns the loss and the distillation term.
    """
    distill = (mu - flow_actions).square().mean()
    q_loss = normalized_q_loss(q, q) if normalize_q else -q.mean()
    return flow_loss + alpha * distill + q_loss, distill


class FQL(GenerativeOfflineAlgorithm):
    """Flow Q-learning: a :class:`FlowPolicy` cloned by flow matching, and the :class:`OneStepActor` that acts."""

    config_class = FQLConfig
    config: FQLConfig

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = OneStepActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.flow = FlowPolicy(
            self.obs_dim,
            self.act_dim,
            sample_steps=cfg.flow_steps,
            hidden=cfg.actor_hidden,
            activation=cfg.activation,
            time_dim=cfg.time_dim,
        ).to(self.device)
        self.optimizers["actor"] = self.adam([*self.flow.parameters(), *self.policy.parameters()], cfg.learning_rate)
        self.setup_critics(cfg.learning_rate, layer_norm=cfg.critic_layer_norm)
        self._critic_loss = self.compiled(self.critic_loss)
        self._actor_loss = self.compiled(self.actor_loss)

    def modules(self) -> dict[str, nn.Module]:
        return {
            "policy": self.policy,
            "flow": self.flow,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "obs_normalizer": self.obs_normalizer,
        }

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The critics' summed MSE to r + gamma (1 - d) agg_i Q'_i(s', mu(s', z')) (compiled)."""
        losses, q = td_losses(
            self.critic, self.critic_target, batch, lambda o: self.policy.act(o), aggregate=self.config.q_aggregate
        )
        return losses.sum(), q

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Flow matching, distillation onto the flow's action for the same noise, and the Q term (compiled)."""
        cfg, obs = self.config, batch["obs"]
        flow_loss = self.flow.bc_loss(obs, batch["actions"])
        z = torch.randn(obs.shape[0], self.act_dim, device=obs.device)
        flow_actions = self.flow.sample_from_noise(obs, z)  # no gradient, clipped to [-1, 1]
        mu = self.policy(obs, z)
        q = self.critic(obs, mu.clamp(-1.0, 1.0), detach_params=True).mean(0)
        loss, distill = fql_actor_loss(flow_loss, mu, flow_actions, q, cfg.alpha, cfg.normalize_q)
        return loss, {"bc_loss": flow_loss.detach(), "distill_loss": distill.detach(), "q_pi": q.detach().mean()}

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        q_loss, q = self._critic_loss(batch)
        self.step("critic", q_loss)
        loss, extra = self._actor_loss(batch)
        self.step("actor", loss)
        self.update_critic_targets()
        return {"critic_loss": q_loss.detach(), "q_mean": q.mean(), "actor_loss": loss.detach(), **extra}
