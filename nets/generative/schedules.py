"""Noise schedules and corruption paths: discrete VP (DDPM), Karras/EDM sigmas for consistency
models, and the linear interpolation path of flow matching.

Conventions used across :mod:`nets.generative`:

- diffusion: ``K`` steps indexed ``k = 0..K-1``; ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps``,
  ``abar`` decreasing in ``k``. Index ``-1`` means "clean" (``abar = 1``).
- consistency: noise level ``sigma in [sigma_min, sigma_max]``; ``x_sigma = x0 + sigma z``.
- flow: time ``tau in [0, 1]`` from noise (0) to data (1); ``x_tau = (1 - tau) eps + tau x1``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor


def vp_linear_betas(num_timesteps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> Tensor:
    """The discretised VP-SDE with linear ``beta(t)`` (Song et al. 2021), as Diffusion-QL's
    ``vp_beta_schedule``: ``1 - alpha_k = 1 - exp(-b_min/K - (b_max - b_min)(2k - 1)/(2K^2))``.

    Unlike DDPM's ``linspace(1e-4, 0.02, K)`` it ends at the same ``abar_K`` for every ``K``,
    so it works at ``K = 5`` (Diffusion-QL) and ``K = 1000`` (EDP) alike.
    """
    k = torch.arange(1, int(num_timesteps) + 1, dtype=torch.float64)
    K = float(num_timesteps)
    alpha = torch.exp(-beta_min / K - 0.5 * (beta_max - beta_min) * (2 * k - 1) / K**2)
    return (1.0 - alpha).float()


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Cosine schedule ``abar(t) = cos^2(((t/K + s)/(1 + s)) pi/2)`` (Nichol & Dhariwal 2021), betas clipped at 0.999."""
    t = torch.arange(int(num_timesteps) + 1, dtype=torch.float64) / int(num_timesteps)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1.0 - abar[1:] / abar[:-1]).clamp(max=max_beta).float()


BETA_SCHEDULES = {"linear": vp_linear_betas, "cosine": cosine_betas}


class DiffusionSchedule(nn.Module):
    """A discrete ``K``-step variance-preserving schedule and its forward corruption (Ho et al. 2020).

    Holds ``betas`` and ``alphas_cumprod`` as non-persistent buffers (a function of the
    constructor, so they follow ``.to(device)`` and stay out of checkpoints).
    """

    def __init__(self, num_timesteps: int, kind: str = "linear") -> None:
        super().__init__()
        if int(num_timesteps) < 1:
            raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
        try:
            betas = BETA_SCHEDULES[kind](int(num_timesteps))
        except KeyError:
            raise ValueError(f"unknown beta schedule {kind!r}; use one of {sorted(BETA_SCHEDULES)}") from None
        self.num_timesteps, self.kind = int(num_timesteps), kind
        self.register_buffer("betas", betas, persistent=False)
        abar = torch.cumprod(1.0 - betas.double(), 0).float()
        self.register_buffer("alphas_cumprod", abar, persistent=False)
        # index k + 1, so that k = -1 ("clean") reads abar = 1
        self.register_buffer("_abar", torch.cat([abar.new_ones(1), abar]), persistent=False)

    def abar(self, k: Tensor | int) -> Tensor:
        """``abar_k`` for ``k`` in ``-1..K-1`` (``-1``: clean, ``abar = 1``); a tensor index gives a tensor."""
        return self._abar[k + 1]

    def q_sample(self, x0: Tensor, k: Tensor | int, noise: Tensor) -> Tensor:
        """The forward corruption ``sqrt(abar_k) x0 + sqrt(1 - abar_k) noise``; ``k`` an int or ``[B]``."""
        a = _col(self.abar(k), x0)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def predict_x0(self, x: Tensor, k: Tensor | int, eps: Tensor) -> Tensor:
        """Invert :meth:`q_sample` given the noise: ``(x - sqrt(1 - abar) eps) / sqrt(abar)``."""
        a = _col(self.abar(k), x)
        return (x - (1.0 - a).sqrt() * eps) / a.sqrt()

    def predict_eps(self, x: Tensor, k: Tensor | int, x0: Tensor) -> Tensor:
        """The noise consistent with ``x`` and ``x0``: ``(x - sqrt(abar) x0) / sqrt(1 - abar)``."""
        a = _col(self.abar(k), x)
        return (x - a.sqrt() * x0) / (1.0 - a).sqrt()

    def timesteps(self, steps: int) -> list[int]:
        """``steps`` indices from ``K-1`` down to ``0``, evenly spaced: the sampling grid."""
        if steps == self.num_timesteps:
            return list(range(self.num_timesteps - 1, -1, -1))
        return torch.linspace(self.num_timesteps - 1, 0, steps).round().long().tolist()


def _col(a: Tensor, like: Tensor) -> Tensor:
    """A scalar or per-sample ``[B]`` coefficient shaped to broadcast against ``like`` ``[B, d]``."""
    return a.to(like.dtype).reshape(a.shape + (1,) * (like.dim() - a.dim()))


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """``n`` Karras/EDM noise levels, ascending: ``(s_min^(1/rho) + i/(n-1) (s_max^(1/rho) - s_min^(1/rho)))^rho``
    (Karras et al. 2022, eq. 5; the consistency boundaries of Song et al. 2023)."""
    if int(n) < 2:
        raise ValueError(f"karras_sigmas needs n >= 2 boundaries, got {n}")
    i = torch.arange(int(n), dtype=torch.float64) / (int(n) - 1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return ((lo + i * (hi - lo)) ** rho).float()


def consistency_num_scales(step: int, total_steps: int, s0: int = 2, s1: int = 150) -> int:
    """The consistency-training curriculum ``N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1``
    (Song et al. 2023, appendix C), growing from ``s0`` to ``s1`` boundaries over training (the formula
    reaches ``s1 + 1`` at the very end; it is capped at ``s1``)."""
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return min(int(math.ceil(math.sqrt(frac * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1)) + 1, s1)


def consistency_scalings(
    sigma: Tensor, sigma_data: float = 0.5, sigma_min: float = 0.002
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` of the consistency parameterisation (Song et al. 2023, appendix C):
    ``c_skip = sd^2 / ((s - s_min)^2 + sd^2)``, ``c_out = sd (s - s_min) / sqrt(s^2 + sd^2)``, so that
    ``f(x, s_min) = x`` exactly; ``c_in = 1 / sqrt(s^2 + sd^2)`` and ``c_noise = ln(s) / 4`` as in EDM."""
    sd2 = sigma_data**2
    c_skip = sd2 / ((sigma - sigma_min) ** 2 + sd2)
    c_out = sigma_data * (sigma - sigma_min) / (sigma**2 + sd2).sqrt()
    c_in = 1.0 / (sigma**2 + sd2).sqrt()
    return c_skip, c_out, c_in, 0.25 * sigma.log()


def flow_interpolate(noise: Tensor, data: Tensor, tau: Tensor) -> Tensor:
    """The linear (rectified-flow / OT) path ``x_tau = (1 - tau) noise + tau data`` (Lipman et al. 2023;
    Liu et al. 2023); ``tau`` broadcasts from the left (``[B]`` or ``[B, N]`` against ``[..., d]``)."""
    t = _col(tau, data)
    return (1.0 - t) * noise + t * data


def flow_velocity(noise: Tensor, data: Tensor) -> Tensor:
    """The conditional flow-matching target along :func:`flow_interpolate`: ``data - noise``."""
    return data - noise
