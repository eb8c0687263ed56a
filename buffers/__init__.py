"""Data storage for the algorithms. Depends only on torch."""

from buffers.replay import ReplayBuffer
from buffers.rollout import STORED_PREFIX, RolloutBuffer, gae, stored_of

__all__ = ["RolloutBuffer", "ReplayBuffer", "gae", "stored_of", "STORED_PREFIX"]
