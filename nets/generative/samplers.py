"""Samplers, written against plain callables so they can be checked on analytic models.

- diffusion: ``eps_fn(x, k) -> eps`` with ``k`` a Python int timestep; DDPM, DDIM with ``eta``,
  DPM-Solver++(2M), all on the grid :meth:`DiffusionSchedule.timesteps` and ending at the clean
  level (``k = -1``), one network evaluation per step;
- flow: ``v_fn(x, tau) -> velocity`` with ``tau`` a float in ``[0, 1)``; Euler and midpoint;
- consistency: ``f_fn(x, sigma) -> x0`` with ``sigma`` a float; 1..n-step multistep sampling.

``clip`` bounds the clean-action estimate inside the chain (Diffusion-QL's ``clip_denoised``);
``None`` turns it off.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from policyopt.nets.generative.schedules import DiffusionSchedule

EpsFn = Callable[[Tensor, int], Tensor]
VelocityFn = Callable[[Tensor, float], Tensor]
DenoiseFn = Callable[[Tensor, float], Tensor]


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _clean(schedule: DiffusionSchedule, x: Tensor, k: int, eps: Tensor, clip: float | None) -> Tensor:
    x0 = schedule.predict_x0(x, k, eps)
    return x0 if clip is None else x0.clamp(-clip, clip)


def ddpm_step(x: Tensor, x0: Tensor, abar: Tensor, abar_next: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std of the DDPM posterior ``q(x_next | x, x0)`` (Ho et al. 2020, eq. 7), for any pair of
    levels (respaced: ``beta = 1 - abar / abar_next``); ``abar_next = 1`` gives ``(x0, 0)``."""
    beta = 1.0 - abar / abar_next
    mean = (abar_next.sqrt() * beta * x0 + (abar / abar_next).sqrt() * (1.0 - abar_next) * x) / (1.0 - abar)
    var = beta * (1.0 - abar_next) / (1.0 - abar)
    return mean, var.clamp(min=0.0).sqrt()


def ddim_step(x: Tensor, x0: Tensor, abar: Tensor, abar_next: Tensor, eta: float = 0.0) -> tuple[Tensor, Tensor]:
    """Mean and std of the DDIM step (Song et al. 2021, eq. 12): ``sqrt(abar') x0 + sqrt(1 - abar' - s^2) eps``
    with ``s = eta sqrt((1 - abar')/(1 - abar) (1 - abar/abar'))``; ``eta = 1`` is the DDPM posterior.

    ``eps`` is recomputed from the (clipped) ``x0``, as guided-diffusion does, so clipping and the
    DDPM identity both hold."""
    eps = (x - abar.sqrt() * x0) / (1.0 - abar).sqrt()
    std = eta * ((1.0 - abar_next) / (1.0 - abar) * (1.0 - abar / abar_next)).clamp(min=0.0).sqrt()
    mean = abar_next.sqrt() * x0 + (1.0 - abar_next - std**2).clamp(min=0.0).sqrt() * eps
    return mean, std


def gaussian_chain(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x: Tensor,
    steps: int,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    min_std: float = 0.0,
    return_chain: bool = False,
    posterior: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``steps`` Gaussian denoising steps from ``x`` (DDIM with ``eta``; the DDPM posterior
    formula when ``posterior``), each std floored at ``min_std`` (DPPO's exploration floor).

    Returns the final ``x``, and with ``return_chain`` also the chain ``[B, steps + 1, d]`` of
    every state from the initial noise to the final sample (what DPPO stores per env step).
    A fully deterministic chain (``eta = 0``, ``min_std = 0``) draws no random numbers.
    """
    grid = schedule.timesteps(steps)
    stochastic = posterior or eta > 0 or min_std > 0
    chain = [x]
    for i, k in enumerate(grid):
        k_next = grid[i + 1] if i + 1 < len(grid) else -1
        x0 = _clean(schedule, x, k, eps_fn(x, k), clip)
        a, a_next = schedule.abar(k), schedule.abar(k_next)
        mean, std = ddpm_step(x, x0, a, a_next) if posterior else ddim_step(x, x0, a, a_next, eta)
        x = mean + std.clamp(min=min_std) * _randn(x, generator) if stochastic else mean
        chain.append(x)
    return (x, torch.stack(chain, dim=1)) if return_chain else x


def ddpm_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x: Tensor,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    min_std: float = 0.0,
    return_chain: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Ancestral DDPM sampling (Ho et al. 2020, algorithm 2) on ``steps`` levels (default all ``K``)."""
    return gaussian_chain(
        eps_fn, schedule, x, steps or schedule.num_timesteps, 1.0, generator, clip, min_std, return_chain, posterior=True
    )


def ddim_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x: Tensor,
    steps: int | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    min_std: float = 0.0,
    return_chain: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """DDIM sampling (Song et al. 2021); ``eta = 0`` is deterministic given ``x``."""
    return gaussian_chain(eps_fn, schedule, x, steps or schedule.num_timesteps, eta, generator, clip, min_std, return_chain)


def dpm_solver_2m_sample(
    eps_fn: EpsFn, schedule: DiffusionSchedule, x: Tensor, steps: int | None = None, clip: float | None = 1.0
) -> Tensor:
    """DPM-Solver++(2M), the multistep second-order data-prediction ODE solver (Lu et al. 2022, algorithm 2).

    In ``lambda = log(alpha / sigma)``: ``x' = (sigma'/sigma) x - alpha' (e^-h - 1) D`` with
    ``D = (1 + 1/2r) x0 - (1/2r) x0_prev``, ``r = h_prev / h``. The first step is first order; so is
    the step to the smallest level (DPM-Solver's ``lower_order_final``: on a grid uniform in ``k`` that
    step spans a large ``h`` and ``r << 1`` would amplify the extrapolation); the last, to
    ``sigma = 0``, returns the data prediction (as k-diffusion's ``sample_dpmpp_2m``).
    """
    grid = schedule.timesteps(steps or schedule.num_timesteps)
    x0_prev, h_prev = None, None
    for i, k in enumerate(grid):
        x0 = _clean(schedule, x, k, eps_fn(x, k), clip)
        if i + 1 == len(grid):
            return x0
        a, a_next = schedule.abar(k), schedule.abar(grid[i + 1])
        lam, lam_next = 0.5 * (a / (1 - a)).log(), 0.5 * (a_next / (1 - a_next)).log()
        h = lam_next - lam
        first_order = x0_prev is None or i + 2 == len(grid)
        d = x0 if first_order else x0 + (x0 - x0_prev) / (2.0 * h_prev / h)
        x = ((1 - a_next) / (1 - a)).sqrt() * x - a_next.sqrt() * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x  # unreachable: the grid is never empty


def euler_sample(v_fn: VelocityFn, x: Tensor, steps: int) -> Tensor:
    """Integrate ``dx/dtau = v(x, tau)`` from ``tau = 0`` (noise) to 1 with ``steps`` Euler steps (FQL, FPO)."""
    dt = 1.0 / steps
    for i in range(steps):
        x = x + dt * v_fn(x, i * dt)
    return x


def midpoint_sample(v_fn: VelocityFn, x: Tensor, steps: int) -> Tensor:
    """The explicit midpoint rule: second order, two velocity evaluations per step."""
    dt = 1.0 / steps
    for i in range(steps):
        x_mid = x + 0.5 * dt * v_fn(x, i * dt)
        x = x + dt * v_fn(x_mid, (i + 0.5) * dt)
    return x


def consistency_sample(
    f_fn: DenoiseFn,
    z: Tensor,
    sigmas: Sequence[float],
    sigma_min: float = 0.002,
    generator: torch.Generator | None = None,
    reuse_noise: bool = False,
    clip: float | None = 1.0,
) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, algorithm 1): ``x = f(sigmas[0] z)``, then for each
    later ``s``: ``x = f(x + sqrt(s^2 - sigma_min^2) z', s)``. ``sigmas`` descend from ``sigma_max``.

    ``reuse_noise`` re-injects ``z`` itself instead of fresh noise, which makes the whole map a
    deterministic function of ``z`` (for latent steering).
    """

    def denoise(x: Tensor, s: float) -> Tensor:
        x0 = f_fn(x, s)
        return x0 if clip is None else x0.clamp(-clip, clip)

    x = denoise(float(sigmas[0]) * z, float(sigmas[0]))
    for s in sigmas[1:]:
        noise = z if reuse_noise else _randn(z, generator)
        x = denoise(x + math.sqrt(max(float(s) ** 2 - sigma_min**2, 0.0)) * noise, float(s))
    return x
