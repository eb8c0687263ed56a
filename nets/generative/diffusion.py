"""Diffusion policies: a conditional DDPM over actions with epsilon prediction (Diffusion-QL, EDP, DPPO)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from policyopt.nets.generative.base import GenerativePolicy, grad_mode
from policyopt.nets.generative.samplers import ddim_sample, ddim_step, ddpm_sample, ddpm_step, dpm_solver_2m_sample
from policyopt.nets.generative.schedules import DiffusionSchedule

SAMPLERS = ("ddpm", "ddim", "dpm")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class DiffusionPolicy(GenerativePolicy):
    """``pi(a|s)`` as a ``K``-step discrete diffusion, ``eps_theta(s, a_k, k)`` (Ho et al. 2020; Wang et al. 2023).

    Defaults are Diffusion-QL's: ``K = 5`` VP-linear steps, DDPM sampling, a 3x256 Mish MLP, the
    clean-action estimate clipped to ``[-1, 1]`` at every step. ``sampler`` picks the default
    sampler (``"ddpm"``, ``"ddim"`` with ``eta``, or ``"dpm"`` for DPM-Solver++(2M)); any of them
    can run a trained model at any ``sample_steps <= K`` (EDP trains at ``K = 1000`` and samples
    with 15 DPM-Solver steps). ``t`` in :meth:`corrupt` / :meth:`predict_x0` is the timestep
    index ``k in 0..K-1`` (an int or a ``[B]`` long tensor).

    DPPO hooks: ``sample(..., return_chain=True)`` also returns the denoising chain, and
    :meth:`chain_log_prob` scores a stored chain step by step. ``min_sampling_std`` floors
    every step's std while sampling with ``"ddpm"`` / ``"ddim"`` (DPPO's exploration floor,
    ``0`` = the plain sampler).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_timesteps: int = 5,
        schedule: str = "linear",
        sampler: str = "ddpm",
        sample_steps: int | None = None,
        eta: float = 0.0,
        clip_x0: bool = True,
        min_sampling_std: float = 0.0,
        backbone: str = "mlp",
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        time_dim: int = 16,
        time_embedding: str = "sinusoidal",
    ) -> None:
        super().__init__(obs_dim, act_dim, backbone, hidden, activation, time_dim, time_embedding)
        self.schedule = DiffusionSchedule(num_timesteps, schedule)
        self.sampler = _check_sampler(sampler)
        if not float(eta) >= 0 or not float(min_sampling_std) >= 0:
            raise ValueError(f"eta and min_sampling_std must be >= 0, got {eta}, {min_sampling_std}")
        self.eta, self.clip_x0, self.min_sampling_std = float(eta), bool(clip_x0), float(min_sampling_std)
        self.max_steps = self.default_steps = self.schedule.num_timesteps
        self.default_steps = self._steps(sample_steps)

    # ---- the network and the corruption -------------------------------------------------

    def eps(self, obs: Tensor, x: Tensor, k: int | Tensor) -> Tensor:
        """The predicted noise ``eps_theta(s, x_k, k)`` ``[B, act_dim]``; the backbone sees ``(k + 1) / K``."""
        return self.net(obs, x, self._time((k + 1) / self.schedule.num_timesteps, x))

    def corrupt(self, actions: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """``q(a_k | a)``: ``sqrt(abar_k) a + sqrt(1 - abar_k) noise``."""
        return self.schedule.q_sample(actions, t, noise)

    def predict_x0(self, noisy: Tensor, t: int | Tensor, obs: Tensor, clip: bool = False) -> Tensor:
        """EDP's action approximation ``(a_k - sqrt(1 - abar_k) eps_theta) / sqrt(abar_k)`` (Kang et al. 2023, eq. 8),
        one network call, differentiable; unclipped unless ``clip`` (a clamp would zero Q's gradient outside)."""
        x0 = self.schedule.predict_x0(noisy, t, self.eps(obs, noisy, t))
        return x0.clamp(-1.0, 1.0) if clip else x0

    def bc_loss(self, obs: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``E_{k, eps} ||eps - eps_theta(s, sqrt(abar_k) a + sqrt(1 - abar_k) eps, k)||^2`` (Ho et al. 2020, eq. 14)."""
        k = torch.randint(0, self.schedule.num_timesteps, (actions.shape[0],), generator=generator, device=actions.device)
        noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
        return (self.eps(obs, self.corrupt(actions, k, noise), k) - noise).square().mean()

    # ---- sampling -----------------------------------------------------------------------

    def sample(
        self,
        obs: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        grad: bool = False,
        *,
        sampler: str | None = None,
        eta: float | None = None,
        return_chain: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Actions ``[B, act_dim]`` in ``[-1, 1]`` from ``steps`` (default ``sample_steps``) denoising steps.

        ``sampler`` / ``eta`` override the constructor's. With ``return_chain`` (``"ddpm"`` / ``"ddim"``
        only) also returns the chain ``[B, steps + 1, act_dim]``: the initial noise, every
        intermediate state and the final, unclipped draw, which :meth:`chain_log_prob` scores.
        """
        obs, steps, sampler = self._check_obs(obs), self._steps(steps), self._sampler(sampler)
        return self._run(
            obs,
            self._initial_noise(obs, generator),
            steps,
            sampler,
            self.eta if eta is None else float(eta),
            self.min_sampling_std,
            generator,
            grad,
            return_chain,
        )

    def sample_from_noise(self, obs: Tensor, noise: Tensor, steps: int | None = None, grad: bool = False) -> Tensor:
        """The deterministic action for the initial ``noise``: DDIM with ``eta = 0``, or DPM-Solver++(2M) when
        that is the policy's sampler (both integrate the probability-flow ODE)."""
        obs = self._check_obs(obs)
        sampler = "dpm" if self.sampler == "dpm" else "ddim"
        return self._run(obs, self._check_noise(obs, noise), self._steps(steps), sampler, 0.0, 0.0, None, grad, False)

    def _run(
        self,
        obs: Tensor,
        x: Tensor,
        steps: int,
        sampler: str,
        eta: float,
        min_std: float,
        generator: torch.Generator | None,
        grad: bool,
        return_chain: bool,
    ) -> Tensor | tuple[Tensor, Tensor]:
        def eps_fn(x: Tensor, k: int) -> Tensor:
            return self.eps(obs, x, k)

        clip = 1.0 if self.clip_x0 else None
        with grad_mode(grad):
            if sampler == "dpm":
                if return_chain:
                    raise ValueError("return_chain needs a Gaussian sampler ('ddpm' or 'ddim'); DPM-Solver is an ODE solver")
                return dpm_solver_2m_sample(eps_fn, self.schedule, x, steps, clip).clamp(-1.0, 1.0)
            if sampler == "ddpm":
                out = ddpm_sample(eps_fn, self.schedule, x, steps, generator, clip, min_std, return_chain)
            else:
                out = ddim_sample(eps_fn, self.schedule, x, steps, eta, generator, clip, min_std, return_chain)
        if return_chain:
            return out[0].clamp(-1.0, 1.0), out[1]
        return out.clamp(-1.0, 1.0)

    # ---- the DPPO hook ------------------------------------------------------------------

    def chain_log_prob(
        self, obs: Tensor, chain: Tensor, sampler: str | None = None, eta: float | None = None, min_std: float = 0.1
    ) -> Tensor:
        """``log N(x_{i+1}; mu_theta(x_i, k_i, s), std_i^2)`` per denoising step, ``[B, steps]``, summed over
        action dims (DPPO's denoising-MDP likelihood, Ren et al. 2025, eq. 5).

        ``chain`` is ``[B, steps + 1, act_dim]`` as returned by ``sample(..., return_chain=True)``;
        its length fixes the timestep grid. Means and stds are those of the sampler that drew it
        (``"ddpm"``, or ``"ddim"`` with ``eta``; defaults: the constructor's), each std floored at
        ``min_std`` (DPPO's ``min_logprob_denoising_std = 0.1``: the last, noiseless step would
        otherwise have no density). All steps go through the network in one batched call, with
        gradient (the new policy's log-probs in a PPO ratio).
        """
        obs, sampler = self._check_obs(obs), self._sampler(sampler)
        if sampler == "dpm":
            raise ValueError("chain_log_prob needs a Gaussian sampler ('ddpm' or 'ddim'); DPM-Solver is deterministic")
        if chain.dim() != 3 or chain.shape[0] != obs.shape[0] or chain.shape[2] != self.act_dim or chain.shape[1] < 2:
            raise ValueError(
                f"chain must have shape [{obs.shape[0]}, steps + 1, {self.act_dim}] with steps >= 1, got {tuple(chain.shape)}"
            )
        if not min_std > 0:
            raise ValueError(f"min_std must be > 0 so every step has a density, got {min_std}")
        B, S = chain.shape[0], self._steps(chain.shape[1] - 1)
        grid = self.schedule.timesteps(S)
        k = torch.tensor(grid, device=chain.device)
        k_next = torch.tensor(grid[1:] + [-1], device=chain.device)
        k, k_next = k.repeat(B), k_next.repeat(B)  # [B * S], step-major within each sample
        x, x_next = chain[:, :-1].reshape(B * S, -1), chain[:, 1:].reshape(B * S, -1)
        obs_rep = obs.repeat_interleave(S, dim=0)
        x0 = self.schedule.predict_x0(x, k, self.eps(obs_rep, x, k))
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        a, a_next = self.schedule.abar(k)[:, None].to(x.dtype), self.schedule.abar(k_next)[:, None].to(x.dtype)
        if sampler == "ddpm":
            mean, std = ddpm_step(x, x0, a, a_next)
        else:
            mean, std = ddim_step(x, x0, a, a_next, self.eta if eta is None else float(eta))
        std = std.clamp(min=min_std).expand_as(x)
        z = (x_next - mean) / std
        return (-0.5 * z.square() - std.log() - _HALF_LOG_2PI).sum(-1).reshape(B, S)

    def _sampler(self, sampler: str | None) -> str:
        return self.sampler if sampler is None else _check_sampler(sampler)


def _check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
    return sampler
