"""Distribution heads: map features to the parameters of an action distribution."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from policyopt.nets.mlp import orthogonal_init


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


class StateDependentNoiseHead(nn.Module):
    """Mean and state-dependent std of generalized state-dependent exploration (gSDE).

    Exploration noise is ``eps(s) = z(s) @ theta`` with ``z`` the policy's last features and one
    matrix ``theta ~ N(0, sigma^2)`` [in_dim, act_dim] per env, held fixed for several steps, so
    the noise is a smooth function of the state (Raffin et al. 2022, "Smooth Exploration for
    Robotic RL", eq. 3). Its marginal is ``N(mean, z^2 @ sigma^2)`` per action dim (eq. 4), which
    gives the log-probabilities. As in the paper's default, ``z`` is detached in the std, so
    the noise scale is learned only through ``log_std`` (``learn_features=True`` lifts this).
    """

    def __init__(
        self,
        in_dim: int,
        act_dim: int,
        log_std_init: float = 0.0,
        out_gain: float = 0.01,
        learn_features: bool = False,
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
    ) -> None:
        super().__init__()
        self.in_dim, self.act_dim = int(in_dim), int(act_dim)
        self.learn_features = bool(learn_features)
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.mean = orthogonal_init(nn.Linear(in_dim, act_dim), out_gain)
        self.log_std = nn.Parameter(torch.full((in_dim, act_dim), float(log_std_init)))

    def sigma(self) -> Tensor:
        """Per-entry std ``[in_dim, act_dim]`` of the exploration matrices."""
        return self.log_std.clamp(*self.log_std_bounds).exp()

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the marginal action distribution, both ``[B, act_dim]``."""
        z = features if self.learn_features else features.detach()
        variance = (z * z) @ self.sigma().square()
        return self.mean(features), torch.sqrt(variance + 1e-6)  # +1e-6: std > 0 where z = 0 (SB3 does the same)

    def sample_matrices(self, n: int) -> Tensor:
        """``n`` exploration matrices ``theta ~ N(0, sigma^2)``, ``[n, in_dim, act_dim]``."""
        sigma = self.sigma().detach()
        return torch.randn((n, *sigma.shape), device=sigma.device, dtype=sigma.dtype) * sigma

    def noise(self, features: Tensor, matrices: Tensor) -> Tensor:
        """``eps = z @ theta`` row by row: ``[B, in_dim] x [B, in_dim, act_dim] -> [B, act_dim]``."""
        return torch.bmm(features.unsqueeze(1), matrices).squeeze(1)
