"""DPPO: Diffusion Policy Policy Optimization (Ren et al., ICLR 2025, arXiv:2409.00588).

PPO on the two-layer "diffusion policy MDP": every fine-tuned denoising step of a
:class:`nets.generative.DiffusionPPOPolicy` is a Gaussian policy step with its own ratio
(``log_ratio`` is ``[B, K']``), the environment-step advantage (GAE on the env state's value,
as PPO computes it) is broadcast to each step with the denoising discount ``gamma_denoise^k``,
and each step has its own clip range on an exponential schedule. PPO's rollout and update
loop are reused as they are; DPPO adds its policy, its loss and two learning rates.

Fine-tuning an offline policy: ``pretrained=PATH`` (``--algo.pretrained``) starts the policy
from the ``policy`` module of a checkpoint whose policy is a ``DiffusionPolicy`` (Diffusion-BC,
Diffusion-QL, EDP from ``scripts/train_diffusion_bc.py`` and co.), both the fine-tuned denoiser
and the frozen copy. Its observation normalisation stays the pretrained one: the checkpoint's
``obs_normalizer`` (the dataset's mean and std) is installed as the agent's observation
normaliser and frozen for the whole run (as DPPO's env wrapper normalises with fixed dataset
statistics), so the denoiser keeps seeing the inputs it was trained on; the critic sees the same
normalised observations. Actions keep the offline convention too: the policy generates in
``[-1, 1]`` and maps to the action space's bounds, which must be the checkpoint's.

Left out: action chunking (DPPO's Ta/Tp; one action per env step here), the log-prob clamp and the
±3 std clip of the sampling noise, and the optional BC loss toward the base policy. The update
samples minibatches of env steps with all K' denoising steps each (DPPO since v0.6 samples over
env and denoising steps together: the same expectation). The logged ``clipfrac`` counts ratios
outside ``clip_coef``, the last step's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from policyopt.algos.onpolicy.base import action_bounds, load_pretrained
from policyopt.algos.onpolicy.ppo import PPO, PPOConfig, broadcast_advantages
from policyopt.nets.generative import DiffusionPolicy, DiffusionPPOPolicy


@dataclass
class DPPOConfig(PPOConfig):
    """DPPO settings: PPO's, with DPPO's gym fine-tuning values where they fit our scale
    (``cfg/gym/finetune/*/ft_ppo_diffusion_mlp.yaml``; from scratch DPPO uses K = K' = 10, clip 0.1)."""

    learning_rate: float = 1e-4
    """Adam learning rate of the policy (DPPO's actor lr; anneals with anneal_lr)"""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the critic (DPPO: 1e-3; anneals in proportion)"""
    clip_coef: float = 0.01
    """clip range of the last (clean) denoising step, DPPO's clip_ploss_coef (gym fine-tuning 0.01, from scratch 0.1)"""
    clip_coef_base: float = 1e-3
    """clip range of the first fine-tuned (noisiest) step, DPPO's clip_ploss_coef_base"""
    clip_coef_rate: float = 3.0
    """exponential rate of the per-step clip schedule from clip_coef_base to clip_coef (0: linear)"""
    clip_vloss: bool = False
    """clip the value loss around the rollout's values (off: DPPO's clip range is far smaller than a value's scale)"""
    gamma_denoise: float = 0.99
    """denoising-step discount: step k before the clean action gets advantage gamma_denoise^k A"""
    num_timesteps: int = 10
    """K of a new policy's diffusion schedule (DPPO from scratch: 10; its gym fine-tuning: 20)"""
    denoising_steps: int | None = None
    """DDIM steps per action (None: a new policy's num_timesteps, a pretrained one's own sample_steps)"""
    ft_denoising_steps: int | None = None
    """K', the last denoising steps fine-tuned; earlier ones use a frozen copy of the initial denoiser (None: all; DPPO gym: 10 of 20)"""
    eta: float = 1.0
    """DDIM eta while training (> 0 for a likelihood; 1: the DDPM posterior); evaluation uses eta 0 from zero noise"""
    min_sampling_std: float = 0.1
    """floor on each denoising step's std when sampling (exploration; DPPO's min_sampling_denoising_std)"""
    min_logprob_std: float = 0.1
    """floor on each denoising step's std when scoring log-probs (DPPO's min_logprob_denoising_std)"""
    beta_schedule: str = "cosine"
    """noise schedule of a new policy: cosine (DPPO) or linear (VP, Diffusion-QL)"""
    time_dim: int = 16
    """width of a new denoiser's sinusoidal time embedding (DPPO: 16)"""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of a new denoiser MLP (DPPO gym: 3x512 residual; Diffusion-BC: 3x256)"""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of the value MLP (DPPO: 3x256)"""
    activation: str = "mish"
    """hidden activation of the denoiser and the critic (DPPO's critic: Mish)"""
    pretrained: str | None = None
    """start the policy from the 'policy' module of this checkpoint (a DiffusionPolicy: Diffusion-BC/QL, EDP), keeping its frozen obs normalisation"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 < self.gamma_denoise <= 1.0):
            raise ValueError(f"gamma_denoise must lie in (0, 1], got {self.gamma_denoise}")
        if not (self.clip_coef > 0 and self.clip_coef_base > 0 and self.clip_coef_rate >= 0):
            raise ValueError(
                f"clip_coef and clip_coef_base must be > 0 and clip_coef_rate >= 0; got {self.clip_coef}, "
                f"{self.clip_coef_base}, {self.clip_coef_rate}"
            )
        if not (self.learning_rate > 0 and self.critic_learning_rate > 0):
            raise ValueError(
                f"learning_rate and critic_learning_rate must be > 0; got {self.learning_rate}, {self.critic_learning_rate}"
            )
        if self.pretrained is not None and not self.normalize_obs:
            raise ValueError(
                "pretrained needs normalize_obs=True: the checkpoint's observation normaliser becomes the "
                "agent's (frozen); without it the pretrained denoiser would see raw observations"
            )


# --- pure functions -----------------------------------------------------------------------------


def denoising_discounts(steps: int, gamma: float, like: torch.Tensor) -> torch.Tensor:
    """``[gamma^(K'-1), ..., gamma, 1]`` in chain order: the earliest (noisiest) step is discounted most (Ren et al. 2025, sec. 4)."""
    k = torch.arange(steps - 1, -1, -1, device=like.device, dtype=like.dtype)
    return gamma**k


def clip_schedule(steps: int, final: float, base: float, rate: float, like: torch.Tensor) -> torch.Tensor:
    """Per-step clip ranges in chain order, ``base`` at the first fine-tuned step to ``final`` at the last,
    ``base + (final - base) (e^(rate t) - 1) / (e^rate - 1)``, ``t = i / (K' - 1)`` (DPPO's clip_ploss_coef schedule)."""
    if steps == 1:
        return torch.full((1,), final, device=like.device, dtype=like.dtype)
    t = torch.arange(steps, device=like.device, dtype=like.dtype) / (steps - 1)
    shape = torch.expm1(rate * t) / math.expm1(rate) if rate > 0 else t
    return base + (final - base) * shape


def dppo_policy_loss(
    log_ratio: torch.Tensor, advantages: torch.Tensor, discounts: torch.Tensor, clip_coefs: torch.Tensor
) -> torch.Tensor:
    """-E_{s,k}[min(r_k A_k, clip(r_k, 1 - eps_k, 1 + eps_k) A_k)], A_k = gamma_denoise^k A (Ren et al. 2025, eq. 6),
    over ``[B, K']`` ratios; ``discounts`` and ``clip_coefs`` are ``[K']``."""
    adv = broadcast_advantages(advantages, log_ratio) * discounts
    ratio = log_ratio.exp()
    return -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip_coefs, 1 + clip_coefs) * adv).mean()


# --- the algorithm ------------------------------------------------------------------------------


class DPPO(PPO):
    """Diffusion Policy Policy Optimization: PPO over the fine-tuned denoising steps of a diffusion policy.

    Builds a :class:`DiffusionPPOPolicy` from the config (or from ``config.pretrained``) unless a
    policy is passed; any policy whose ``log_ratio`` is ``[B, K']`` (or ``[B]``) works.
    """

    config_class = DPPOConfig
    config: DPPOConfig
    _pretrained_obs_norm: dict[str, torch.Tensor] | None = None  # the pretrained file's dataset statistics, when loaded

    def default_policy(self) -> DiffusionPPOPolicy:
        cfg, space = self.config, self.action_space
        low, high = action_bounds(space, "DPPO needs a 1-D Box action space (a diffusion over actions)")
        kwargs = dict(
            denoising_steps=cfg.denoising_steps,
            ft_denoising_steps=cfg.ft_denoising_steps,
            eta=cfg.eta,
            min_sampling_std=cfg.min_sampling_std,
            min_logprob_std=cfg.min_logprob_std,
        )
        if cfg.pretrained is not None:
            # only for a new agent: load() passes the checkpoint's own policy and never reads this file
            pre = load_pretrained(
                cfg.pretrained,
                "DPPO",
                DiffusionPolicy,
                self.observation_space,
                space,
                "the checkpoint.pt of scripts/train_diffusion_bc.py (or Diffusion-QL, EDP)",
            )
            self._pretrained_obs_norm = pre.obs_normalizer
            return DiffusionPPOPolicy.wrap(pre.policy, low, high, **kwargs)
        return DiffusionPPOPolicy(
            int(self.observation_space.shape[0]),
            int(space.shape[0]),
            low,
            high,
            diffusion_kwargs=dict(
                num_timesteps=cfg.num_timesteps,
                schedule=cfg.beta_schedule,
                hidden=cfg.actor_hidden,
                activation=cfg.activation,
                time_dim=cfg.time_dim,
            ),
            **kwargs,
        )

    def _setup(self) -> None:
        super()._setup()
        cfg = self.config
        # two param groups, each annealed from its own rate (base_learning_rates)
        groups = [
            {"params": [p for p in self.policy.parameters() if p.requires_grad]},
            {"params": list(self.critic.parameters()), "lr": cfg.critic_learning_rate},
        ]
        self.optimizers["adam"] = self.adam(groups, lr=cfg.learning_rate, eps=cfg.adam_eps)
        if cfg.pretrained is not None:  # fine-tuning keeps the pretrained policy's inputs (a loaded agent: its own)
            self.freeze_obs_normalization(self._pretrained_obs_norm)

    def base_learning_rates(self) -> list[float]:
        """The policy's and the critic's learning rates before annealing (DPPO's critic learns faster)."""
        return [self.config.learning_rate, self.config.critic_learning_rate]

    def policy_loss(self, log_ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        log_ratio = log_ratio if log_ratio.dim() > 1 else log_ratio[:, None]
        steps = log_ratio.shape[1]
        return dppo_policy_loss(
            log_ratio,
            advantages,
            denoising_discounts(steps, cfg.gamma_denoise, log_ratio),
            clip_schedule(steps, cfg.clip_coef, cfg.clip_coef_base, cfg.clip_coef_rate, log_ratio),
        )
