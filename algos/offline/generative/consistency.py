"""Consistency-BC and Consistency-AC (Ding & Jin, ICLR 2024, arXiv:2309.16984).

A :class:`nets.generative.ConsistencyPolicy`, ``f_theta(s, x, sigma) = c_skip x + c_out F_theta``
on Karras noise levels in [0.002, 80], trained by consistency training against an EMA copy of
itself (the "target", Diffusion-QL's EMA: 0.995 every 5 updates from update 1000):

    L_CT = E ||f_theta(s, a + sigma_{n+1} z, sigma_{n+1}) - f_ema(s, a + sigma_n z, sigma_n)||^2,

``n ~ U{0..N-2}``, with the number of boundaries ``N`` growing from 2 to 150 over training (the
consistency-model curriculum, Song et al. 2023). Actions are sampled in 2 steps (sigma 80, then 2).

- **Consistency-BC** is that loss alone.
- **Consistency-AC** adds Diffusion-QL's Q term through the 2-step sample, with gradient:
  ``L_CT - eta E[Q_j(s, a_theta)] / E|Q_j'(s, a_theta)|``, and Diffusion-QL's twin critics with
  the EMA policy's next actions in the TD target.

Defaults are the authors' (``Consistency_QL``'s in ``agents/ql_consistency.py``: lr 3e-4, gradient
norm clipped at 1, eta 1, EMA 0.995 every 5 updates from update 1000, no lr decay; 2 sampling
steps as most locomotion entries of ``offline.py``). Differences: the curriculum runs once over
the whole run (the authors' code computes N from the update's index within each ``train`` call,
so it restarts every epoch); their ``100 / (sigma_{n+1} - sigma_n)`` loss scaling is
``scale_consistency_loss`` (off by default; their code turns it on for medium-expert only, and
uses eta 0.1 on hopper-medium, hopper-medium-replay and walker2d-medium-replay: without either
the Q term, about 1, outweighs a consistency loss of about 0.001 and the critic diverges); the
network sees EDM's scaled input and ``ln(sigma) / 4`` (see :class:`ConsistencyPolicy`); acting takes
one sample (their evaluation draws among 50 candidates by softmax(Q): ``act_candidates=50``).
The actor loss is not compiled: ``N`` changes with the curriculum, and each value would compile anew.

**The consistency target in short runs.** Ding & Jin match the EMA copy, which keeps its initial
(random) weights until update 1,000 and then trails the policy by about 1,000 updates (0.995
every 5): negligible in their 1M-update runs, but most of a 5,000-update one. After 5,000 updates
Consistency-BC on our hopper-medium returns 268 (5 episodes) with it, against 830 matching the policy
itself without gradient, improved CT's target (Song & Dhariwal 2023): ``consistency_target="online"``.
The EMA copy still gives the TD targets' next actions either way, as in Diffusion-QL.
Consistency-AC on hopper-medium, 5,000 updates: with the online target and eta 0.1 (no loss
scaling) the Q term still wins (55% of the sampled action dims at the bounds, against 17-33% for BC
alone; return 170 at 4,000 updates); with the online target and ``scale_consistency_loss`` at eta 1
it returns 1,026, with the actions at the bounds as often as the BC policy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from policyopt.algos.offline.generative.base import (
    EMAConfig,
    GenerativeOfflineAlgorithm,
    GenerativeOfflineConfig,
    QGuidanceConfig,
)
from policyopt.nets.generative import ConsistencyPolicy, consistency_num_scales


CONSISTENCY_TARGETS = ("ema", "online")


@dataclass
class ConsistencyBCConfig(EMAConfig, GenerativeOfflineConfig):
    """Consistency-BC settings; the defaults are Ding & Jin's for locomotion."""

    learning_rate: float = 3e-4
    """Adam learning rate of the policy (and Consistency-AC's critics)"""
    num_scales: int = 150
    """N at the end of the curriculum: the number of Karras boundaries (s1 = 150)"""
    initial_scales: int = 2
    """N at the start of the curriculum (s0 = 2)"""
    curriculum: bool = True
    """grow N from initial_scales to num_scales over the offline updates (Song et al. 2023); False: num_scales throughout"""
    sample_steps: int = 2
    """consistency steps per sampled action (Ding & Jin: 2; 5 on walker2d-medium and -medium-replay)"""
    consistency_loss: str = "l2"
    """distance of the consistency loss: l2 (Ding & Jin) or pseudo_huber (improved CT)"""
    grad_norm: float = 1.0
    """clip the gradient norms at this (0: off; Ding & Jin: 1)"""
    consistency_target: str = "ema"
    """what the consistency loss matches: ema (the EMA copy, Ding & Jin; it moves from update ema_start on) or online (the policy itself without gradient, improved CT; learns far faster in short runs)"""
    scale_consistency_loss: bool = False
    """weight the consistency loss by 100 / (sigma_{n+1} - sigma_n), as Ding & Jin's code on the medium-expert datasets"""
    time_dim: int = 16
    """width of the network's sinusoidal noise-level embedding"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ema()
        if self.consistency_target not in CONSISTENCY_TARGETS:
            raise ValueError(
                f"unknown consistency_target {self.consistency_target!r}; available: {', '.join(CONSISTENCY_TARGETS)}"
            )
        if not 2 <= self.initial_scales <= self.num_scales or self.learning_rate <= 0 or self.grad_norm < 0:
            raise ValueError(
                f"need 2 <= initial_scales <= num_scales, learning_rate > 0 and grad_norm >= 0; got "
                f"{self.initial_scales}, {self.num_scales}, {self.learning_rate}, {self.grad_norm}"
            )


@dataclass
class ConsistencyACConfig(QGuidanceConfig, ConsistencyBCConfig):
    """Consistency-AC settings; the defaults are Ding & Jin's for locomotion (eta 1; 0.1 on hopper-medium, -medium-replay, walker2d-medium-replay)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_q_guidance()


def curriculum_scales(progress: float, initial: int, final: int) -> int:
    """N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1 at k/K = ``progress``  (Song et al. 2023, appendix C)."""
    return consistency_num_scales(progress, 1, initial, final)  # the fraction k/K itself: step=progress, total=1


class ConsistencyBC(GenerativeOfflineAlgorithm):
    """Consistency training of a :class:`ConsistencyPolicy` against its EMA copy (or itself: ``consistency_target="online"``)."""

    config_class = ConsistencyBCConfig
    config: ConsistencyBCConfig

    def _setup(self) -> None:
        setup_consistency_policy(self)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, "policy_ema": self.policy_ema, "obs_normalizer": self.obs_normalizer}

    def consistency_loss(self, batch: dict[str, torch.Tensor], progress: float) -> torch.Tensor:
        return consistency_loss(self, batch, progress)

    def actor_loss(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_CT alone (Consistency-BC)."""
        loss = consistency_loss(self, batch, progress)
        return loss, {"bc_loss": loss.detach()}

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        return consistency_update(self, batch, progress, self.actor_loss)


class ConsistencyAC(GenerativeOfflineAlgorithm):
    """Consistency-AC: Consistency-BC's loss plus Diffusion-QL's Q term through the sampled actions, twin critics."""

    config_class = ConsistencyACConfig
    config: ConsistencyACConfig

    def _setup(self) -> None:
        setup_consistency_policy(self)
        self.setup_critics(self.config.learning_rate)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "policy": self.policy,
            "policy_ema": self.policy_ema,
            "obs_normalizer": self.obs_normalizer,
            "critic": self.critic,
            "critic_target": self.critic_target,
        }

    def consistency_loss(self, batch: dict[str, torch.Tensor], progress: float) -> torch.Tensor:
        return consistency_loss(self, batch, progress)

    def actor_loss(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_CT + eta L_q, the action sampled in ``sample_steps`` steps with gradient."""
        obs = batch["obs"]
        return self.q_guided_loss(obs, consistency_loss(self, batch, progress), self.policy.sample(obs, grad=True))

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        return consistency_update(self, batch, progress, self.actor_loss)


# --- what Consistency-BC and Consistency-AC share ---------------------------------------------------
def setup_consistency_policy(agent: GenerativeOfflineAlgorithm) -> None:
    """The :class:`ConsistencyPolicy` (unless one was passed in), its Adam and its EMA copy."""
    cfg = agent.config
    agent.setup_actor(
        lambda: ConsistencyPolicy(
            agent.obs_dim,
            agent.act_dim,
            num_scales=cfg.num_scales,
            sample_steps=cfg.sample_steps,
            loss=cfg.consistency_loss,
            hidden=cfg.actor_hidden,
            activation=cfg.activation,
            time_dim=cfg.time_dim,
        ),
        cfg.learning_rate,
    )
    agent.setup_ema()


def num_scales_at(agent: GenerativeOfflineAlgorithm, progress: float) -> int:
    """The curriculum's N at ``progress`` (a Python int, from the run's fraction done: a resume sees the same)."""
    cfg = agent.config
    if not cfg.curriculum or agent.online:  # online: the top of the curriculum
        return cfg.num_scales
    return curriculum_scales(progress, cfg.initial_scales, cfg.num_scales)


def consistency_loss(agent: GenerativeOfflineAlgorithm, batch: dict[str, torch.Tensor], progress: float) -> torch.Tensor:
    """L_CT against the EMA copy (or the policy itself: ``consistency_target="online"``), at the curriculum's N."""
    target = agent.policy_ema if agent.config.consistency_target == "ema" else None
    return agent.policy.bc_loss(
        batch["obs"],
        batch["actions"],
        target=target,
        num_scales=num_scales_at(agent, progress),
        scale_by_gap=agent.config.scale_consistency_loss,
    )


def consistency_update(
    agent: GenerativeOfflineAlgorithm,
    batch: dict[str, torch.Tensor],
    progress: float,
    actor_loss: Callable[[dict[str, torch.Tensor], float], tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """One update: the twin critics first where there are some (TD targets from the EMA copy's samples), then
    ``actor_loss``, the EMA copy and the target critics."""
    cfg = agent.config
    metrics = agent.critic_step(batch, agent.policy_ema.sample, cfg.grad_norm) if agent.critic is not None else {}
    loss, extra = actor_loss(batch, progress)
    agent.step("actor", loss, cfg.grad_norm)
    agent.update_ema()
    if agent.critic is not None:
        agent.update_critic_targets()
    return {**metrics, "actor_loss": loss.detach(), **extra, "num_scales": float(num_scales_at(agent, progress))}
