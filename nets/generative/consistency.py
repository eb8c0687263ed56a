"""Consistency policies: a one- or few-step generator trained by consistency training (Ding & Jin 2024)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from policyopt.nets.generative.base import GenerativePolicy, grad_mode
from policyopt.nets.generative.samplers import consistency_sample
from policyopt.nets.generative.schedules import consistency_scalings, karras_sigmas

LOSSES = ("l2", "pseudo_huber")


class ConsistencyPolicy(GenerativePolicy):
    """``a = f_theta(s, x_sigma, sigma)`` with ``f(x, sigma_min) = x`` built in: ``c_skip x + c_out F_theta``
    (Song et al. 2023; Ding & Jin 2024's Consistency-BC/AC policy).

    Defaults are Ding & Jin's: ``sigma in [0.002, 80]``, ``sigma_data = 0.5``, Karras ``rho = 7``,
    up to ``num_scales = 150`` boundaries (the top of the curriculum), 2-step sampling. Unlike
    their code the network sees EDM's ``c_in x`` and ``ln(sigma) / 4`` (Song et al.'s choice): at
    ``sigma = 80`` raw inputs would be ~100x the action scale. ``t`` in :meth:`corrupt` /
    :meth:`predict_x0` is the noise level ``sigma``.

    ``sample(steps=n)`` uses ``n`` levels from ``sigma_max`` down to ``resample_sigma``, Karras
    spaced (for 2 steps: 80 then 2, Ding & Jin's grid); ``steps <= num_scales``.

    The EMA target: :meth:`bc_loss` takes ``target=`` a copy of this policy that the algorithm
    keeps as an EMA of it (original consistency training; Ding & Jin), or ``None`` for the
    stop-gradient of the policy itself (improved CT, Song & Dhariwal 2023). The policy holds no
    second copy of its weights, so checkpoints and optimisers see one network.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        num_scales: int = 150,
        sample_steps: int = 2,
        resample_sigma: float = 2.0,
        loss: str = "l2",
        backbone: str = "mlp",
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        time_dim: int = 16,
        time_embedding: str = "sinusoidal",
    ) -> None:
        super().__init__(obs_dim, act_dim, backbone, hidden, activation, time_dim, time_embedding)
        if not 0 < float(sigma_min) < float(resample_sigma) <= float(sigma_max):
            raise ValueError(f"need 0 < sigma_min < resample_sigma <= sigma_max, got {sigma_min}, {resample_sigma}, {sigma_max}")
        if int(num_scales) < 2:
            raise ValueError(f"num_scales must be >= 2, got {num_scales}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; use one of {LOSSES}")
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)
        self.rho, self.num_scales, self.resample_sigma, self.loss = float(rho), int(num_scales), float(resample_sigma), loss
        self.max_steps = self.default_steps = self.num_scales
        self.default_steps = self._steps(sample_steps)

    def denoise(self, obs: Tensor, x: Tensor, sigma: float | Tensor) -> Tensor:
        """The consistency function ``f_theta(s, x, sigma)`` ``[B, act_dim]``; ``sigma`` a float or ``[B]``."""
        s = self._time(sigma, x)
        c_skip, c_out, c_in, c_noise = consistency_scalings(s, self.sigma_data, self.sigma_min)
        return c_skip[:, None] * x + c_out[:, None] * self.net(obs, c_in[:, None] * x, c_noise)

    def corrupt(self, actions: Tensor, t: float | Tensor, noise: Tensor) -> Tensor:
        """``actions + sigma noise`` (the EDM / variance-exploding corruption)."""
        sigma = t if isinstance(t, Tensor) else torch.tensor(float(t))
        return actions + sigma.to(actions).reshape(sigma.shape + (1,) * (actions.dim() - sigma.dim())) * noise

    def predict_x0(self, noisy: Tensor, t: float | Tensor, obs: Tensor, clip: bool = False) -> Tensor:
        """The clean-action estimate: the consistency function itself, one network call."""
        x0 = self.denoise(obs, noisy, t)
        return x0.clamp(-1.0, 1.0) if clip else x0

    def boundaries(self, num_scales: int | None = None) -> Tensor:
        """The ``N`` Karras boundaries ``sigma_0 < ... < sigma_{N-1}`` of consistency training."""
        return karras_sigmas(num_scales or self.num_scales, self.sigma_min, self.sigma_max, self.rho)

    def bc_loss(
        self,
        obs: Tensor,
        actions: Tensor,
        target: nn.Module | None = None,
        num_scales: int | None = None,
        generator: torch.Generator | None = None,
        scale_by_gap: bool = False,
    ) -> Tensor:
        """Consistency training: ``d(f_theta(a + sigma_{n+1} z, sigma_{n+1}), f_target(a + sigma_n z, sigma_n))`` with
        ``n ~ U{0..N-2}`` and one ``z`` for both (Song et al. 2023, algorithm 3; Ding & Jin 2024, eq. 6).

        ``target``: a :class:`ConsistencyPolicy` of the same shape (the algorithm's EMA copy,
        which the algorithm updates after each step), or ``None`` for this policy without
        gradient (improved CT). ``num_scales``: the curriculum's current ``N`` (see
        :func:`nets.generative.consistency_num_scales`), at most the constructor's. ``d`` is the
        squared error averaged over action dims, or iCT's pseudo-Huber with ``c = 0.00054 sqrt(d)``.
        ``scale_by_gap`` weights each sample by ``100 / (sigma_{n+1} - sigma_n)``, Ding & Jin's code's
        form of the paper's loss scaling lambda(sigma_n, sigma_{n+1}).
        """
        N = self.num_scales if num_scales is None else int(num_scales)
        if not 2 <= N <= self.num_scales:
            raise ValueError(f"num_scales must be in [2, {self.num_scales}], got {num_scales}")
        sig = self.boundaries(N).to(device=actions.device, dtype=actions.dtype)
        B = actions.shape[0]
        n = torch.randint(0, N - 1, (B,), generator=generator, device=actions.device)
        z = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
        s_lo, s_hi = sig[n], sig[n + 1]
        pred = self.denoise(obs, actions + s_hi[:, None] * z, s_hi)
        with torch.no_grad():
            tgt = (self if target is None else target).denoise(obs, actions + s_lo[:, None] * z, s_lo)
        diff = pred - tgt
        if self.loss == "l2":
            per_sample = diff.square().mean(-1)
        else:
            c = 0.00054 * math.sqrt(self.act_dim)
            per_sample = (diff.square().sum(-1) + c * c).sqrt() - c
        if scale_by_gap:
            per_sample = per_sample * (100.0 / (s_hi - s_lo))
        return per_sample.mean()

    def sample_sigmas(self, steps: int) -> list[float]:
        """The descending noise levels of ``steps``-step sampling."""
        if steps == 1:
            return [self.sigma_max]
        return karras_sigmas(steps, self.resample_sigma, self.sigma_max, self.rho).flip(0).tolist()

    def sample(
        self, obs: Tensor, steps: int | None = None, generator: torch.Generator | None = None, grad: bool = False
    ) -> Tensor:
        """Actions ``[B, act_dim]`` in ``[-1, 1]`` by ``steps``-step consistency sampling (``steps`` network calls)."""
        obs = self._check_obs(obs)
        return self._run(obs, self._initial_noise(obs, generator), self._steps(steps), generator, grad, False)

    def sample_from_noise(self, obs: Tensor, noise: Tensor, steps: int | None = None, grad: bool = False) -> Tensor:
        """The deterministic action for ``noise`` with ``steps`` (default ``sample_steps``, what the
        actor-critic trains through): ``f(sigma_max noise, sigma_max)``, then, past one step, the same
        ``noise`` re-injected at every level, so the map stays deterministic."""
        obs = self._check_obs(obs)
        return self._run(obs, self._check_noise(obs, noise), self._steps(steps), None, grad, True)

    def _run(self, obs: Tensor, z: Tensor, steps: int, generator: torch.Generator | None, grad: bool, reuse: bool) -> Tensor:
        with grad_mode(grad):
            return consistency_sample(
                lambda x, s: self.denoise(obs, x, s),
                z,
                self.sample_sigmas(steps),
                self.sigma_min,
                generator,
                reuse_noise=reuse,
                clip=1.0,
            )
