"""What the generative offline algorithms share (Diffusion-BC/QL, EDP, Consistency-BC/AC, FQL).

- :class:`GenerativeOfflineConfig`: the offline family's settings with Diffusion-QL's networks
  (3x256 Mish) and the evaluation protocol as explicit, logged settings: candidate resampling
  (``act_candidates`` actions per observation, one picked by ``softmax(Q / act_temperature)``;
  off by default, where Diffusion-QL, EDP and Consistency-AC's code use 50) and whether
  evaluation samples the policy (their code does) or takes its zero-noise action;
- :class:`EMAConfig` and :func:`ema_update`: Diffusion-QL's EMA actor (decay 0.995, every 5
  updates, from update 1000; before that the EMA copy keeps its initial weights, as their code);
- pure losses: :func:`normalized_q_loss` (the Q term divided by a detached mean |Q|) and
  :func:`select_candidates`;
- :class:`GenerativeOfflineAlgorithm`: the pieces every algorithm below composes in its own
  ``_setup`` and ``update`` (the actor and its Adam, the EMA copy, the twin critics and their TD
  update, optionally with the max-Q backup, the Q-guided actor loss), and acting with candidate
  resampling. Each algorithm subclasses it directly: variants share functions, not a chain of
  ``super()`` calls.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.algos.offpolicy.base import polyak_update


@dataclass
class GenerativeOfflineConfig(OfflineConfig):
    """Settings every generative offline algorithm has: Diffusion-QL's networks and the evaluation protocol."""

    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of the policy's denoiser / velocity network (Diffusion-QL: 3x256)"""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of each critic (Diffusion-QL: 3x256)"""
    activation: str = "mish"
    """hidden activation of every MLP (Diffusion-QL: Mish)"""
    act_candidates: int = 1
    """actions sampled per observation when acting, one kept by its target Q (1: off; Diffusion-QL, EDP and Consistency-AC's code evaluate with 50); needs a critic"""
    act_temperature: float = 1.0
    """with act_candidates > 1: keep a softmax(Q / act_temperature) draw (Diffusion-QL's code: 1, CleanDiffuser: 0.5), 0 or deterministic acting: the argmax"""
    eval_stochastic: bool = True
    """evaluate with act(deterministic=False), samples of the policy, as the papers' code; False: the zero-noise action (and the argmax candidate)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.act_candidates < 1 or self.act_temperature < 0:
            raise ValueError(
                f"act_candidates must be >= 1 and act_temperature >= 0; got {self.act_candidates}, {self.act_temperature}"
            )


@dataclass
class EMAConfig:
    """Diffusion-QL's EMA copy of the policy (the TD target's actor; Consistency-BC/AC's consistency target)."""

    ema_decay: float = 0.995
    """decay of the EMA copy of the policy"""
    ema_every: int = 5
    """update the EMA copy every this many gradient updates"""
    ema_start: int = 1000
    """the EMA copy keeps its initial weights until this update (Diffusion-QL's step_start_ema)"""

    def check_ema(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0 or self.ema_every < 1 or self.ema_start < 0:
            raise ValueError(
                f"ema_decay must lie in [0, 1), ema_every >= 1 and ema_start >= 0; got {self.ema_decay}, "
                f"{self.ema_every}, {self.ema_start}"
            )


@dataclass
class QGuidanceConfig:
    """The Q term of Diffusion-QL-style actors (Diffusion-QL, EDP, Consistency-AC) and the max-Q backup."""

    eta: float = 1.0
    """weight of the normalised Q term in the actor loss (Diffusion-QL and Consistency-AC locomotion: 1; EDP's guide_coef: 1)"""
    max_q_backup: bool = False
    """TD targets take, per critic, the max Q over max_q_backup_samples sampled next actions (Diffusion-QL's AntMaze setting)"""
    max_q_backup_samples: int = 10
    """next actions sampled per transition for the max-Q backup"""

    def check_q_guidance(self) -> None:
        if self.eta < 0 or self.max_q_backup_samples < 1:
            raise ValueError(f"eta must be >= 0 and max_q_backup_samples >= 1; got {self.eta}, {self.max_q_backup_samples}")


def ema_update(target: list[torch.Tensor], online: list[torch.Tensor], decay: float) -> None:
    """theta_ema <- decay theta_ema + (1 - decay) theta  (Wang et al. 2023's EMA actor, Polyak averaging)."""
    polyak_update(target, online, 1.0 - decay)


def normalized_q_loss(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-E[Q] / E|Q'| with the scale detached  (Wang et al. 2023's L_q; Fujimoto & Gu 2021's lambda)."""
    return -q.mean() / scale.abs().mean().detach()


def select_candidates(q: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per row of ``q [B, N]``: a draw from softmax(Q / temperature), the argmax at 0 (Wang et al. 2023's code, from BCQ)."""
    if temperature == 0:
        return q.argmax(-1)
    return torch.multinomial(torch.softmax(q / temperature, -1), 1, generator=generator).squeeze(-1)


def td_losses(
    critic: nn.Module,
    critic_target: nn.Module,
    batch: dict[str, torch.Tensor],
    sample_next: Callable[[torch.Tensor], torch.Tensor],
    backup_samples: int = 0,
    aggregate: str = "min",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each critic's MSE to y = r + gamma (1 - d) agg_i Q'_i(s', a'), a' = ``sample_next(s')``; and Q(s, a).

    ``backup_samples > 0``: Diffusion-QL's max-Q backup, ``max`` over that many sampled ``a'``
    per critic before the ``agg`` over critics (Wang et al. 2023, appendix; Kumar et al. 2020).
    ``aggregate``: ``min`` (clipped double Q) or ``mean`` (FQL's default). Returns ``[C]`` losses.
    """
    next_obs = batch["next_obs"]
    with torch.no_grad():
        if backup_samples > 0:
            rep = next_obs.repeat_interleave(backup_samples, 0)
            q_next = critic_target(rep, sample_next(rep)).view(-1, next_obs.shape[0], backup_samples).max(-1).values
        else:
            q_next = critic_target(next_obs, sample_next(next_obs))
        q_next = q_next.min(0).values if aggregate == "min" else q_next.mean(0)
        y = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminated"]) * q_next
    q = critic(batch["obs"], batch["actions"])
    return (q - y).square().mean(1), q.detach()


class GenerativeOfflineAlgorithm(OfflineAlgorithm):
    """Base of the generative offline algorithms. Subclasses set ``self.critic`` and
    ``self.critic_target`` (or leave them None: no candidate resampling) in ``_setup``."""

    config: GenerativeOfflineConfig
    critic: nn.Module | None = None
    critic_target: nn.Module | None = None

    def __init__(self, dataset: Any, config: GenerativeOfflineConfig | None = None, policy: nn.Module | None = None) -> None:
        super().__init__(dataset, config, policy)
        if self.config.act_candidates > 1 and self.critic_target is None:
            raise ValueError(
                f"act_candidates={self.config.act_candidates} scores candidate actions with a critic, and "
                f"{type(self).__name__} has none; keep act_candidates=1, or train one with a critic "
                "(DiffusionQL, EDP, ConsistencyAC, FQL)"
            )

    # --- the shared pieces of the updates ------------------------------------------------------
    def setup_actor(self, build: Callable[[], nn.Module], learning_rate: float) -> None:
        """The policy (``build()``, unless one was passed in) on the device, and its Adam (``optimizers['actor']``)."""
        if self.policy is None:
            self.policy = build()
        self.policy = self.policy.to(self.device)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), learning_rate)

    def setup_ema(self) -> None:
        """``policy_ema``: a frozen copy of the policy that :meth:`update_ema` moves (Diffusion-QL's EMA actor)."""
        self.policy_ema = copy.deepcopy(self.policy).requires_grad_(False)
        self._policy_params, self._ema_params = list(self.policy.parameters()), list(self.policy_ema.parameters())

    def update_ema(self) -> None:
        """Move the EMA copy towards the policy when :meth:`ema_due`."""
        if self.ema_due():
            with torch.no_grad():
                ema_update(self._ema_params, self._policy_params, self.config.ema_decay)

    def setup_critics(self, learning_rate: float, layer_norm: bool = False) -> None:
        """Twin critics, their frozen target and their Adam (``optimizers['critic']``)."""
        self.critic, self.critic_target = self.twin_critics(layer_norm=layer_norm)
        self.optimizers["critic"] = self.adam(self.critic.parameters(), learning_rate)
        self._critic_params, self._critic_target_params = list(self.critic.parameters()), list(self.critic_target.parameters())

    def update_critic_targets(self) -> None:
        """Polyak-average the target critics towards the critics (rate ``config.tau``)."""
        with torch.no_grad():
            polyak_update(self._critic_target_params, self._critic_params, self.config.tau)

    def critic_step(
        self, batch: dict[str, torch.Tensor], sample_next: Callable[[torch.Tensor], torch.Tensor], max_norm: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """One step of the twin critics on the sum of their TD losses (:func:`td_losses`, with the max-Q
        backup when ``config.max_q_backup``); returns the critic metrics."""
        cfg = self.config
        losses, q = td_losses(
            self.critic,
            self.critic_target,
            batch,
            sample_next,
            cfg.max_q_backup_samples if getattr(cfg, "max_q_backup", False) else 0,
        )
        loss = losses.sum()
        self.step("critic", loss, max_norm)
        return {"critic_loss": loss.detach(), "q_mean": q.mean()}

    def q_guided_loss(
        self, obs: torch.Tensor, bc_loss: torch.Tensor, pi: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """bc_loss + eta L_q with L_q = -E[Q_j(s, pi)] / E|Q_j'(s, pi)|, j a random one of the twin critics
        (Wang et al. 2023's actor loss; Ding & Jin 2024's), the critics' weights detached."""
        q_pi = self.critic(obs, pi, detach_params=True)
        j = torch.randint(0, 2, (), device=obs.device)  # torch's generator: part of the checkpoint, unlike numpy's
        q_loss = normalized_q_loss(q_pi[j], q_pi[1 - j])
        return bc_loss + self.config.eta * q_loss, {"bc_loss": bc_loss.detach(), "q_loss": q_loss.detach()}

    def ema_due(self) -> bool:
        """Whether this update moves the EMA copy (counted in Python: no host sync)."""
        cfg = self.config
        return self.num_updates >= cfg.ema_start and self.num_updates % cfg.ema_every == 0

    # --- acting: candidate resampling ----------------------------------------------------------
    @torch.no_grad()
    def candidate_q(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """What ranks candidates: the target critics' min Q (Diffusion-QL's ``critic_target.q_min``)."""
        return self.critic_target(obs, actions).min(0).values

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        n = self.config.act_candidates
        if n == 1:
            return super()._act(obs, deterministic)
        norm = self.obs_normalizer(obs).repeat_interleave(n, 0)
        candidates = self.policy.act(norm, deterministic=False).clamp(-1.0, 1.0)  # zero noise would give n copies
        q = self.candidate_q(norm, candidates).view(obs.shape[0], n)
        pick = select_candidates(q, 0.0 if deterministic else self.config.act_temperature)
        action = candidates.view(obs.shape[0], n, -1)[torch.arange(obs.shape[0], device=obs.device), pick]
        return self.to_env_bounds(action)

    @property
    def evaluate_deterministic(self) -> bool:
        """Evaluation samples the policy with ``eval_stochastic`` (the papers' protocol)."""
        return not self.config.eval_stochastic
