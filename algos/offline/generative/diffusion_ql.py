"""Diffusion-QL: diffusion policies for offline RL (Wang, Hunt & Zhou, ICLR 2023, arXiv:2208.06193).

The actor is a K = 5 diffusion policy trained by the DDPM loss plus a Q term through the whole
reverse chain, sampled with gradient:

    L(theta) = L_d(theta) - eta E[Q_j(s, a0_theta)] / E|Q_j'(s, a0_theta)|,

with ``j`` one of the twin critics at random and the other's mean |Q| as the (detached) scale.
The twin critics regress onto ``r + gamma (1 - d) min_i Q'_i(s', a')`` with ``a'`` sampled from
an EMA copy of the actor (decay 0.995, every 5 updates, from update 1000), or, with
``max_q_backup``, the max over 10 sampled ``a'`` per critic. Both learning rates decay along a
cosine over the run (``--lr_decay`` in the authors' commands); gradients are clipped.

Defaults are the authors' for D4RL locomotion (``main.py``: lr 3e-4, eta 1, no max-Q backup),
except: ``grad_norm`` is one value (theirs is per dataset: 9 for halfcheetah- and hopper-medium,
1 for walker2d-medium, 2 for halfcheetah-medium-replay, 4 for hopper-medium-replay), and acting
takes one sample (``act_candidates=1``; their evaluation draws among 50 candidates by
softmax(Q), which ``act_candidates=50`` reproduces). Their "online model selection" (the best
evaluation over training) is not offered: the final checkpoint is what is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from policyopt.algos.offline.generative.base import EMAConfig, GenerativeOfflineAlgorithm, QGuidanceConfig
from policyopt.algos.offline.generative.diffusion_bc import DiffusionBCConfig, build_policy


@dataclass
class DiffusionQLConfig(QGuidanceConfig, EMAConfig, DiffusionBCConfig):
    """Diffusion-QL settings; the defaults are the authors' for D4RL locomotion (learning_rate is the actor's and the critics')."""

    grad_norm: float = 5.0
    """clip the actor's and the critics' gradient norms at this (0: off; the authors' values per dataset are in the module docstring)"""
    cosine_lr: bool = True
    """decay both learning rates along a cosine to 0 over the offline updates (the authors' --lr_decay; online: constant)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ema()
        self.check_q_guidance()
        if self.grad_norm < 0:
            raise ValueError(f"grad_norm must be >= 0 (0: no clipping), got {self.grad_norm}")


class DiffusionQL(GenerativeOfflineAlgorithm):
    """Diffusion-QL with a :class:`nets.generative.DiffusionPolicy`: the actor's Q term through the sampled chain."""

    config_class = DiffusionQLConfig
    config: DiffusionQLConfig

    def _setup(self) -> None:
        setup_diffusion_ql(self)
        self._actor_loss = self.compiled(self.actor_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return diffusion_ql_modules(self)

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_d + eta L_q with a0 sampled through the whole chain, with gradient (compiled)."""
        obs = batch["obs"]
        pi = self.policy.sample(obs, grad=True)
        return self.q_guided_loss(obs, self.policy.bc_loss(obs, batch["actions"]), pi)

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        return q_guided_update(self, batch, progress, self._actor_loss)


def setup_diffusion_ql(agent: GenerativeOfflineAlgorithm) -> None:
    """Diffusion-QL's networks (EDP's too): the config's diffusion policy and its Adam, its EMA copy, twin critics."""
    cfg = agent.config
    agent.setup_actor(lambda: build_policy(cfg, agent.obs_dim, agent.act_dim), cfg.learning_rate)
    agent.setup_ema()
    agent.setup_critics(cfg.learning_rate)


def diffusion_ql_modules(agent: GenerativeOfflineAlgorithm) -> dict[str, torch.nn.Module]:
    """The networks :func:`setup_diffusion_ql` builds, by the names checkpoints store them under."""
    return {
        "policy": agent.policy,
        "policy_ema": agent.policy_ema,
        "critic": agent.critic,
        "critic_target": agent.critic_target,
        "obs_normalizer": agent.obs_normalizer,
    }


def cosine_learning_rates(agent: GenerativeOfflineAlgorithm, progress: float) -> None:
    """Both learning rates along a cosine to 0 over the offline updates (a Python float, without a scheduler's state);
    constant online."""
    decay = 1.0 if agent.online else 0.5 * (1.0 + math.cos(math.pi * progress))
    for name in ("actor", "critic"):
        for group in agent.optimizers[name].param_groups:
            group["lr"] = agent.config.learning_rate * decay


def q_guided_update(
    agent: GenerativeOfflineAlgorithm,
    batch: dict[str, torch.Tensor],
    progress: float,
    actor_loss: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """Diffusion-QL's update: the critics on TD targets from the EMA actor's samples, then ``actor_loss``,
    the EMA copy and the target critics (EDP's td3 variant runs it with its own actor loss)."""
    cfg = agent.config
    if cfg.cosine_lr:
        cosine_learning_rates(agent, progress)
    metrics = agent.critic_step(batch, agent.policy_ema.sample, cfg.grad_norm)
    loss, extra = actor_loss(batch)
    agent.step("actor", loss, cfg.grad_norm)
    agent.update_ema()
    agent.update_critic_targets()
    return {**metrics, "actor_loss": loss.detach(), **extra}
