"""CQL: Conservative Q-Learning (Kumar, Zhou, Tucker & Levine 2020, arXiv:2006.04779), SAC-based.

SAC's actor, temperature and twin critics, plus a conservative penalty on each critic:
``cql_alpha (logsumexp_a Q(s, a) - Q(s, a_data))``, the log-sum-exp estimated by importance
sampling over uniform actions and the policy's actions at s and s', which pushes Q down on
out-of-distribution actions and up on the dataset's. The Lagrange variant tunes the weight so
that the gap tracks ``cql_target_action_gap``. Defaults as CORL's ``cql.py`` for MuJoCo locomotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.algos.offpolicy.base import polyak_update
from policyopt.algos.offpolicy.sac import actor_loss, alpha_loss
from policyopt.nets import SquashedGaussianActor


@dataclass
class CQLConfig(OfflineConfig):
    """CQL settings; the defaults are CORL's ``cql.py`` for MuJoCo locomotion (whose bc_steps warm start is 0: none)."""

    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of the tanh-Gaussian actor (CORL: 3x256)"""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of each critic (CORL's q_n_hidden_layers 3; AntMaze 5)"""
    actor_learning_rate: float = 3e-5
    """Adam learning rate of the actor (CORL's policy_lr; AntMaze 1e-4)"""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the twin critics (CORL's qf_lr)"""
    alpha: float = 1.0
    """entropy temperature: the fixed value, or the initial one when autotune_alpha (CORL: log alpha starts at 0)"""
    autotune_alpha: bool = True
    """tune alpha so the policy's entropy tracks target_entropy (CORL's use_automatic_entropy_tuning)"""
    alpha_learning_rate: float = 3e-5
    """Adam learning rate of log(alpha): CORL's cql.py uses policy_lr, 3e-5, for it (SAC: 3e-4)"""
    target_entropy: float | None = None
    """the entropy alpha is tuned towards (None: -action_dim)"""
    backup_entropy: bool = False
    """subtract alpha log pi(a'|s') in the critic target (SAC's soft backup; CORL: off)"""
    cql_alpha: float = 10.0
    """weight of the conservative penalty (AntMaze 5.0; with cql_lagrange it multiplies alpha')"""
    cql_n_actions: int = 10
    """actions sampled per state from each of: uniform, pi(.|s), pi(.|s')"""
    cql_importance_sample: bool = True
    """estimate logsumexp_a Q by importance sampling (minus each sample's log-density), not over the raw samples"""
    cql_temp: float = 1.0
    """temperature of the log-sum-exp: temp * logsumexp(Q / temp)"""
    cql_lagrange: bool = False
    """tune the penalty weight alpha' by dual gradient descent on the gap's constraint (AntMaze: on)"""
    cql_target_action_gap: float = -1.0
    """cql_lagrange: the gap (logsumexp - Q(s, a_data)) alpha' steers towards; CORL's default -1.0 (AntMaze 0.8)"""
    lagrange_learning_rate: float = 3e-4
    """Adam learning rate of log(alpha') (CORL: qf_lr)"""
    cql_max_target_backup: bool = False
    """the critic target takes the max over cql_n_actions policy samples at s' (AntMaze: on)"""
    cql_clip_diff_min: float = -math.inf
    """the per-sample gap is clipped below at this (AntMaze -200)"""
    cql_clip_diff_max: float = math.inf
    """the per-sample gap is clipped above at this"""

    def __post_init__(self) -> None:
        super().__post_init__()
        lrs = (self.actor_learning_rate, self.critic_learning_rate, self.alpha_learning_rate, self.lagrange_learning_rate)
        if (
            min(lrs) <= 0
            or not self.alpha > 0
            or self.cql_alpha < 0
            or self.cql_n_actions < 1
            or not self.cql_temp > 0
            or not self.cql_clip_diff_min <= self.cql_clip_diff_max
        ):
            raise ValueError(
                f"learning rates, alpha and cql_temp must be > 0, cql_alpha >= 0, cql_n_actions >= 1 and "
                f"cql_clip_diff_min <= cql_clip_diff_max; got lrs {lrs}, alpha {self.alpha}, cql_temp "
                f"{self.cql_temp}, cql_alpha {self.cql_alpha}, cql_n_actions {self.cql_n_actions}, clip "
                f"[{self.cql_clip_diff_min}, {self.cql_clip_diff_max}]"
            )


def cql_penalty(
    q_data: torch.Tensor,
    q_ood: torch.Tensor,
    log_density: torch.Tensor | None,
    temperature: float,
    clip_min: float = -math.inf,
    clip_max: float = math.inf,
) -> torch.Tensor:
    """E_s clip(temp logsumexp_k((Q(s, a_k) - log mu(a_k)) / temp) - Q(s, a_data)) per critic  (Kumar et al. 2020, eq. 4).

    The gap that cql_alpha weighs: ``q_data [C, B]``, ``q_ood [C, K, B]`` and ``log_density [K, B]``, the
    samples' log-densities (importance sampling, appendix F), or ``None``: the plain log-sum-exp over
    Q(s, a_data) and ``q_ood`` together, as CORL without importance sampling. Returns ``[C]``.
    """
    logits = q_ood - log_density if log_density is not None else torch.cat([q_data[:, None], q_ood], 1)
    lse = temperature * torch.logsumexp(logits / temperature, dim=1)
    return (lse - q_data).clamp(clip_min, clip_max).mean(-1)


def lagrange_penalty(
    gap: torch.Tensor, log_alpha_prime: torch.Tensor, cql_alpha: float, target_gap: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dual descent on gap <= tau: alpha' cql_alpha (gap - tau)  (Kumar et al. 2020, appendix F, CQL-Lagrange).

    Returns the critics' term (summed over critics, alpha' fixed), alpha''s loss (the term negated and
    averaged over critics, gaps fixed) and alpha' = clamp(exp(log alpha'), 0, 1e6), as CORL.
    """
    alpha_prime = log_alpha_prime.exp().clamp(0.0, 1e6)
    excess = cql_alpha * (gap - target_gap)
    return (alpha_prime.detach() * excess).sum(), -(alpha_prime * excess.detach()).mean(), alpha_prime.detach()


def soft_bellman_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor | float,
) -> torch.Tensor:
    """y = r + gamma (1 - d) (min_i Q'_i(s', a'_k) - alpha log pi(a'_k|s'))  (Haarnoja et al. 2018, eq. 3).

    ``q_next [C, K, B]``, ``next_log_prob [K, B]``: K = 1 is SAC's backup; K > 1 takes the sample
    k = argmax_k min_i Q'_i(s', a'_k) (CQL's max backup, Kumar et al. 2020 appendix F, as CORL).
    """
    v = q_next.min(0).values
    best = v.argmax(0, keepdim=True)
    v_best = v.gather(0, best)[0] - alpha * next_log_prob.gather(0, best)[0]
    return rewards + discounts * (1.0 - terminated) * v_best


class CQL(OfflineAlgorithm):
    """Conservative Q-Learning on SAC; any actor with ``sample(obs) -> (action, log_prob)`` and ``act``."""

    config_class = CQLConfig
    config: CQLConfig
    default_temperature = 0.2  # Hong et al.'s run_cql.py: RW-0.2, AW-0.2

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = SquashedGaussianActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.critic, self.critic_target = self.twin_critics()
        self.target_entropy = float(-self.act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), device=self.device, requires_grad=cfg.autotune_alpha)
        self.log_alpha_prime = torch.tensor(1.0, device=self.device, requires_grad=cfg.cql_lagrange)  # CORL: Scalar(1.0)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.actor_learning_rate)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), cfg.critic_learning_rate)
        if cfg.autotune_alpha:
            self.optimizers["alpha"] = self.adam([self.log_alpha], cfg.alpha_learning_rate)
        if cfg.cql_lagrange:
            self.optimizers["alpha_prime"] = self.adam([self.log_alpha_prime], cfg.lagrange_learning_rate)
        self._online, self._targets = list(self.critic.parameters()), list(self.critic_target.parameters())
        self._loss = self.compiled(self.loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "policy": self.policy,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "obs_normalizer": self.obs_normalizer,
        }

    def loss(self, batch: dict[str, torch.Tensor], alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum of the actor's, alpha's, the critics' and alpha''s losses (disjoint parameters) and metrics (compiled).

        All are computed from the same pre-update networks, as CORL's ``train`` does before its steps."""
        cfg = self.config
        obs, next_obs, actions = batch["obs"], batch["next_obs"], batch["actions"]
        b, n = obs.shape[0], cfg.cql_n_actions
        k = n if cfg.cql_max_target_backup else 1
        pi, log_pi = self.policy.sample(obs)
        pi_loss = actor_loss(self.critic(obs, pi, detach_params=True), log_pi, alpha)
        a_loss = alpha_loss(self.log_alpha, log_pi, self.target_entropy) if cfg.autotune_alpha else torch.zeros_like(pi_loss)
        with torch.no_grad():  # n policy actions at s and at s' for the penalty, k at s' for the target, in one call
            sampled, sampled_lp = self.policy.sample(torch.cat([obs.repeat(n, 1), next_obs.repeat(n + k, 1)]))
            a_cur, a_next, a_tgt = sampled.split([n * b, n * b, k * b])
            lp_cur, lp_next, lp_tgt = sampled_lp.view(2 * n + k, b).split([n, n, k])
            q_next = self.critic_target(next_obs.repeat(k, 1), a_tgt).view(-1, k, b)
            y = soft_bellman_target(
                batch["rewards"], batch["discounts"], batch["terminated"], q_next, lp_tgt, alpha if cfg.backup_entropy else 0.0
            )
        a_rand = torch.rand(n * b, self.act_dim, device=obs.device) * 2.0 - 1.0
        # one pass of each critic over [a_data; uniform; pi(s); pi(s')], every set evaluated at s
        q = self.critic(obs.repeat(3 * n + 1, 1), torch.cat([actions, a_rand, a_cur, a_next])).view(-1, 3 * n + 1, b)
        q_data, q_ood = q[:, 0], q[:, 1:]
        log_density = None
        if cfg.cql_importance_sample:  # log 0.5^act_dim for the uniform actions, the policy's for its own
            log_density = torch.cat([torch.full_like(lp_cur, self.act_dim * math.log(0.5)), lp_cur, lp_next])
        gap = cql_penalty(q_data, q_ood, log_density, cfg.cql_temp, cfg.cql_clip_diff_min, cfg.cql_clip_diff_max)
        if cfg.cql_lagrange:
            conservative, ap_loss, alpha_prime = lagrange_penalty(
                gap, self.log_alpha_prime, cfg.cql_alpha, cfg.cql_target_action_gap
            )
        else:
            conservative, ap_loss, alpha_prime = cfg.cql_alpha * gap.sum(), torch.zeros_like(gap[0]), torch.zeros_like(gap[0])
        td_loss = (q_data - y).square().mean(1).sum()  # the twin MSEs summed, as CORL
        metrics = {
            "critic_loss": (td_loss + conservative).detach(),
            "td_loss": td_loss.detach(),
            "cql_gap": gap.detach().mean(),
            "actor_loss": pi_loss.detach(),
            "alpha_loss": a_loss.detach(),
            "alpha": alpha,
            "entropy": -log_pi.detach().mean(),
            "q_mean": q_data.detach().mean(),
            "q_random": q[:, 1 : n + 1].detach().mean(),
            "q_policy": q[:, n + 1 :].detach().mean(),
            "alpha_prime": alpha_prime,
            "alpha_prime_loss": ap_loss.detach(),
        }
        return pi_loss + a_loss + td_loss + conservative + ap_loss, metrics

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        alpha = self.log_alpha.detach().exp()
        loss, metrics = self._loss(batch, alpha)
        optimizers = list(self.optimizers.values())
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()  # each loss reaches only its own parameters (see loss), so one backward serves all four
        for opt in optimizers:
            opt.step()
        with torch.no_grad():
            polyak_update(self._targets, self._online, self.config.tau)
        return metrics

    def extra_state(self) -> dict[str, Any]:
        return {
            **super().extra_state(),
            "log_alpha": self.log_alpha.detach().clone(),
            "log_alpha_prime": self.log_alpha_prime.detach().clone(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
            self.log_alpha_prime.copy_(state["log_alpha_prime"].to(self.device))
