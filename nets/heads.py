"""Distribution heads: map features to the parameters of an action distribution."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from nets.mlp import orthogonal_init


class DiagGaussianHead(nn.Module):
    """Mean and log standard deviation of a diagonal Gaussian.

    The mean is a linear layer with a small orthogonal gain, so the initial policy is close
    to zero-mean regardless of the features (Andrychowicz et al. 2021, "What matters in
    on-policy RL", decision C57). The log std is either a free parameter vector (the
    PPO/TRPO default) or, with ``state_dependent_std=True``, a linear function of the
    features whose bias starts at ``log_std_init``. It is clamped to ``log_std_bounds``
    (as in SAC implementations) so ``exp`` can neither underflow to 0 nor explode.
    """

    def __init__(
        self,
        in_dim: int,
        act_dim: int,
        state_dependent_std: bool = False,
        log_std_init: float = 0.0,
        out_gain: float = 0.01,
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
    ) -> None:
        super().__init__()
        lo, hi = float(log_std_bounds[0]), float(log_std_bounds[1])
        if not lo < hi:
            raise ValueError(f"log_std_bounds must be (low, high) with low < high, got {log_std_bounds}")
        if not lo <= log_std_init <= hi:
            raise ValueError(f"log_std_init={log_std_init} lies outside log_std_bounds={log_std_bounds}")
        self.act_dim = int(act_dim)
        self.state_dependent_std = bool(state_dependent_std)
        self.log_std_bounds = (lo, hi)
        self.mean = orthogonal_init(nn.Linear(in_dim, act_dim), out_gain)
        if self.state_dependent_std:
            self.log_std = orthogonal_init(nn.Linear(in_dim, act_dim), out_gain)
            nn.init.constant_(self.log_std.bias, log_std_init)  # start at the requested std everywhere
        else:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)``, both of shape ``[..., act_dim]``."""
        mean = self.mean(features)
        log_std = self.log_std(features) if self.state_dependent_std else self.log_std.expand_as(mean)
        return mean, log_std.clamp(*self.log_std_bounds)


class CategoricalHead(nn.Module):
    """Logits of a categorical distribution over ``n`` actions (small-gain linear layer)."""

    def __init__(self, in_dim: int, n: int, out_gain: float = 0.01) -> None:
        super().__init__()
        self.n = int(n)
        self.logits = orthogonal_init(nn.Linear(in_dim, n), out_gain)

    def forward(self, features: Tensor) -> Tensor:
        """Unnormalised logits ``[..., n]``."""
        return self.logits(features)
