"""Neural networks: MLPs, distribution heads, critics, off-policy actors and the on-policy policy seam.

Depends only on torch (and gymnasium for the spaces in :func:`make_policy`).
"""

from policyopt.nets.actors import DeterministicActor, GaussianActor, SquashedGaussianActor
from policyopt.nets.critics import CriticEnsemble, QCritic, ValueCritic
from policyopt.nets.heads import CategoricalHead, DiagGaussianHead, StateDependentNoiseHead
from policyopt.nets.mlp import ACTIVATIONS, activation_class, body_out_dim, default_init, mlp, mlp_body, orthogonal_init
from policyopt.nets.policies import (
    CategoricalPolicy,
    DistributionPolicy,
    GaussianPolicy,
    GSDEPolicy,
    StochasticPolicy,
    make_policy,
)
from policyopt.nets.spec import RecordsInit, UntrustedClassError, build_module, module_spec, trusted_classes
from policyopt.nets.generative import ConsistencyPolicy, DiffusionPolicy, FlowPolicy, GenerativePolicy

__all__ = [
    "ACTIVATIONS",
    "activation_class",
    "body_out_dim",
    "mlp",
    "mlp_body",
    "orthogonal_init",
    "default_init",
    "RecordsInit",
    "module_spec",
    "build_module",
    "trusted_classes",
    "UntrustedClassError",
    "DiagGaussianHead",
    "CategoricalHead",
    "StateDependentNoiseHead",
    "ValueCritic",
    "QCritic",
    "CriticEnsemble",
    "SquashedGaussianActor",
    "DeterministicActor",
    "GaussianActor",
    "StochasticPolicy",
    "DistributionPolicy",
    "GaussianPolicy",
    "GSDEPolicy",
    "CategoricalPolicy",
    "make_policy",
    "GenerativePolicy",
    "DiffusionPolicy",
    "FlowPolicy",
    "ConsistencyPolicy",
]
