"""Data storage for the algorithms. Depends only on torch."""

from buffers.rollout import STORED_PREFIX, RolloutBuffer, gae, stored_of

__all__ = ["RolloutBuffer", "gae", "stored_of", "STORED_PREFIX"]
