"""Data storage for the algorithms. Depends only on torch, numpy and gymnasium (h5py for hdf5 files)."""

from policyopt.buffers.dataset import (
    D4RL_REF_SCORES,
    REWARD_CONVENTIONS,
    DatasetError,
    EpisodeRecorder,
    OfflineDataset,
    load_dataset,
    concatenate,
    mix_datasets,
    recorded_env_id,
    select_episodes,
)
from policyopt.buffers.replay import ReplayBuffer
from policyopt.buffers.rollout import STORED_PREFIX, RolloutBuffer, gae, stored_of
from policyopt.buffers.samplers import SAMPLERS, IndexSampler, TrajectoryWeightedSampler, UniformSampler, make_sampler

__all__ = [
    "RolloutBuffer",
    "ReplayBuffer",
    "gae",
    "stored_of",
    "STORED_PREFIX",
    "OfflineDataset",
    "load_dataset",
    "DatasetError",
    "EpisodeRecorder",
    "concatenate",
    "select_episodes",
    "mix_datasets",
    "recorded_env_id",
    "D4RL_REF_SCORES",
    "REWARD_CONVENTIONS",
    "make_sampler",
    "SAMPLERS",
    "IndexSampler",
    "UniformSampler",
    "TrajectoryWeightedSampler",
]
