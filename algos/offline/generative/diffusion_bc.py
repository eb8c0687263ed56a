"""Diffusion-BC: behaviour cloning with a diffusion policy, the baseline of the generative methods
(Wang et al. 2023's "Diffusion-BC", ``agents/bc_diffusion.py``; arXiv:2208.06193).

A :class:`nets.generative.DiffusionPolicy` (K = 5 VP-linear steps, epsilon prediction, a 3x256
Mish MLP) trained on the dataset's actions by the DDPM loss alone, no critic. It clones the whole
behaviour distribution, modes included, so on a mixed dataset it acts like the mix.

``family="flow"`` (``--algo.family flow``) clones a :class:`nets.generative.FlowPolicy` instead
(conditional flow matching, 10 Euler steps unless ``sample_steps``): a flow base policy for DSRL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from policyopt.algos.offline.generative.base import GenerativeOfflineAlgorithm, GenerativeOfflineConfig
from policyopt.nets.generative import DiffusionPolicy, FlowPolicy

POLICY_FAMILIES = ("diffusion", "flow")


@dataclass
class DiffusionBCConfig(GenerativeOfflineConfig):
    """Diffusion-BC settings; the defaults are Diffusion-QL's (K = 5, DDPM, Adam 3e-4, batch 256)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the policy"""
    num_timesteps: int = 5
    """K, the diffusion steps of the policy's schedule (Diffusion-QL: 5; EDP: up to 1000)"""
    beta_schedule: str = "linear"
    """noise schedule: linear (the VP-SDE's, Diffusion-QL's vp_beta_schedule) or cosine"""
    sampler: str = "ddpm"
    """how actions are sampled: ddpm, ddim (eta 0) or dpm (DPM-Solver++(2M))"""
    sample_steps: int | None = None
    """denoising steps per sampled action (None: all K; flow: Euler steps, None: 10)"""
    time_dim: int = 16
    """width of the denoiser's sinusoidal time embedding (Diffusion-QL: 16)"""
    family: str = "diffusion"
    """the policy cloned: diffusion (a DiffusionPolicy) or flow (a FlowPolicy, Euler steps; num_timesteps, beta_schedule and sampler do not apply); Diffusion-BC only"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.learning_rate <= 0 or self.num_timesteps < 1:
            raise ValueError(f"learning_rate must be > 0 and num_timesteps >= 1; got {self.learning_rate}, {self.num_timesteps}")
        if self.family not in POLICY_FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; available: {', '.join(POLICY_FAMILIES)}")
        if self.family != "diffusion" and type(self) is not DiffusionBCConfig:
            # the Q-guided subclasses (Diffusion-QL, EDP) build the diffusion timesteps into their losses
            raise ValueError(f"family={self.family!r} is Diffusion-BC's option; {type(self).__name__} trains a diffusion policy")


def build_policy(cfg: DiffusionBCConfig, obs_dim: int, act_dim: int) -> nn.Module:
    """The config's policy: a :class:`DiffusionPolicy`, or with ``family="flow"`` a :class:`FlowPolicy`
    (Diffusion-BC's, and Diffusion-QL's and EDP's actor)."""
    if cfg.family == "flow":
        steps = 10 if cfg.sample_steps is None else cfg.sample_steps  # FQL's and FPO's Euler steps
        return FlowPolicy(
            obs_dim, act_dim, sample_steps=steps, hidden=cfg.actor_hidden, activation=cfg.activation, time_dim=cfg.time_dim
        )
    return DiffusionPolicy(
        obs_dim,
        act_dim,
        num_timesteps=cfg.num_timesteps,
        schedule=cfg.beta_schedule,
        sampler=cfg.sampler,
        sample_steps=cfg.sample_steps,
        hidden=cfg.actor_hidden,
        activation=cfg.activation,
        time_dim=cfg.time_dim,
    )


class DiffusionBC(GenerativeOfflineAlgorithm):
    """Behaviour cloning of a :class:`DiffusionPolicy`, a :class:`FlowPolicy` (``family="flow"``) or any policy
    with ``bc_loss`` and ``act``. Diffusion-QL and EDP build the same policy (:func:`build_policy`) and add critics."""

    config_class = DiffusionBCConfig
    config: DiffusionBCConfig

    def _setup(self) -> None:
        cfg = self.config
        self.setup_actor(lambda: build_policy(cfg, self.obs_dim, self.act_dim), cfg.learning_rate)
        self._bc_loss = self.compiled(self.bc_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, "obs_normalizer": self.obs_normalizer}

    def bc_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The policy's own loss on the dataset's actions (compiled): DDPM's E||eps - eps_theta(s, a_k, k)||^2,
        or conditional flow matching for a flow policy."""
        return self.policy.bc_loss(batch["obs"], batch["actions"])

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        loss = self._bc_loss(batch)
        self.step("actor", loss)
        return {"bc_loss": loss.detach()}
