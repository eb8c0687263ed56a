"""FPO: Flow Policy Optimization (McAllister, Ge, Yi et al., "Flow Matching Policy Gradients", arXiv:2507.21053).

PPO-clip with the likelihood ratio replaced by ``exp(L_old - L_new)``, the change of the
conditional flow-matching loss of the taken action at ``N`` Monte-Carlo ``(tau, eps)`` pairs
stored at rollout time (:class:`nets.generative.FlowPPOPolicy`). No likelihood, no sampler in the
loss: the flow is sampled by 10 Euler steps and could use any integrator. PPO's loop is reused.

``fpo_plus``: FPO++ (Yi, Choi et al. 2026) ratios per ``(tau, eps)`` pair, each clipped on its own,
and an asymmetric trust region: PPO's clip where the advantage is positive, SPO's quadratic
penalty (:func:`policyopt.algos.onpolicy.spo.spo_loss`) where it is negative, both with ``clip_coef``.

Fine-tuning an offline flow policy: ``pretrained=PATH`` (``--algo.pretrained``) starts the velocity
net from the ``policy`` module of a checkpoint whose policy is a ``FlowPolicy`` (Diffusion-BC with
``--algo.family flow``): its architecture and weights (``actor_hidden``, ``activation`` and
``time_dim`` then do not apply; ``flow_steps`` still sets the Euler steps). As DPPO does for a
diffusion policy (:mod:`policyopt.algos.onpolicy.dppo`), the checkpoint's ``obs_normalizer`` (the dataset's mean and
std) becomes the agent's observation normaliser, frozen for the whole run, and the action space
must have the checkpoint's bounds (the policy generates in ``[-1, 1]`` and maps to them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policyopt.algos.onpolicy.base import action_bounds, load_pretrained
from policyopt.algos.onpolicy.ppo import PPO, PPOConfig, clipped_surrogate_loss
from policyopt.algos.onpolicy.spo import spo_loss
from policyopt.nets.generative import FlowPolicy, FlowPPOPolicy


@dataclass
class FPOConfig(PPOConfig):
    """FPO settings: PPO's, with the FPO paper's (``playground/src/flow_policy/fpo.py``'s ``FpoConfig``) where they
    fit a few CPU envs; its Brax values that are DMC-specific (gamma 0.995, reward scale 10, 2048 envs) are not copied."""

    clip_coef: float = 0.05
    """surrogate clip range (FPO: 0.05, the best of 0.01-0.3)"""
    clip_vloss: bool = False
    """clip the value loss around the rollout's values (off, as Brax PPO: a 0.05 range would freeze the critic)"""
    num_mc_samples: int = 8
    """N, the (tau, eps) pairs stored per action (FPO's n_samples_per_action)"""
    flow_steps: int = 10
    """Euler steps per sampled action (FPO: 10)"""
    supervise: str = "eps"
    """CFM loss of the ratio: eps (FPO's u_but_supervise_as_eps, velocity net with eps-MSE) or velocity (u-MSE)"""
    discretize_tau: bool = False
    """draw tau from the Euler grid's times instead of U[0, 1) (FPO's discretize_t_for_training, off by default)"""
    fpo_plus: bool = False
    """FPO++: per-pair ratios, and PPO's clip for positive advantages but SPO's penalty for negative ones"""
    time_dim: int = 8
    """width of the velocity net's sinusoidal tau embedding (FPO: 8)"""
    actor_hidden: tuple[int, ...] = (32, 32, 32, 32)
    """hidden layer sizes of the velocity MLP (FPO: 4x32)"""
    critic_hidden: tuple[int, ...] = (256, 256, 256, 256, 256)
    """hidden layer sizes of the value MLP (FPO: 5x256)"""
    activation: str = "silu"
    """hidden activation of both MLPs (Brax's swish)"""
    vf_coef: float = 0.25
    """value-loss coefficient (FPO's Brax setting)"""
    update_epochs: int = 16
    """passes over the rollout batch per update (Brax's updates per batch)"""
    pretrained: str | None = None
    """start the policy from the 'policy' module of this checkpoint (a FlowPolicy: Diffusion-BC --algo.family flow), keeping its frozen obs normalisation"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_mc_samples < 1 or self.flow_steps < 1:
            raise ValueError(
                f"num_mc_samples (N) and flow_steps must be >= 1 (FPO: 8 and 10), got {self.num_mc_samples} and {self.flow_steps}"
            )
        if self.supervise not in ("eps", "velocity"):
            raise ValueError(f"supervise must be 'eps' or 'velocity', got {self.supervise!r}")
        if self.pretrained is not None and not self.normalize_obs:
            raise ValueError(
                "pretrained needs normalize_obs=True: the checkpoint's observation normaliser becomes the "
                "agent's (frozen); without it the pretrained velocity net would see raw observations"
            )


def fpo_plus_loss(log_ratio: torch.Tensor, advantages: torch.Tensor, eps: float) -> torch.Tensor:
    """FPO++'s asymmetric trust region (Yi, Choi et al. 2026): L^CLIP on A > 0 plus SPO's penalty on A < 0, over ``[B, *extra]``.

    Each term sees the other sign's advantages as 0, which contributes 0, so the sum is the mean of
    the per-entry choice."""
    return clipped_surrogate_loss(log_ratio, advantages.clamp(min=0), eps) + spo_loss(log_ratio, advantages.clamp(max=0), eps)


class FPO(PPO):
    """Flow Policy Optimization: PPO on a flow policy with the CFM-loss ratio (FPO++ with ``fpo_plus``).

    Builds a :class:`FlowPPOPolicy` from the config (or from ``config.pretrained``) unless a policy is passed.
    """

    config_class = FPOConfig
    config: FPOConfig
    _pretrained_obs_norm: dict[str, torch.Tensor] | None = None  # the pretrained file's dataset statistics, when loaded

    def default_policy(self) -> FlowPPOPolicy:
        cfg, space = self.config, self.action_space
        low, high = action_bounds(space, "FPO needs a 1-D Box action space (a flow over actions)")
        kwargs = dict(
            num_mc_samples=cfg.num_mc_samples,
            sample_steps=cfg.flow_steps,
            supervise=cfg.supervise,
            per_pair_ratio=cfg.fpo_plus,
            discretize_tau=cfg.discretize_tau,
        )
        if cfg.pretrained is not None:
            # only for a new agent: load() passes the checkpoint's own policy and never reads this file
            pre = load_pretrained(
                cfg.pretrained,
                "FPO",
                FlowPolicy,
                self.observation_space,
                space,
                "the checkpoint.pt of scripts/train_diffusion_bc.py --algo.family flow "
                "(a DiffusionPolicy is DPPO's to fine-tune: scripts/train_dppo.py --algo.pretrained)",
            )
            self._pretrained_obs_norm = pre.obs_normalizer
            return FlowPPOPolicy.wrap(pre.policy, low, high, **kwargs)
        return FlowPPOPolicy(
            int(self.observation_space.shape[0]),
            int(space.shape[0]),
            low,
            high,
            flow_kwargs=dict(hidden=cfg.actor_hidden, activation=cfg.activation, time_dim=cfg.time_dim),
            **kwargs,
        )

    def _setup(self) -> None:
        super()._setup()
        if self.config.pretrained is not None:  # fine-tuning keeps the pretrained policy's inputs (a loaded agent: its own)
            self.freeze_obs_normalization(self._pretrained_obs_norm)

    def policy_loss(self, log_ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
        if self.config.fpo_plus:
            return fpo_plus_loss(log_ratio, advantages, self.config.clip_coef)
        return super().policy_loss(log_ratio, advantages)
