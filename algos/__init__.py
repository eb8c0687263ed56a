"""Policy-optimisation algorithms: ``from algos import PPO, PPOConfig``.

Every algorithm has a config dataclass, ``learn(total_steps)``, ``act(obs)``, ``save(path)``
and ``load(path)``.
"""

from algos.base import Algorithm, AlgorithmConfig, TrainingDivergedError
from algos.onpolicy import OnPolicyAlgorithm, OnPolicyConfig
from algos.offpolicy import OffPolicyAlgorithm, OffPolicyConfig
from algos.ppo import PPO, PPOConfig
from algos.sac import SAC, SACConfig
from algos.spo import SPO, SPOConfig
from algos.td3 import TD3, TD3Config
from algos.trpo import TRPO, TRPOConfig

ALGORITHMS = {"ppo": PPO, "spo": SPO, "trpo": TRPO, "sac": SAC, "td3": TD3}

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmConfig",
    "OnPolicyAlgorithm",
    "OnPolicyConfig",
    "OffPolicyAlgorithm",
    "OffPolicyConfig",
    "SAC",
    "SACConfig",
    "TD3",
    "TD3Config",
    "TrainingDivergedError",
    "PPO",
    "PPOConfig",
    "SPO",
    "SPOConfig",
    "TRPO",
    "TRPOConfig",
]
