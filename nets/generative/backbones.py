"""Conditional denoiser backbones: ``(obs, noisy action, time) -> output``.

Both use PyTorch's default ``nn.Linear`` initialisation, as Diffusion-QL's and IDQL's
denoisers do (the orthogonal init of :mod:`nets.mlp` is an on-policy detail).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from policyopt.nets.generative.embeddings import time_embedding
from policyopt.nets.mlp import activation_class, default_init, mlp
from policyopt.nets.spec import RecordsInit


def _time_mlp(kind: str, dim: int, activation: str) -> nn.Sequential:
    # embedding -> Linear(d, 2d) -> act -> Linear(2d, d): Diffusion-QL's time MLP
    return nn.Sequential(time_embedding(kind, dim), default_init(mlp(dim, dim, (2 * dim,), activation)))


def _check(obs_dim: int, act_dim: int, out_dim: int | None, hidden: Sequence[int], time_dim: int) -> tuple[int, tuple[int, ...]]:
    if int(obs_dim) < 0 or int(act_dim) < 1:
        raise ValueError(f"obs_dim must be >= 0 and act_dim >= 1, got {obs_dim}, {act_dim}")
    hidden = tuple(int(h) for h in hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty list of widths >= 1, got {hidden}")
    if int(time_dim) < 2 or int(time_dim) % 2:
        raise ValueError(f"time_dim must be even and >= 2, got {time_dim}")
    return int(act_dim if out_dim is None else out_dim), hidden


class ConditionalMLP(RecordsInit, nn.Module):
    """Diffusion-QL's denoiser: ``MLP([obs, x, time_mlp(t)])`` with Mish (Wang et al. 2023).

    ``forward(obs [B, obs_dim], x [B, act_dim], t [B]) -> [B, out_dim]`` (``out_dim`` defaults
    to ``act_dim``: a noise, velocity or clean-action prediction).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        out_dim: int | None = None,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        time_dim: int = 16,
        time_embedding: str = "sinusoidal",
    ) -> None:
        super().__init__()
        out, hidden = _check(obs_dim, act_dim, out_dim, hidden, time_dim)
        self.time_mlp = _time_mlp(time_embedding, int(time_dim), activation)
        self.net = default_init(mlp(int(obs_dim) + int(act_dim) + int(time_dim), out, hidden, activation))

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([obs, x, self.time_mlp(t)], dim=-1))


class ResidualBlock(nn.Module):
    """``h + W2 act(W1 LN(h))``, IDQL's LN-ResNet block (Hansen-Estruch et al. 2023), widening 4x inside."""

    def __init__(self, width: int, activation: str = "mish", layer_norm: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.ff = default_init(mlp(width, width, (4 * width,), activation))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.ff(self.norm(h))


class ConditionalResidualMLP(RecordsInit, nn.Module):
    """A residual MLP denoiser: input projection, ``num_blocks`` :class:`ResidualBlock` s of
    ``width``, then ``act -> Linear`` (IDQL's LN-ResNet; DPPO's residual MLP is the same idea).

    Same call as :class:`ConditionalMLP`. ``hidden`` is ``[width] * num_blocks``, so the two
    backbones take the same arguments; all widths must be equal.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        out_dim: int | None = None,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        time_dim: int = 16,
        time_embedding: str = "sinusoidal",
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        out, hidden = _check(obs_dim, act_dim, out_dim, hidden, time_dim)
        if len(set(hidden)) != 1:
            raise ValueError(f"a residual MLP needs equal widths, got hidden={hidden}")
        width = hidden[0]
        self.time_mlp = _time_mlp(time_embedding, int(time_dim), activation)
        self.inp = nn.Linear(int(obs_dim) + int(act_dim) + int(time_dim), width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, activation, layer_norm) for _ in hidden))
        self.out = nn.Sequential(activation_class(activation)(), nn.Linear(width, out))

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return self.out(self.blocks(self.inp(torch.cat([obs, x, self.time_mlp(t)], dim=-1))))


BACKBONES: dict[str, type[nn.Module]] = {"mlp": ConditionalMLP, "resmlp": ConditionalResidualMLP}


def make_backbone(
    kind: str, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str, time_dim: int, time_embedding: str
) -> nn.Module:
    """The backbone named ``kind`` (a key of ``BACKBONES``)."""
    try:
        cls = BACKBONES[kind]
    except KeyError:
        raise ValueError(f"unknown backbone {kind!r}; use one of {sorted(BACKBONES)}") from None
    return cls(obs_dim, act_dim, hidden=hidden, activation=activation, time_dim=time_dim, time_embedding=time_embedding)
