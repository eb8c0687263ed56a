"""Vectorized environments whose state lives in torch tensors.

``make(env_id, num_envs, device=..., seed=...)`` is the entry point: it returns the native
tensor env for the ids in :func:`registered_ids` and a gymnasium adapter for any other
gymnasium id. All of them follow the :class:`TorchVecEnv` conventions: torch tensors on
``env.device``, ``terminated`` and ``truncated`` apart, same-step autoreset with
``info["final_obs"]``.
"""

from vecenvs.core import TorchVecEnv, TorchVecEnvWrapper, check_actions
from vecenvs.registry import make, register, registered_ids
from vecenvs import classic  # noqa: F401  (registers the classic-control ids)

try:
    from vecenvs import mujoco  # noqa: F401  (registers the MuJoCo ids; backends import mujoco lazily)
except ImportError:
    pass
from vecenvs.adapter import GymnasiumVecEnv
from vecenvs.wrappers import ClipAction, NormalizeObservation, NormalizeReward, RecordEpisodeStatistics, RescaleAction

__all__ = [
    "TorchVecEnv",
    "TorchVecEnvWrapper",
    "GymnasiumVecEnv",
    "check_actions",
    "make",
    "register",
    "registered_ids",
    "NormalizeObservation",
    "NormalizeReward",
    "RescaleAction",
    "ClipAction",
    "RecordEpisodeStatistics",
]
