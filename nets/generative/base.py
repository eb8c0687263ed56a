"""The interface the three generative policy families share."""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from policyopt.nets.generative.backbones import make_backbone
from policyopt.nets.spec import RecordsInit


class GenerativePolicy(RecordsInit, nn.Module):
    """Base of :class:`DiffusionPolicy`, :class:`FlowPolicy` and :class:`ConsistencyPolicy`.

    A conditional generative model of actions in ``[-1, 1]^act_dim`` given ``obs``; the
    algorithm maps them to the env's bounds. Every family offers the same calls:

    - ``sample(obs, steps=None, generator=None, grad=False)`` -> actions ``[B, act_dim]``;
      differentiable through the whole chain when ``grad`` (Diffusion-QL, Consistency-AC);
    - ``bc_loss(obs, actions)`` -> scalar, the family's own training loss;
    - ``corrupt(actions, t, noise)`` and ``predict_x0(noisy, t, obs)``: the forward corruption at
      time ``t`` and the one-network-call clean-action estimate that inverts it (EDP);
    - ``sample_from_noise(obs, noise)``: a deterministic map from the initial noise
      ``[B, act_dim]`` to an action (DSRL-style latent steering);
    - ``act(obs, deterministic=False)``: the seam the offline algorithms call.

    What ``t`` means is the family's own: a timestep index, a flow time or a noise level.
    Subclasses set ``self.net`` (the backbone), ``default_steps`` and ``max_steps``.
    """

    default_steps: int
    max_steps: int | None  # None: any step count >= 1 (continuous time)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        backbone: str,
        hidden: Sequence[int],
        activation: str,
        time_dim: int,
        time_embedding: str,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.net = make_backbone(backbone, self.obs_dim, self.act_dim, hidden, activation, time_dim, time_embedding)

    # ---- the shared interface -------------------------------------------------------------

    def sample(
        self, obs: Tensor, steps: int | None = None, generator: torch.Generator | None = None, grad: bool = False
    ) -> Tensor:
        """Actions ``[B, act_dim]`` in ``[-1, 1]`` drawn from fresh noise with ``steps`` network calls."""
        raise NotImplementedError

    def sample_from_noise(self, obs: Tensor, noise: Tensor, steps: int | None = None, grad: bool = False) -> Tensor:
        """The deterministic action for the initial ``noise`` ``[B, act_dim]``."""
        raise NotImplementedError

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions ``[B, act_dim]``, without gradient.

        ``deterministic=False`` samples the policy's distribution (:meth:`sample`).
        ``deterministic=True`` is :meth:`sample_from_noise` at zero noise, the mode of the
        prior pushed through the deterministic sampler (FPO++'s zero-noise evaluation): a
        repeatable action, but not the mode of the action distribution; for a multimodal
        policy it can fall between modes. Diffusion-QL and EDP evaluate with samples, so offline
        evaluation of these policies usually wants ``deterministic=False``.
        """
        obs = self._check_obs(obs)
        if deterministic:
            return self.sample_from_noise(obs, obs.new_zeros(obs.shape[0], self.act_dim))
        return self.sample(obs)

    def forward(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        return self.act(obs, deterministic)

    # ---- helpers for subclasses -----------------------------------------------------------

    def _check_obs(self, obs: Tensor) -> Tensor:
        if obs.dim() != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape [B, {self.obs_dim}], got {tuple(obs.shape)}")
        return obs

    def _steps(self, steps: int | None) -> int:
        steps = self.default_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if self.max_steps is not None and steps > self.max_steps:
            raise ValueError(f"steps={steps} exceeds the {self.max_steps} steps of this {type(self).__name__}'s schedule")
        return steps

    def _initial_noise(self, obs: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn((obs.shape[0], self.act_dim), generator=generator, device=obs.device, dtype=obs.dtype)

    def _check_noise(self, obs: Tensor, noise: Tensor) -> Tensor:
        expected = (obs.shape[0], self.act_dim)
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise must have shape {expected} ([batch, act_dim]), got {tuple(noise.shape)}")
        return noise

    def _time(self, value: float | Tensor, like: Tensor) -> Tensor:
        """A backbone time input ``[B]`` from a Python scalar, a one-element or a per-sample ``[B]`` tensor."""
        if isinstance(value, Tensor):
            value = value.to(device=like.device, dtype=like.dtype).reshape(-1)
            return value.expand(like.shape[0]) if value.numel() == 1 else value
        return torch.full((like.shape[0],), float(value), device=like.device, dtype=like.dtype)


def grad_mode(grad: bool) -> contextlib.AbstractContextManager:
    """``no_grad`` unless ``grad``; with ``grad`` the caller's own grad mode is left as it is."""
    return contextlib.nullcontext() if grad else torch.no_grad()
