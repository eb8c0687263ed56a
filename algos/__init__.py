"""Policy-optimisation algorithms: ``from algos import PPO, PPOConfig``.

Every algorithm has a config dataclass, ``learn(total_steps)``, ``act(obs)``, ``save(path)``
and ``load(path)``.
"""

from algos.onpolicy import OnPolicyAlgorithm, OnPolicyConfig, TrainingDivergedError
from algos.ppo import PPO, PPOConfig
from algos.spo import SPO, SPOConfig
from algos.trpo import TRPO, TRPOConfig

ALGORITHMS = {"ppo": PPO, "spo": SPO, "trpo": TRPO}

__all__ = [
    "ALGORITHMS",
    "OnPolicyAlgorithm",
    "OnPolicyConfig",
    "TrainingDivergedError",
    "PPO",
    "PPOConfig",
    "SPO",
    "SPOConfig",
    "TRPO",
    "TRPOConfig",
]
