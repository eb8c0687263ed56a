"""SPO: Simple Policy Optimization (Xie et al., ICML 2025, arXiv:2401.16025 v8+).

PPO's loop with the ratio penalty in place of the clip. This is the ICML objective; arXiv
v1-v6 used a different, clipped-KL form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policyopt.algos.onpolicy.ppo import PPO, PPOConfig, broadcast_advantages


@dataclass
class SPOConfig(PPOConfig):
    """SPO settings: PPO's, with ``clip_coef`` read as SPO's epsilon (the official repo uses 0.2).

    ``SPOConfig.preset("mujoco")`` is the official repository's MuJoCo recipe, with the paper's
    7-layer actor (256, 256, 128, 128, 64, 64); ``preset("mujoco-ppo")`` keeps CleanRL's PPO settings.
    """


def spo_loss(log_ratio: torch.Tensor, advantages: torch.Tensor, eps: float) -> torch.Tensor:
    """L = -E[r A - |A| / (2 eps) * (r - 1)^2]  (Xie et al. 2025, the SPO objective, ICML version), over ``[B, *extra]`` ratios.

    Its gradient in r is A - |A| (r - 1) / eps: equal to A at r = 1, zero at the clip edge
    r = 1 + sign(A) eps, and pointing back inside beyond it.
    """
    advantages = broadcast_advantages(advantages, log_ratio)
    ratio = log_ratio.exp()
    return -(ratio * advantages - advantages.abs() / (2 * eps) * (ratio - 1) ** 2).mean()


class SPO(PPO):
    """Simple Policy Optimization: PPO with a quadratic penalty on the probability ratio."""

    config_class = SPOConfig
    config: SPOConfig

    def policy_loss(self, log_ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
        return spo_loss(log_ratio, advantages, self.config.clip_coef)
