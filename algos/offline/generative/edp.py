"""EDP: Efficient Diffusion Policies for offline RL (Kang, Ma, Du, Pang & Yan, NeurIPS 2023, arXiv:2305.20081).

Diffusion-QL without backpropagation through the chain. EDP's *action approximation* corrupts a
dataset action at a random step ``k``, ``a_k = sqrt(abar_k) a + sqrt(1 - abar_k) eps``, and one
network call gives both the DDPM loss and the clean-action estimate

    a0_hat = (a_k - sqrt(1 - abar_k) eps_theta(s, a_k, k)) / sqrt(abar_k)   (Kang et al. 2023, eq. 8),

which stands in for a policy sample in the RL term. So training costs one denoiser call per
sample whatever ``K`` is, and ``K`` can be 1000. Sampling (evaluation and the TD targets' next
actions) uses DPM-Solver++(2M) with 15 steps. Two variants:

- ``td3``: policy loss ``L_d - eta alpha E[Q_j(s, a0_hat)] / E|Q_j(s, a0_hat)|``, ``j`` a random
  one of the twin critics (its own mean |Q| as the scale, as EDP's ``_train_step_td3``);
  Diffusion-QL's critics, EMA target policy and optional max-Q backup;
- ``iql``: IQL's expectile V on the target critics and ``r + gamma V(s')`` for Q (no policy
  in the TD target), and ``L_d + eta E[-w log N(a; a0_hat, I)]`` with AWR weights
  ``w = min(exp(beta (Q - V)), 100)`` (EDP's ``_train_step_iql`` with ``fixed_std``).

Defaults are EDP's code's (lr 3e-4, alpha 2, guide_coef 1, no gradient clipping, no lr decay,
expectile 0.7, AWR temperature 3) with ``K = 100`` (their default; the paper's fastest setting
uses 1000 with DPM-Solver); acting takes one sample (their "ensemble" evaluation with 50
candidates is ``act_candidates=50``). Differences: ``a0_hat`` is not clipped to [-1, 1] (a clamp
would zero the Q term's gradient outside); the IQL variant's Gaussian is the fixed-std one, with
no learned ``policy_dist``; the CRR variant is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policyopt.algos.offline.generative.base import GenerativeOfflineAlgorithm, normalized_q_loss
from policyopt.algos.offline.generative.diffusion_ql import (
    DiffusionQLConfig,
    cosine_learning_rates,
    diffusion_ql_modules,
    q_guided_update,
    setup_diffusion_ql,
)
from policyopt.algos.offline.iql import awr_weights, expectile_loss
from policyopt.nets import ValueCritic, default_init
from policyopt.nets.generative import DiffusionPolicy

VARIANTS = ("td3", "iql")


@dataclass
class EDPConfig(DiffusionQLConfig):
    """EDP settings; the defaults are EDP's code's for locomotion (learning_rate is the policy's, the critics' and V's)."""

    variant: str = "td3"
    """the RL term: td3 (a normalised Q term on the action approximation) or iql (expectile V, AWR-weighted likelihood)"""
    num_timesteps: int = 100
    """K, the diffusion steps of the policy's schedule (EDP's default 100; up to 1000 with DPM-Solver)"""
    sampler: str = "dpm"
    """how actions are sampled at evaluation and for the TD targets: dpm (DPM-Solver++(2M), EDP's fast setting), ddpm or ddim"""
    sample_steps: int | None = 15
    """denoising steps per sampled action (EDP's dpm_steps: 15; None: all K)"""
    alpha: float = 2.0
    """td3: the Q term is alpha Q / E|Q| (EDP's alpha: 2)"""
    eta: float = 1.0
    """weight of the RL term in the policy loss (EDP's guide_coef: 1)"""
    grad_norm: float = 0.0
    """clip the gradient norms at this (0: off, EDP's max_grad_norm)"""
    cosine_lr: bool = False
    """decay the learning rates along a cosine over the offline updates (EDP's lr_decay: off)"""
    expectile: float = 0.7
    """iql: the expectile of Q that V regresses to"""
    beta: float = 3.0
    """iql: inverse temperature of the advantage weights exp(beta A) (EDP's awr_temperature)"""
    max_weight: float = 100.0
    """iql: the advantage weights are clipped at this"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; available: {', '.join(VARIANTS)}")
        if self.alpha < 0 or not 0.0 < self.expectile < 1.0 or self.beta < 0 or self.max_weight <= 0:
            raise ValueError(
                f"alpha must be >= 0, expectile in (0, 1), beta >= 0 and max_weight > 0; got {self.alpha}, "
                f"{self.expectile}, {self.beta}, {self.max_weight}"
            )


def action_approximation(
    policy: DiffusionPolicy, obs: torch.Tensor, actions: torch.Tensor, k: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample DDPM loss ||eps - eps_theta(s, a_k, k)||^2 (mean over action dims) and a0_hat, from ONE
    denoiser call on a_k = q(a_k | a)  (Kang et al. 2023, eq. 8; ``policy.predict_x0`` of the same a_k)."""
    noisy = policy.corrupt(actions, k, noise)
    eps = policy.eps(obs, noisy, k)
    return (eps - noise).square().mean(-1), policy.schedule.predict_x0(noisy, k, eps)


def edp_td3_loss(diffusion_loss: torch.Tensor, q: torch.Tensor, alpha: float, eta: float) -> torch.Tensor:
    """L_d + eta (-alpha E[Q_j(s, a0_hat)] / E|Q_j|), the scale detached  (Kang et al. 2023; EDP's _train_step_td3)."""
    return diffusion_loss.mean() + eta * alpha * normalized_q_loss(q, q)


def edp_awr_loss(
    diffusion_loss: torch.Tensor, a0_hat: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor, eta: float
) -> torch.Tensor:
    """L_d + eta E[-w log N(a; a0_hat, I)], log N up to its constant  (Kang et al. 2023; EDP's _train_step_iql)."""
    log_prob = -0.5 * (actions - a0_hat).square().sum(-1)
    return diffusion_loss.mean() - eta * (weights * log_prob).mean()


class EDP(GenerativeOfflineAlgorithm):
    """EDP with a :class:`nets.generative.DiffusionPolicy`: Diffusion-QL's networks, the action approximation's losses."""

    config_class = EDPConfig
    config: EDPConfig

    def _setup(self) -> None:
        cfg = self.config
        setup_diffusion_ql(self)
        self._actor_loss = self.compiled(self.actor_loss)
        self.value = None
        if cfg.variant == "iql":
            self.value = default_init(ValueCritic(self.obs_dim, cfg.critic_hidden, cfg.activation)).to(self.device)
            self.optimizers["value"] = self.adam(self.value.parameters(), cfg.learning_rate)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**diffusion_ql_modules(self), **({"value": self.value} if self.value is not None else {})}

    def approximate(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The action approximation on the batch's actions at k ~ U{0..K-1}."""
        actions = batch["actions"]
        k = torch.randint(0, self.policy.schedule.num_timesteps, (actions.shape[0],), device=actions.device)
        return action_approximation(self.policy, batch["obs"], actions, k, torch.randn_like(actions))

    def actor_loss(
        self, batch: dict[str, torch.Tensor], advantage: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The td3 or iql policy loss on the action approximation (compiled)."""
        cfg = self.config
        diffusion_loss, a0_hat = self.approximate(batch)
        if cfg.variant == "iql":
            weights = awr_weights(advantage, cfg.beta, cfg.max_weight)
            loss = edp_awr_loss(diffusion_loss, a0_hat, batch["actions"], weights, cfg.eta)
        else:
            q = self.critic(batch["obs"], a0_hat, detach_params=True)
            loss = edp_td3_loss(diffusion_loss, q[torch.randint(0, 2, (), device=q.device)], cfg.alpha, cfg.eta)
        return loss, {"bc_loss": diffusion_loss.mean().detach()}

    def iql_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """V's expectile loss against the target critics' min Q at the dataset's actions, and the advantage."""
        with torch.no_grad():
            q = self.critic_target(batch["obs"], batch["actions"]).min(0).values
        v = self.value(batch["obs"])
        return expectile_loss(q - v, self.config.expectile), (q - v).detach()

    def iql_critic_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The critics' MSE to r + gamma (1 - d) V(s')  (Kostrikov et al. 2022, eq. 6)."""
        with torch.no_grad():
            y = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminated"]) * self.value(batch["next_obs"])
        q = self.critic(batch["obs"], batch["actions"])
        loss = (q - y).square().mean(1).sum()
        self.step("critic", loss, self.config.grad_norm)
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        if cfg.variant == "td3":
            return q_guided_update(self, batch, progress, self._actor_loss)  # Diffusion-QL's update, EDP's actor loss
        if cfg.cosine_lr:
            cosine_learning_rates(self, progress)
        # EDP's order: V, then the policy (on the advantage), then the critics
        v_loss, advantage = self.iql_losses(batch)
        self.step("value", v_loss, cfg.grad_norm)
        loss, extra = self._actor_loss(batch, advantage)
        self.step("actor", loss, cfg.grad_norm)
        metrics = self.iql_critic_step(batch)
        self.update_ema()
        self.update_critic_targets()
        return {
            **metrics,
            "value_loss": v_loss.detach(),
            "actor_loss": loss.detach(),
            "advantage_mean": advantage.mean(),
            **extra,
        }
