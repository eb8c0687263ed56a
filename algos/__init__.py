"""Policy-optimisation algorithms: ``from algos import PPO, PPOConfig``.

Every algorithm has a config dataclass, ``learn(total_steps)``, ``act(obs)``, ``save(path)``
and ``load(path)``. Online ones take an env (``PPO(env, config)``), offline ones a dataset
(``IQL(dataset, IQLConfig(weighting="aw"))``).
"""

from algos.base import Algorithm, AlgorithmConfig, TrainingDivergedError
from algos.bc import BC, BCConfig
from algos.consistency import ConsistencyAC, ConsistencyACConfig, ConsistencyBC, ConsistencyBCConfig
from algos.cql import CQL, CQLConfig
from algos.diffusion_bc import DiffusionBC, DiffusionBCConfig
from algos.diffusion_ql import DiffusionQL, DiffusionQLConfig
from algos.dppo import DPPO, DPPOConfig
from algos.dsrl import DSRL, DSRLConfig
from algos.fpo import FPO, FPOConfig
from algos.edp import EDP, EDPConfig
from algos.fql import FQL, FQLConfig
from algos.iql import IQL, IQLConfig
from algos.offline import OfflineAlgorithm, OfflineConfig
from algos.onpolicy import OnPolicyAlgorithm, OnPolicyConfig
from algos.offpolicy import OffPolicyAlgorithm, OffPolicyConfig
from algos.ppo import PPO, PPOConfig
from algos.rebrac import ReBRAC, ReBRACConfig
from algos.sac import SAC, SACConfig
from algos.spo import SPO, SPOConfig
from algos.td3 import TD3, TD3Config
from algos.td3bc import TD3BC, TD3BCConfig
from algos.trpo import TRPO, TRPOConfig

ALGORITHMS = {"ppo": PPO, "spo": SPO, "trpo": TRPO, "sac": SAC, "td3": TD3, "bc": BC, "td3bc": TD3BC, "iql": IQL, "cql": CQL,
              "rebrac": ReBRAC, "diffusion_bc": DiffusionBC, "diffusion_ql": DiffusionQL, "edp": EDP,
              "consistency_bc": ConsistencyBC, "consistency_ac": ConsistencyAC, "fql": FQL, "dppo": DPPO, "fpo": FPO, "dsrl": DSRL}  # keys: the scripts' names

__all__ = [
    "ALGORITHMS",
    "BC",
    "BCConfig",
    "CQL",
    "CQLConfig",
    "ConsistencyAC",
    "ConsistencyACConfig",
    "ConsistencyBC",
    "ConsistencyBCConfig",
    "DiffusionBC",
    "DiffusionBCConfig",
    "DiffusionQL",
    "DiffusionQLConfig",
    "DPPO",
    "DPPOConfig",
    "DSRL",
    "DSRLConfig",
    "EDP",
    "EDPConfig",
    "FQL",
    "FQLConfig",
    "FPO",
    "FPOConfig",
    "IQL",
    "IQLConfig",
    "OfflineAlgorithm",
    "OfflineConfig",
    "TD3BC",
    "TD3BCConfig",
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
    "ReBRAC",
    "ReBRACConfig",
    "SPO",
    "SPOConfig",
    "TRPO",
    "TRPOConfig",
]
