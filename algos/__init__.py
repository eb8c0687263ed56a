"""Policy-optimisation algorithms: ``from policyopt.algos import PPO, PPOConfig`` (also ``from policyopt import PPO``).

Every algorithm has a config dataclass, ``learn(total_steps)``, ``act(obs)``, ``save(path)``
and ``load(path)``. Online ones take an env (``PPO(env, config)``), offline ones a dataset
(``IQL(dataset, IQLConfig(weighting="aw"))``).
"""

from policyopt.algos.core.base import Algorithm, AlgorithmConfig, TrainingDivergedError
from policyopt.algos.offline.bc import BC, BCConfig
from policyopt.algos.offline.generative.consistency import ConsistencyAC, ConsistencyACConfig, ConsistencyBC, ConsistencyBCConfig
from policyopt.algos.offline.cql import CQL, CQLConfig
from policyopt.algos.offline.generative.diffusion_bc import DiffusionBC, DiffusionBCConfig
from policyopt.algos.offline.generative.diffusion_ql import DiffusionQL, DiffusionQLConfig
from policyopt.algos.onpolicy.dppo import DPPO, DPPOConfig
from policyopt.algos.offpolicy.dsrl import DSRL, DSRLConfig
from policyopt.algos.onpolicy.fpo import FPO, FPOConfig
from policyopt.algos.offline.generative.edp import EDP, EDPConfig
from policyopt.algos.offline.generative.fql import FQL, FQLConfig
from policyopt.algos.offline.iql import IQL, IQLConfig
from policyopt.algos.offline.base import OfflineAlgorithm, OfflineConfig
from policyopt.algos.onpolicy.base import OnPolicyAlgorithm, OnPolicyConfig
from policyopt.algos.offpolicy.base import OffPolicyAlgorithm, OffPolicyConfig
from policyopt.algos.onpolicy.ppo import PPO, PPOConfig
from policyopt.algos.offline.rebrac import ReBRAC, ReBRACConfig
from policyopt.algos.offpolicy.sac import SAC, SACConfig
from policyopt.algos.onpolicy.spo import SPO, SPOConfig
from policyopt.algos.offpolicy.td3 import TD3, TD3Config
from policyopt.algos.offline.td3bc import TD3BC, TD3BCConfig
from policyopt.algos.onpolicy.trpo import TRPO, TRPOConfig

ALGORITHMS = {
    "ppo": PPO,
    "spo": SPO,
    "trpo": TRPO,
    "sac": SAC,
    "td3": TD3,
    "bc": BC,
    "td3bc": TD3BC,
    "iql": IQL,
    "cql": CQL,
    "rebrac": ReBRAC,
    "diffusion_bc": DiffusionBC,
    "diffusion_ql": DiffusionQL,
    "edp": EDP,
    "consistency_bc": ConsistencyBC,
    "consistency_ac": ConsistencyAC,
    "fql": FQL,
    "dppo": DPPO,
    "fpo": FPO,
    "dsrl": DSRL,
}  # keys: the scripts' names

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
