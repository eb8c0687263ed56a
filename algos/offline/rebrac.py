"""ReBRAC: TD3+BC revisited (Tarasov, Kurenkov, Nikulin & Kolesnikov, NeurIPS 2023, arXiv:2305.09836).

TD3+BC with a behaviour-cloning penalty in the critic's target too, layer norm in the critics,
deeper networks, large batches and per-dataset penalty weights. As CORL's ``rebrac.py``:

- actor: ``mean(beta_actor ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s)))``, the squared error
  summed over the action dimensions, the minimum over both online critics, and
  ``lambda = 1 / mean|min_i Q_i|`` detached (1 without ``normalize_q``);
- critic target: ``y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - beta_critic ||a' - a'_data||^2)``
  with ``a'`` TD3's smoothed target action and ``a'_data`` the dataset's next action (the
  episode's last step repeats its own action); timeouts bootstrap;
- actor and target updates every ``policy_frequency`` critic updates, the actor through the
  critics just updated, on the same batch.

CORL's per-dataset ``(actor_bc_coef, critic_bc_coef)`` for Gym-MuJoCo v2 locomotion:

=====================  ===========  ==============  ===================
dataset                halfcheetah  hopper          walker2d
=====================  ===========  ==============  ===================
medium                 0.001, 0.01  0.01, 0.01      0.05, 0.1
medium-replay          0.01, 0.001  0.05, 0.5       0.05, 0.01
medium-expert          0.01, 0.1    0.1, 0.01       0.01, 0.01
=====================  ===========  ==============  ===================

Differences from CORL: the networks keep this library's initialisation (CORL's is EDAC's: bias
0.1, small uniform output layers), the critics' layer norm sits before the activation (CORL:
after it), the actor has no layer norm option (CORL's default is off too), and the first actor
update is the ``policy_frequency``-th, as TD3+BC here (CORL: the first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policyopt.algos.offline.base import OfflineConfig
from policyopt.algos.offpolicy.td3 import TargetSmoothing, smoothed_critic_loss, smoothed_target_action
from policyopt.algos.offline.td3bc import TD3BC


@dataclass
class ReBRACConfig(TargetSmoothing, OfflineConfig):
    """ReBRAC settings; the defaults are CORL's ``rebrac.py`` (gamma 0.99 and tau 5e-3 are inherited)."""

    batch_size: int = 1024
    """transitions per gradient update (CORL: 1024)"""
    normalize_obs: bool = False
    """normalise observations by the dataset's mean and std (CORL's ReBRAC: no state normalisation)"""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of the deterministic actor (no layer norm)"""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of each critic"""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden linear layer of the critics"""
    actor_learning_rate: float = 1e-3
    """Adam learning rate of the actor"""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the twin critics"""
    actor_bc_coef: float = 1.0
    """beta_actor: weight of ||pi(s) - a||^2 in the actor loss (per-dataset values: the module docstring)"""
    critic_bc_coef: float = 1.0
    """beta_critic: weight of ||a' - a'_data||^2 subtracted from the target Q (per-dataset values: module docstring)"""
    normalize_q: bool = True
    """divide the actor's Q term by mean |Q(s, pi(s))| (detached)"""
    online_mixing: float | None = 0.5
    """offline-to-online: share of each batch from the agent's own transitions (ReBRAC's fine-tuning: half)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_smoothing()
        if (
            not self.actor_learning_rate > 0
            or not self.critic_learning_rate > 0
            or self.actor_bc_coef < 0
            or self.critic_bc_coef < 0
        ):
            raise ValueError(
                f"learning rates must be > 0 and actor_bc_coef, critic_bc_coef >= 0; got lrs "
                f"{self.actor_learning_rate}, {self.critic_learning_rate}, bc coefs {self.actor_bc_coef}, "
                f"{self.critic_bc_coef}"
            )


def rebrac_actor_loss(
    q_pi: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor, beta: float, normalize_q: bool = True
) -> torch.Tensor:
    """E[beta ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s))], lambda = 1 / E|min_i Q_i|  (Tarasov et al. 2023, sec. 3).

    ``q_pi [C, B]`` (every critic), ``pi`` and ``actions [B, A]``. As CORL's ``update_actor``: the
    squared error is summed over the action dimensions, and lambda is detached (1 without ``normalize_q``).
    """
    q = q_pi.min(0).values
    lmbda = 1.0 / q.abs().mean().detach() if normalize_q else 1.0
    return (beta * (pi - actions).square().sum(-1) - lmbda * q).mean()


def rebrac_critic_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    q_next: torch.Tensor,
    next_actions: torch.Tensor,
    data_next_actions: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """y = r + gamma (1 - d) (min_i Q'_i(s', a') - beta ||a' - a'_data||^2)  (Tarasov et al. 2023, sec. 3).

    ``q_next [C, B]``; ``next_actions`` the smoothed target actions, ``data_next_actions`` the dataset's;
    the squared error summed over the action dimensions (CORL's ``update_critic``).
    """
    penalty = beta * (next_actions - data_next_actions).square().sum(-1)
    return rewards + discounts * (1.0 - terminated) * (q_next.min(0).values - penalty)


class ReBRAC(TD3BC):
    """ReBRAC with any actor whose ``forward(obs)`` gives actions in [-1, 1]: TD3+BC's networks and
    loop (:class:`policyopt.algos.offline.td3bc.TD3BC`) with ReBRAC's losses, learning rates and critic layer norm."""

    config_class = ReBRACConfig
    config: ReBRACConfig
    default_temperature = 0.1  # Hong et al. have no ReBRAC runs; TD3+BC's value

    def learning_rates(self) -> tuple[float, float]:
        return self.config.actor_learning_rate, self.config.critic_learning_rate

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The critics' target y with the smoothed target action and the critic BC penalty (no gradients)."""
        cfg = self.config
        with torch.no_grad():
            next_actions = smoothed_target_action(self.policy_target(batch["next_obs"]), cfg.policy_noise, cfg.noise_clip)
            return rebrac_critic_target(
                batch["rewards"],
                batch["discounts"],
                batch["terminated"],
                self.critic_target(batch["next_obs"], next_actions),
                next_actions,
                batch["next_actions"],
                cfg.critic_bc_coef,
            )

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_i E[(Q_i(s, a) - y)^2], and Q(s, a) (compiled)."""
        return smoothed_critic_loss(self, batch, y=self.target(batch))

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """ReBRAC's actor loss through both critics, whose weights are detached, and the BC error (compiled)."""
        pi = self.policy(batch["obs"])
        q_pi = self.critic(batch["obs"], pi, detach_params=True)
        loss = rebrac_actor_loss(q_pi, pi, batch["actions"], self.config.actor_bc_coef, self.config.normalize_q)
        return loss, {"bc_mse_policy": (pi.detach() - batch["actions"]).square().sum(-1).mean()}
