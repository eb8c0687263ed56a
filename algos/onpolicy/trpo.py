"""TRPO: Trust Region Policy Optimization (Schulman et al. 2015, arXiv:1502.05477).

A natural-gradient step found by conjugate gradient on Fisher-vector products, scaled to
the KL radius and accepted by a backtracking line search only if KL <= max_kl and the
surrogate improves; otherwise the old parameters stay. The critic is trained by Adam.
Defaults follow sb3-contrib's TRPO, including its KL convention: the Gaussian KL is averaged
over the action dimensions (``kl_reduction="mean"``), so ``max_kl`` bounds the KL per action
dimension. baselines and Spinning Up bound the KL of the joint distribution instead
(``kl_reduction="sum"``), a trust region ``action_dim`` times tighter at the same ``max_kl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from policyopt.algos.onpolicy.base import OnPolicyAlgorithm, OnPolicyConfig
from policyopt.algos.onpolicy.ppo import explained_variance, value_loss
from policyopt.buffers import RolloutBuffer


@dataclass
class TRPOConfig(OnPolicyConfig):
    """TRPO settings; defaults as sb3-contrib (CG 15 iterations, damping 0.1, max_kl 0.01, KL
    averaged over action dimensions). ``TRPOConfig.preset("mujoco")`` is rl-zoo's MuJoCo recipe."""

    max_kl: float = 0.01
    """trust-region radius: the largest mean KL(old || new) a step may reach (sb3-contrib's target_kl)"""
    anneal_max_kl: bool = False
    """shrink max_kl linearly to 0 over training, as PPO anneals its learning rate (not in sb3-contrib)"""
    kl_reduction: str = "mean"
    """Gaussian KL over action dimensions: 'mean' (sb3-contrib) or 'sum' (baselines, Spinning Up: the joint KL)"""
    cg_iters: int = 15
    """conjugate-gradient iterations for the natural-gradient direction (sb3-contrib's cg_max_steps)"""
    cg_damping: float = 0.1
    """damping added to the Fisher-vector product, F + damping * I"""
    line_search_steps: int = 10
    """backtracking steps before the update is rejected and the old parameters kept"""
    line_search_shrink: float = 0.8
    """step-size factor per backtracking step"""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the value function"""
    critic_epochs: int = 10
    """passes of the critic over the batch per update (sb3-contrib's n_critic_updates)"""
    critic_batch_size: int = 128
    """critic minibatch size"""
    norm_adv: bool = True
    """normalize advantages over the whole batch before the policy step"""
    fvp_subsample: int = 1
    """compute Fisher-vector products on every k-th sample (baselines uses 5)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_kl <= 0 or self.cg_iters < 1 or self.fvp_subsample < 1:
            raise ValueError("max_kl must be > 0, cg_iters and fvp_subsample >= 1")
        if self.kl_reduction not in ("mean", "sum"):
            raise ValueError(f"kl_reduction must be 'mean' or 'sum', got {self.kl_reduction!r}")


def conjugate_gradient(
    fvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """Solve F x = b for symmetric positive-definite F given only x -> F x (Nocedal & Wright, alg. 5.2).

    Runs a fixed number of iterations without host syncs; a converged residual makes later steps no-ops.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        Fp = fvp(p)
        alpha = rr / (p @ Fp).clamp_min(1e-30)
        alpha = torch.where(rr > tol, alpha, torch.zeros_like(alpha))
        x = x + alpha * p
        r = r - alpha * Fp
        rr_new = r @ r
        p = r + (rr_new / rr.clamp_min(1e-30)) * p
        rr = rr_new
    return x


def detached(dist: Distribution) -> Distribution:
    """The same distribution with its parameters cut from the graph (the old policy in KL(old || new))."""
    if isinstance(dist, Independent):
        return Independent(detached(dist.base_dist), dist.reinterpreted_batch_ndims)
    if isinstance(dist, Normal):
        return Normal(dist.loc.detach(), dist.scale.detach())
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits.detach())
    raise TypeError(f"TRPO cannot detach a {type(dist).__name__}; supported: Normal, Independent, Categorical")


def mean_kl(old: Distribution, new: Distribution, reduction: str = "mean") -> torch.Tensor:
    """E_s[KL(old || new)], per action dimension ('mean', sb3-contrib) or of the joint ('sum', Schulman et al. 2015).

    For a factorised Gaussian the joint KL is the sum of the per-dimension ones, so 'mean' is
    'sum' divided by the action dimension; a categorical has one dimension and both agree.
    """
    if reduction == "mean" and isinstance(old, Independent):
        return kl_divergence(old.base_dist, new.base_dist).mean()
    return kl_divergence(old, new).mean()


class TRPO(OnPolicyAlgorithm):
    """Trust Region Policy Optimization for policies with an explicit ``distribution(obs)``."""

    config_class = TRPOConfig
    config: TRPOConfig

    def _setup(self) -> None:
        if not hasattr(self.policy, "distribution"):
            raise TypeError(
                f"TRPO needs a policy with distribution(obs) for KL and Fisher-vector products; {type(self.policy).__name__} has none"
            )
        self.optimizers["critic"] = self.adam(self.critic.parameters(), self.config.critic_learning_rate)
        # the critic's loss compiles; the policy step is one CG solve per update and stays eager
        self._critic_loss = self.compiled(self.critic_loss)

    def critic_loss(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        """The value loss of one minibatch (compiled, forward and backward, with ``config.compile``)."""
        return value_loss(self.critic(mb["obs"]), mb["values"], mb["returns"], None)

    def update(self, buffer: RolloutBuffer, progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        data = buffer.flat()
        obs, actions, stored = data["obs"], data["actions"], buffer.stored_of(data)
        adv = data["advantages"]
        if cfg.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        old_dist = detached(self.policy.distribution(obs))
        fvp_obs = obs[:: cfg.fvp_subsample]
        fvp_old = detached(self.policy.distribution(fvp_obs))

        def surrogate() -> torch.Tensor:
            # L(theta) = E[pi_theta(a|s) / pi_old(a|s) * A]  (Schulman et al. 2015, eq. 14)
            return (self.policy.log_ratio(obs, actions, stored).exp() * adv).mean()

        def kl() -> torch.Tensor:
            return mean_kl(old_dist, self.policy.distribution(obs), cfg.kl_reduction)

        def fvp(v: torch.Tensor) -> torch.Tensor:
            # F v = d/dtheta (grad KL . v), + damping v  (Schulman et al. 2015, appendix C)
            kl_fvp = mean_kl(fvp_old, self.policy.distribution(fvp_obs), cfg.kl_reduction)
            grads = torch.autograd.grad(kl_fvp, params, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            hv = torch.autograd.grad(flat @ v, params)
            return torch.cat([h.reshape(-1) for h in hv]) + cfg.cg_damping * v

        surr_old = surrogate()
        grads = torch.autograd.grad(surr_old, params)
        g = torch.cat([x.reshape(-1) for x in grads])
        step_dir = conjugate_gradient(fvp, g, cfg.cg_iters)
        shs = (step_dir @ fvp(step_dir)).clamp_min(1e-12)
        max_kl = cfg.max_kl * (1.0 - progress) if cfg.anneal_max_kl else cfg.max_kl
        full_step = torch.sqrt(2 * max_kl / shs) * step_dir  # beta s with beta = sqrt(2 delta / s^T F s)
        old_params = parameters_to_vector(params).detach()
        surr_old = surr_old.detach()

        # Backtracking line search: host syncs here are per update, not per env step.
        accepted, step_frac = False, 1.0
        with torch.no_grad():
            for _ in range(cfg.line_search_steps):
                vector_to_parameters(old_params + step_frac * full_step, params)
                new_kl, new_surr = kl(), surrogate()
                if bool((new_kl <= max_kl) & (new_surr > surr_old) & new_kl.isfinite()):
                    accepted = True
                    break
                step_frac *= cfg.line_search_shrink
            if not accepted:
                vector_to_parameters(old_params, params)
                new_kl, new_surr = kl(), surrogate()

        # Critic: Adam on the returns, minibatched (sb3-contrib: 10 epochs of 128).
        opt = self.optimizers["critic"]
        num_mb = max(1, buffer.num_samples // cfg.critic_batch_size)
        v_loss_sum = torch.zeros((), device=self.device)
        for _ in range(cfg.critic_epochs):
            for mb in buffer.minibatches(num_mb):
                v_loss = self._critic_loss(mb)
                opt.zero_grad(set_to_none=True)
                v_loss.backward()
                opt.step()
                v_loss_sum += v_loss.detach()

        with torch.no_grad():
            entropy = self.policy.entropy(obs)
        return {
            "policy_loss": -new_surr.detach(),
            "surrogate_improvement": (new_surr - surr_old).detach(),
            "kl": new_kl.detach(),
            "max_kl": torch.tensor(max_kl),
            "line_search_accepted": torch.tensor(float(accepted)),
            "step_fraction": torch.tensor(step_frac if accepted else 0.0),
            "value_loss": v_loss_sum / (cfg.critic_epochs * num_mb),
            "entropy": entropy.mean() if entropy is not None else torch.zeros(()),
            "explained_variance": explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        }
