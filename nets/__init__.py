"""Neural networks: MLPs, distribution heads, critics and the on-policy policy seam.

Depends only on torch (and gymnasium for the spaces in :func:`make_policy`).
"""

from nets.critics import CriticEnsemble, QCritic, ValueCritic
from nets.heads import CategoricalHead, DiagGaussianHead, StateDependentNoiseHead
from nets.mlp import ACTIVATIONS, activation_class, body_out_dim, mlp, mlp_body, orthogonal_init
from nets.policies import CategoricalPolicy, DistributionPolicy, GaussianPolicy, GSDEPolicy, StochasticPolicy, make_policy

__all__ = [
    "ACTIVATIONS",
    "activation_class",
    "body_out_dim",
    "mlp",
    "mlp_body",
    "orthogonal_init",
    "DiagGaussianHead",
    "CategoricalHead",
    "StateDependentNoiseHead",
    "ValueCritic",
    "QCritic",
    "CriticEnsemble",
    "StochasticPolicy",
    "DistributionPolicy",
    "GaussianPolicy",
    "GSDEPolicy",
    "CategoricalPolicy",
    "make_policy",
]
