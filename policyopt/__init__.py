"""policyopt: policy-optimisation algorithms for continuous and classic control, under one name.

    from policyopt import PPO, PPOConfig, make

    env = make("CartPole-v1", num_envs=8, seed=0)
    agent = PPO(env, PPOConfig()).learn(100_000)

Every algorithm and its config are here; the subpackages hold the rest:
:mod:`policyopt.algos` (algorithms by family, and the run machinery), :mod:`policyopt.nets`
(networks and policies), :mod:`policyopt.buffers` (rollout and replay buffers, offline datasets,
samplers) and :mod:`policyopt.vecenvs` (torch-native vectorised envs).
"""

from policyopt.algos import *  # noqa: F401,F403  (every algorithm and config, listed in policyopt.algos.__all__)
from policyopt.algos import __all__ as _algos_all
from policyopt.vecenvs import make

__all__ = [*_algos_all, "make"]
