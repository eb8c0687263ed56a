"""Time embeddings: the noise level / flow time as a vector a backbone can condition on."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal features of a scalar time ``t`` (Vaswani et al. 2017; Ho et al. 2020).

    ``[sin(s*t*w_i), cos(s*t*w_i)]`` with ``w_i = 10000^(-i/(dim/2 - 1))``. The policies feed
    times of order 1 (``(k+1)/K``, flow time, ``ln(sigma)/4``), so ``scale`` stretches them to
    the integer-timestep range the frequencies were designed for.
    """

    def __init__(self, dim: int = 16, scale: float = 1000.0) -> None:
        super().__init__()
        if int(dim) < 2 or int(dim) % 2:
            raise ValueError(f"a sinusoidal embedding needs an even dim >= 2, got {dim}")
        half = int(dim) // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs * float(scale), persistent=False)  # a function of (dim, scale)
        self.dim = int(dim)

    def forward(self, t: Tensor) -> Tensor:
        """``t`` ``[B]`` -> ``[B, dim]``."""
        arg = t.to(self.freqs.dtype)[:, None] * self.freqs
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[sin(2 pi t W), cos(2 pi t W)]``, ``W ~ N(0, scale^2)`` fixed
    (Tancik et al. 2020; the Gaussian Fourier projection of Song et al. 2021, scale 16).

    ``W`` is a persistent buffer: it is drawn at construction and restored from a state dict,
    so a rebuilt module reproduces the original features.
    """

    def __init__(self, dim: int = 16, scale: float = 16.0) -> None:
        super().__init__()
        if int(dim) < 2 or int(dim) % 2:
            raise ValueError(f"a Fourier embedding needs an even dim >= 2, got {dim}")
        self.register_buffer("W", torch.randn(int(dim) // 2) * float(scale))
        self.dim = int(dim)

    def forward(self, t: Tensor) -> Tensor:
        """``t`` ``[B]`` -> ``[B, dim]``."""
        arg = 2.0 * math.pi * t.to(self.W.dtype)[:, None] * self.W
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


TIME_EMBEDDINGS: dict[str, type[nn.Module]] = {"sinusoidal": SinusoidalEmbedding, "fourier": FourierEmbedding}


def time_embedding(kind: str, dim: int) -> nn.Module:
    """The embedding named ``kind`` (a key of ``TIME_EMBEDDINGS``) with its default scale."""
    try:
        return TIME_EMBEDDINGS[kind](dim)
    except KeyError:
        raise ValueError(f"unknown time embedding {kind!r}; use one of {sorted(TIME_EMBEDDINGS)}") from None
