"""Stable-Baselines3's ``VecEnv`` interface over our tensor envs.

``SB3VecEnv(vecenvs.make("Pendulum-v1", num_envs=16))`` can be handed to any SB3
algorithm or ``VecEnvWrapper`` (``VecNormalize``, ``VecMonitor``, ...). This module imports
``stable_baselines3``; ``vecenvs`` itself imports it only when ``vecenvs.SB3VecEnv`` is
first used.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import DictInfoToList

try:
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "vecenvs.SB3VecEnv needs stable-baselines3, which is not installed; "
        "install it with: pip install 'stable-baselines3>=2.3' (or 'policyopt[bench]')"
    ) from e

from policyopt.vecenvs.numpy_env import NumpyVecEnv

__all__ = ["SB3VecEnv"]


def _chain(env: Any) -> list[Any]:
    """``env`` and every env it wraps, outermost first."""
    out = [env]
    while hasattr(out[-1], "env") and isinstance(out[-1].env, VectorEnv):
        out.append(out[-1].env)
    return out


class SB3VecEnv(VecEnv):
    """One of our batched envs (native, wrapped or adapter) as an SB3 ``VecEnv``.

    SB3's conventions, as ``DummyVecEnv`` has them: ``reset()`` returns the observations
    only (infos in ``reset_infos``); ``step`` returns NumPy ``obs``, float32 ``rewards``,
    bool ``dones = terminated | truncated`` and a list of per-env info dicts, where a
    finished env has ``"terminal_observation"`` (its last observation; the returned
    ``obs`` row is already the next episode's first) and every env
    ``"TimeLimit.truncated"`` (``truncated and not terminated``). Other info entries
    (``sim_error``, ``episode`` from our ``RecordEpisodeStatistics``, ...) are split per env
    by gymnasium's ``DictInfoToList`` rule. The spaces are the single-env ones.

    The sub-envs of a batched env share one state, RNG and attribute set, so: ``seed(s)``
    gives the next ``reset`` the seed ``s`` (the adapter seeds sub-env ``i`` with ``s + i``,
    as SB3 does); ``get_attr`` returns the env's attribute for each index; ``set_attr`` and
    ``env_method`` act on the whole batch and refuse a strict subset of indices;
    ``env_is_wrapped`` looks for the class in our wrapper chain. ``render`` works when the
    env has ``render_mode="rgb_array"`` (the adapter), else returns None with SB3's warning.
    """

    def __init__(self, env: VectorEnv) -> None:
        self.env = env
        self._np = DictInfoToList(NumpyVecEnv(env))  # gymnasium's own info splitting
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: Any = None

    # --- stepping -----------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seed = self._seeds[0]
        options = self._options[0] or None
        if any(o != self._options[0] for o in self._options):
            raise ValueError("a batched env takes one options dict for all sub-envs; set_options got different ones")
        obs, self.reset_infos = self._np.reset(seed=seed, options=options)
        self._reset_seeds()  # seeds and options are used once, as in DummyVecEnv
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, infos = self._np.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminated, truncated)
        for i, info in enumerate(infos):
            final_obs = info.pop("final_obs", None)
            # gymnasium's same-step envs (the adapter) keep the last step's own info apart from
            # the reset's; SB3 wants the step's info, as DummyVecEnv returns it.
            final_info = info.pop("final_info", None)
            if dones[i]:
                if isinstance(final_info, dict):
                    info.update(final_info)
                info["terminal_observation"] = final_obs
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    # --- attributes and methods of the (shared) batch -------------------------------------
    def _indices(self, indices: VecEnvIndices, what: str, whole: bool) -> list[int]:
        idx = list(self._get_indices(indices))
        if whole and sorted(idx) != list(range(self.num_envs)):
            raise ValueError(
                f"{what} acts on the whole batch: the {self.num_envs} sub-envs of a batched env share "
                f"one state, so indices must be None or all of them, got {idx}"
            )
        return idx

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.env, attr_name)  # AttributeError as SB3 expects (has_attr)
        return [value for _ in self._indices(indices, "get_attr", whole=False)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._indices(indices, "set_attr", whole=True)
        # Set it where it lives: wrappers forward reads down the chain, not writes.
        owner = next((e for e in _chain(self.env) if attr_name in vars(e)), self.env)
        setattr(owner, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        idx = self._indices(indices, "env_method", whole=True)
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        wrapped = any(isinstance(e, wrapper_class) for e in _chain(self.env)[:-1])
        return [wrapped for _ in self._indices(indices, "env_is_wrapped", whole=False)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        frames = self.env.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def close(self) -> None:
        self.env.close()

    def __repr__(self) -> str:
        return f"SB3VecEnv({self.env!r})"
