"""Actors: SAC's tanh-squashed Gaussian, TD3's deterministic actor and IQL's Gaussian.

Actions live in ``[-1, 1]``; the algorithm maps them to the env's bounds, so an actor knows
nothing about the env. Both use PyTorch's default ``nn.Linear`` initialisation, as CleanRL's
``sac_continuous_action.py`` / ``td3_continuous_action.py`` and SB3 do: the orthogonal
init of :mod:`nets.mlp` is an on-policy detail. Both record their constructor arguments
(:meth:`init_kwargs`) so a checkpoint can rebuild them from a class path and plain kwargs.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from policyopt.nets.mlp import activation_class, body_out_dim
from policyopt.nets.spec import RecordsInit

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _default_init_body(in_dim: int, hidden: tuple[int, ...], activation: str) -> nn.Sequential:
    """``[Linear -> act] * len(hidden)`` with PyTorch's default Linear init (unlike :func:`nets.mlp.mlp_body`)."""
    act = activation_class(activation)
    layers: list[nn.Module] = []
    prev = int(in_dim)
    for width in hidden:
        layers += [nn.Linear(prev, width), act()]
        prev = width
    return nn.Sequential(*layers)


def _check_args(obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str) -> tuple[int, ...]:
    if int(obs_dim) < 1 or int(act_dim) < 1:
        raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim}, {act_dim}")
    if not isinstance(activation, str):
        # a class could not be written into a checkpoint's plain kwargs
        raise ValueError(f"activation must be a name (str), got {activation!r}")
    activation_class(activation)  # raises on an unknown name
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden widths must be >= 1, got {hidden}")
    return hidden


def _gaussian_trunk(
    actor: nn.Module, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str, log_std_min: float, log_std_max: float
) -> None:
    """The arguments, log-std bounds and MLP trunk both Gaussian actors have."""
    hidden = _check_args(obs_dim, act_dim, hidden, activation)
    if not float(log_std_min) < float(log_std_max):
        raise ValueError(f"log_std_min must be < log_std_max, got {log_std_min}, {log_std_max}")
    actor.obs_dim, actor.act_dim, actor.hidden, actor.activation = int(obs_dim), int(act_dim), hidden, activation
    actor.log_std_min, actor.log_std_max = float(log_std_min), float(log_std_max)
    actor.trunk = _default_init_body(actor.obs_dim, hidden, activation)


def _gaussian_kwargs(actor: nn.Module) -> dict[str, Any]:
    return {
        "obs_dim": actor.obs_dim,
        "act_dim": actor.act_dim,
        "hidden": list(actor.hidden),
        "activation": actor.activation,
        "log_std_min": actor.log_std_min,
        "log_std_max": actor.log_std_max,
    }


class SquashedGaussianActor(RecordsInit, nn.Module):
    """SAC's actor: ``a = tanh(u)``, ``u ~ N(mean(s), std(s))`` (Haarnoja et al. 2018, appendix C).

    An MLP trunk with separate linear mean and log-std heads; the log std is squashed into
    ``[log_std_min, log_std_max]`` by ``log_std_min + 0.5 * (max - min) * (tanh(raw) + 1)``,
    as in CleanRL's ``sac_continuous_action.py``. :meth:`sample` is reparameterised and
    returns the log-density of the squashed action.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        _gaussian_trunk(self, obs_dim, act_dim, hidden, activation, log_std_min, log_std_max)
        feat = body_out_dim(self.obs_dim, self.hidden)
        self.mean_head = nn.Linear(feat, self.act_dim)
        self.log_std_head = nn.Linear(feat, self.act_dim)

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor kwargs that rebuild this module (plain JSON-able types)."""
        return _gaussian_kwargs(self)

    def mean_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-squash mean and log std, each ``[B, act_dim]``."""
        h = self.trunk(obs)
        raw = torch.tanh(self.log_std_head(h))
        # a smooth squash rather than a clamp keeps a gradient at the bounds (CleanRL)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (raw + 1.0)
        return self.mean_head(h), log_std

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterised actions ``[B, act_dim]`` in ``(-1, 1)`` and their log-density ``[B]``.

        ``log pi(a|s) = log N(u; mean, std) - sum log(1 - tanh(u)^2 + 1e-6)``: the tanh
        change of variables (Haarnoja et al. 2018, eq. 21), with CleanRL's epsilon.
        """
        mean, log_std = self.mean_log_std(obs)
        # Written out instead of torch.distributions.Normal: no argument validation, so no
        # data-dependent branch breaks a fullgraph compile.
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        action = torch.tanh(u)
        log_prob = -0.5 * eps.square() - log_std - _HALF_LOG_2PI - torch.log(1.0 - action.square() + 1e-6)
        return action, log_prob.sum(dim=-1)

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions ``[B, act_dim]``: ``tanh(mean)`` when ``deterministic``, else a sample.

        Differentiable; callers collecting data wrap it in ``torch.no_grad()``.
        """
        if deterministic:  # a Python bool, fixed per compiled graph, not data-dependent
            mean, _ = self.mean_log_std(obs)
            return torch.tanh(mean)
        return self.sample(obs)[0]

    def forward(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        return self.act(obs, deterministic)


class DeterministicActor(RecordsInit, nn.Module):
    """TD3's (and DDPG's) actor: ``a = tanh(MLP(s))`` in ``[-1, 1]`` (Fujimoto et al. 2018).

    Exploration noise and target smoothing are the algorithm's job; ``deterministic`` in
    :meth:`act` exists only so every policy has the same interface.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = _check_args(obs_dim, act_dim, hidden, activation)
        self.obs_dim, self.act_dim, self.hidden, self.activation = int(obs_dim), int(act_dim), hidden, activation
        self.trunk = _default_init_body(self.obs_dim, hidden, activation)
        self.head = nn.Linear(body_out_dim(self.obs_dim, hidden), self.act_dim)

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor kwargs that rebuild this module (plain JSON-able types)."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(self.hidden), "activation": self.activation}

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.head(self.trunk(obs)))

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions ``[B, act_dim]``, the same whatever ``deterministic`` is. Differentiable."""
        return self.forward(obs)


class GaussianActor(RecordsInit, nn.Module):
    """IQL's (and AWAC's) actor: ``N(tanh(MLP(s)), exp(log_std))`` with one learned log std per
    action dimension (CORL's ``GaussianPolicy``). Its mean lies in ``[-1, 1]``; samples are
    clipped there by :meth:`act`. :meth:`log_prob` scores dataset actions (advantage-weighted
    regression, Peng et al. 2019)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        _gaussian_trunk(self, obs_dim, act_dim, hidden, activation, log_std_min, log_std_max)
        self.head = nn.Linear(body_out_dim(self.obs_dim, self.hidden), self.act_dim)
        self.log_std = nn.Parameter(torch.zeros(self.act_dim))

    def init_kwargs(self) -> dict[str, Any]:
        """The constructor kwargs that rebuild this module (plain JSON-able types)."""
        return _gaussian_kwargs(self)

    def forward(self, obs: Tensor) -> Tensor:
        """The mean action ``tanh(MLP(s))``, ``[B, act_dim]``."""
        return torch.tanh(self.head(self.trunk(obs)))

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``log N(actions; mean(s), std)`` summed over action dimensions, ``[B]``."""
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        z = (actions - self.forward(obs)) / log_std.exp()
        return (-0.5 * z.square() - log_std - _HALF_LOG_2PI).sum(-1)

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """The mean when ``deterministic``, else a sample clipped to ``[-1, 1]``."""
        mean = self.forward(obs)
        if deterministic:
            return mean
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()
        return (mean + std * torch.randn_like(mean)).clamp(-1.0, 1.0)
