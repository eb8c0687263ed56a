"""PPO: Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

The clipped surrogate, optional value clipping, entropy bonus, gradient-norm clipping,
linear learning-rate annealing and early stopping on a target KL, with the
implementation details of openai/baselines ppo2 as CleanRL documents them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from policyopt.algos.core import distributed
from policyopt.algos.onpolicy.base import OnPolicyAlgorithm, OnPolicyConfig
from policyopt.buffers import RolloutBuffer
from policyopt.buffers.rollout import stored_of


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO settings; the defaults are CleanRL's MuJoCo ones (`ppo_continuous_action.py`)."""

    learning_rate: float = 3e-4
    """Adam learning rate (of the actor and critic together)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0"""
    anneal_lr_steps: int | None = None
    """env steps over which the learning rate anneals to 0 (None: the run's total_steps; the SPO repo uses 1e7)"""
    num_minibatches: int = 32
    """minibatches per epoch; the minibatch size is num_steps * num_envs / num_minibatches"""
    update_epochs: int = 10
    """passes over the rollout batch per update"""
    clip_coef: float = 0.2
    """surrogate clip range epsilon (also the value-clip range when clip_vloss)"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's values (baselines ppo2)"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value-loss coefficient"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    target_kl: float | None = None
    """stop the epoch loop once the approximate KL exceeds this (None: never)"""
    adam_eps: float = 1e-5
    """Adam epsilon (CleanRL: 1e-5; PyTorch's default: 1e-8)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_minibatches < 1 or self.update_epochs < 1:
            raise ValueError("num_minibatches and update_epochs must be >= 1")
        if self.anneal_lr_steps is not None and self.anneal_lr_steps < 1:
            raise ValueError(f"anneal_lr_steps must be None or >= 1, got {self.anneal_lr_steps}")


def broadcast_advantages(advantages: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    """``advantages [B]`` shaped to broadcast over a log-ratio ``[B, *extra]`` (e.g. one ratio per
    denoising step of a diffusion policy, as in DPPO): every extra entry gets its sample's advantage."""
    if advantages.shape != log_ratio.shape[:1]:
        raise ValueError(
            f"advantages must be [B] for a log-ratio [B, ...]; got {tuple(advantages.shape)} and {tuple(log_ratio.shape)}"
        )
    return advantages.reshape(advantages.shape + (1,) * (log_ratio.ndim - 1))


def clipped_surrogate_loss(log_ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """L^CLIP = -E[min(r A, clip(r, 1-eps, 1+eps) A)]  (Schulman et al. 2017, eq. 7), over ``[B, *extra]`` ratios."""
    advantages = broadcast_advantages(advantages, log_ratio)
    ratio = log_ratio.exp()
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages).mean()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None) -> torch.Tensor:
    """0.5 * (V - R)^2, optionally the pessimistic clipped form of baselines ppo2."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped.mean()
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped).mean()


class PPO(OnPolicyAlgorithm):
    """Proximal Policy Optimization with the clipped surrogate; works with any StochasticPolicy."""

    config_class = PPOConfig
    config: PPOConfig
    supports_data_parallel = True

    def _setup(self) -> None:
        cfg = self.config
        batch = cfg.num_steps * self.num_envs  # under torchrun, this rank's share
        if self.world is not None:
            distributed.check_minibatches(batch, cfg.num_minibatches, cfg.num_steps, self.num_envs)
        if cfg.num_minibatches > batch or (cfg.norm_adv and batch // cfg.num_minibatches < 2):
            raise ValueError(
                f"num_steps * num_envs = {cfg.num_steps} * {self.num_envs} = {batch} samples cannot be split into "
                f"num_minibatches={cfg.num_minibatches} minibatches of at least {2 if cfg.norm_adv else 1} "
                f"(advantage normalization needs 2); use num_minibatches <= {batch // 2 if cfg.norm_adv else batch}"
            )
        params = list(self.policy.parameters()) + list(self.critic.parameters())
        self.optimizers["adam"] = self.adam(params, lr=cfg.learning_rate, eps=cfg.adam_eps)
        self._params = params
        self._minibatch_loss = self.compiled(self.minibatch_loss)

    def policy_loss(self, log_ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
        return clipped_surrogate_loss(log_ratio, advantages, self.config.clip_coef)

    def base_learning_rates(self) -> list[float]:
        """Each of the optimiser's param groups' learning rate before annealing: one group, ``learning_rate``."""
        return [self.config.learning_rate]

    def update(self, buffer: RolloutBuffer, progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        opt = self.optimizers["adam"]
        if cfg.anneal_lr_steps is not None:
            progress = min(self.global_step / cfg.anneal_lr_steps, 1.0)
        scale = 1.0 - progress if cfg.anneal_lr else 1.0
        for group, base in zip(opt.param_groups, self.base_learning_rates(), strict=True):
            group["lr"] = base * scale
        world = self.world
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for _ in range(cfg.update_epochs):
            minibatches = buffer.minibatches(cfg.num_minibatches)
            if world is not None and cfg.norm_adv:
                # This rank's minibatch j is its share of global minibatch j: normalise with that one's moments.
                minibatches = list(minibatches)
                means, stds = world.minibatch_moments([mb["advantages"] for mb in minibatches])
                minibatches = [{**mb, "adv_mean": m, "adv_std": sd} for mb, m, sd in zip(minibatches, means, stds)]
            for mb in minibatches:
                loss, stats = self._minibatch_loss(mb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if world is not None:  # equal local minibatches: the mean of the ranks' gradients is the global one
                    world.average_gradients(self._params)
                nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
                opt.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0) + v  # a fresh tensor: a CUDA-graph output is overwritten by its next replay
                count += 1
            # Early stop on the last minibatch's KL: one host sync per epoch, only when asked for.
            # Under torchrun the global minibatch's KL (the ranks' mean), so all ranks stop together.
            if cfg.target_kl is not None:
                kl = stats["approx_kl"] if world is None else world.mean_dict({"kl": stats["approx_kl"]})["kl"]
                if float(kl) > cfg.target_kl:
                    break
        metrics = {k: v / count for k, v in sums.items()}
        if world is None:
            metrics["explained_variance"] = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        else:  # the global batch's metrics on every rank: one all-reduce each
            metrics = world.mean_dict(metrics)
            metrics["explained_variance"] = explained_variance(
                world.all_gather_cat(buffer.values.flatten()), world.all_gather_cat(buffer.returns.flatten())
            )
        metrics["learning_rate"] = torch.tensor(cfg.learning_rate * scale)  # the first group's (the policy's)
        return metrics

    def minibatch_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The PPO loss of one minibatch and its statistics (compiled, forward and backward, with ``config.compile``)."""
        cfg = self.config
        log_ratio, entropy = self.policy.log_ratio_and_entropy(mb["obs"], mb["actions"], stored_of(mb))
        adv = mb["advantages"]
        if cfg.norm_adv:
            # under torchrun, update() passes the global minibatch's moments (this is the rank's share of it)
            mean, std = (mb["adv_mean"], mb["adv_std"]) if "adv_mean" in mb else (adv.mean(), adv.std())
            adv = (adv - mean) / (std + 1e-8)
        pg_loss = self.policy_loss(log_ratio, adv)
        v_loss = value_loss(self.critic(mb["obs"]), mb["values"], mb["returns"], cfg.clip_coef if cfg.clip_vloss else None)
        ent = entropy.mean() if entropy is not None else torch.zeros((), device=adv.device)
        loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
        with torch.no_grad():
            ratio = log_ratio.exp()
            stats = {
                "policy_loss": pg_loss.detach(),
                "value_loss": v_loss.detach(),
                "entropy": ent.detach(),
                "approx_kl": ((ratio - 1) - log_ratio).mean(),  # k3 estimator (Schulman 2020, "Approximating KL")
                "clipfrac": ((ratio - 1).abs() > cfg.clip_coef).float().mean(),
                "ratio_deviation": (ratio - 1).abs().mean(),
            }
        return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 - Var[R - V] / Var[R]: 1 is a perfect critic, 0 a constant one."""
    var = returns.var()
    return torch.where(var > 0, 1 - (returns - values).var() / var, torch.zeros_like(var))
