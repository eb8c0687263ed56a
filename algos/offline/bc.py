"""BC: behaviour cloning, the offline baseline (Pomerleau 1991; CORL's ``any_percent_bc.py``).

A deterministic tanh actor regressed onto the dataset's actions. With ``weighting="topk"``
and ``topk_fraction=0.1`` it is close to CORL's "10% BC" (which ranks by discounted return).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.nets import DeterministicActor


@dataclass
class BCConfig(OfflineConfig):
    """BC settings; the defaults are CORL's (2x256 actor, Adam 3e-4, batch 256)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the actor"""


def bc_loss(predicted: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """E ||pi(s) - a||^2, the mean over the batch and the action dimensions (CORL's MSE)."""
    return (predicted - actions).square().mean()


class BC(OfflineAlgorithm):
    """Behaviour cloning with any actor whose ``forward(obs)`` gives actions in [-1, 1]."""

    config_class = BCConfig
    config: BCConfig

    def _setup(self) -> None:
        cfg = self.config
        if self.policy is None:
            self.policy = DeterministicActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.activation)
        self.policy = self.policy.to(self.device)
        self.optimizers["actor"] = self.adam(self.policy.parameters(), cfg.learning_rate)
        self._loss = self.compiled(self.actor_loss)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, "obs_normalizer": self.obs_normalizer}

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The BC loss on a batch (compiled with ``config.compile``)."""
        return bc_loss(self.policy(batch["obs"]), batch["actions"])

    def update(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        loss = self._loss(batch)
        self.step("actor", loss)
        return {"actor_loss": loss.detach()}
