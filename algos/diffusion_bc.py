"""Diffusion-BC: behaviour cloning with a diffusion policy, the baseline of the generative methods
(Wang et al. 2023's "Diffusion-BC", ``agents/bc_diffusion.py``; arXiv:2208.06193).

A :class:`nets.generative.DiffusionPolicy` (K = 5 VP-linear steps, epsilon prediction, a 3x256
Mish MLP) trained on the dataset's actions by the DDPM loss alone, no critic. It clones the whole
behaviour distribution, modes included, so on a mixed dataset it acts like the mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algos.generative import GenerativeOfflineAlgorithm, GenerativeOfflineConfig
from nets.generative import DiffusionPolicy


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
    """denoising steps per sampled action (None: all K)"""
    time_dim: int = 16
    """width of the denoiser's sinusoidal time embedding (Diffusion-QL: 16)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.learning_rate <= 0 or self.num_timesteps < 1:
            raise ValueError(f"learning_rate must be > 0 and num_timesteps >= 1; got {self.learning_rate}, {self.num_timesteps}")


class DiffusionBC(GenerativeOfflineAlgorithm):
    """Behaviour cloning of a :class:`DiffusionPolicy` (or any policy with ``bc_loss`` and ``act``). Also the
    base of Diffusion-QL and EDP, which add critics and a Q term."""

    config_class = DiffusionBCConfig
    config: DiffusionBCConfig

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = DiffusionPolicy(self.obs_dim, self.act_dim, num_timesteps=cfg.num_timesteps, schedule=cfg.beta_schedule,
                                          sampler=cfg.sampler, sample_steps=cfg.sample_steps, hidden=cfg.actor_hidden,
                                          activation=cfg.activation, time_dim=cfg.time_dim)
        self.policy = self.policy.to(self.device)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.learning_rate)
        self._bc_loss = self.compiled(self.bc_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, "obs_normalizer": self.obs_normalizer}

    def bc_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The DDPM loss E||eps - eps_theta(s, a_k, k)||^2 on the dataset's actions (compiled)."""
        return self.policy.bc_loss(batch["obs"], batch["actions"])

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        loss = self._bc_loss(batch)
        self.step("actor", loss)
        return {"bc_loss": loss.detach()}
