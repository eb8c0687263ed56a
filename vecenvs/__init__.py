"""Vectorized environments whose state lives in torch tensors.

``make(env_id, num_envs, device=..., seed=...)`` is the entry point: it returns the native
tensor env for the ids in :func:`registered_ids` and a gymnasium adapter for any other
gymnasium id. All of them follow the :class:`TorchVecEnv` conventions: torch tensors on
``env.device``, ``terminated`` and ``truncated`` apart, same-step autoreset with
``info["final_obs"]``. :class:`NumpyVecEnv` is a NumPy ``gymnasium.vector.VectorEnv`` view
of any of them, ``SB3VecEnv`` (needs stable-baselines3) a Stable-Baselines3 ``VecEnv`` one.
"""

from policyopt.vecenvs.core import TorchVecEnv, TorchVecEnvWrapper, as_actions, check_actions, check_device, check_num_envs
from policyopt.vecenvs.registry import make, register, registered_ids
from policyopt.vecenvs import classic  # noqa: F401  (registers the classic-control ids)

try:
    from policyopt.vecenvs import mujoco  # noqa: F401  (registers the MuJoCo ids; backends import mujoco lazily)
except ImportError:
    pass
from policyopt.vecenvs.adapter import GymnasiumVecEnv
from policyopt.vecenvs.numpy_env import NumpyVecEnv
from policyopt.vecenvs.wrappers import ClipAction, NormalizeObservation, NormalizeReward, RecordEpisodeStatistics, RescaleAction

__all__ = [
    "TorchVecEnv",
    "TorchVecEnvWrapper",
    "GymnasiumVecEnv",
    "NumpyVecEnv",
    "as_actions",
    "check_actions",
    "check_device",
    "check_num_envs",
    "make",
    "register",
    "registered_ids",
    "NormalizeObservation",
    "NormalizeReward",
    "RescaleAction",
    "ClipAction",
    "RecordEpisodeStatistics",
]


def __getattr__(name: str):
    # SB3VecEnv is resolved on first use, so that importing vecenvs never imports
    # stable_baselines3 (an optional dependency). It is left out of __all__ for the same reason.
    if name == "SB3VecEnv":
        from policyopt.vecenvs.sb3 import SB3VecEnv

        return SB3VecEnv
    raise AttributeError(f"module 'vecenvs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "SB3VecEnv"])
