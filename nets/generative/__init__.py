"""Generative policies: diffusion, flow and consistency models of actions behind one interface.

Blocks (time embeddings, conditional backbones, schedules, samplers) and the three policy
classes built from them. Depends only on torch, like the rest of :mod:`nets`.
"""

from policyopt.nets.generative.backbones import BACKBONES, ConditionalMLP, ConditionalResidualMLP, ResidualBlock, make_backbone
from policyopt.nets.generative.base import GenerativePolicy
from policyopt.nets.generative.consistency import ConsistencyPolicy
from policyopt.nets.generative.diffusion import SAMPLERS, DiffusionPolicy
from policyopt.nets.generative.embeddings import TIME_EMBEDDINGS, FourierEmbedding, SinusoidalEmbedding, time_embedding
from policyopt.nets.generative.flow import SOLVERS, FlowPolicy
from policyopt.nets.generative.onpolicy import DiffusionPPOPolicy, FlowPPOPolicy
from policyopt.nets.generative.samplers import (
    consistency_sample,
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    dpm_solver_2m_sample,
    euler_sample,
    gaussian_chain,
    midpoint_sample,
)
from policyopt.nets.generative.schedules import (
    BETA_SCHEDULES,
    DiffusionSchedule,
    consistency_num_scales,
    consistency_scalings,
    cosine_betas,
    flow_interpolate,
    flow_velocity,
    karras_sigmas,
    vp_linear_betas,
)

__all__ = [
    "SinusoidalEmbedding",
    "FourierEmbedding",
    "TIME_EMBEDDINGS",
    "time_embedding",
    "ConditionalMLP",
    "ConditionalResidualMLP",
    "ResidualBlock",
    "BACKBONES",
    "make_backbone",
    "DiffusionSchedule",
    "BETA_SCHEDULES",
    "vp_linear_betas",
    "cosine_betas",
    "karras_sigmas",
    "consistency_num_scales",
    "consistency_scalings",
    "flow_interpolate",
    "flow_velocity",
    "gaussian_chain",
    "ddpm_step",
    "ddim_step",
    "ddpm_sample",
    "ddim_sample",
    "dpm_solver_2m_sample",
    "euler_sample",
    "midpoint_sample",
    "consistency_sample",
    "GenerativePolicy",
    "DiffusionPolicy",
    "FlowPolicy",
    "ConsistencyPolicy",
    "DiffusionPPOPolicy",
    "FlowPPOPolicy",
    "SAMPLERS",
    "SOLVERS",
]
