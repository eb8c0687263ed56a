"""Any gymnasium id behind the tensor API of :class:`vecenvs.core.TorchVecEnv`.

:class:`GymnasiumVecEnv` runs ``gym.make_vec`` underneath and converts at the boundary:
torch actions on ``device`` become numpy, numpy results become torch tensors on
``device``. It asks gymnasium for same-step autoreset and turns its object-array
``final_obs`` into a dense tensor.

It cannot save or restore gymnasium's internal state (simulator state, numpy RNGs), so
``state_dict()`` is empty and exact resume is only available for the native tensor envs.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from policyopt.vecenvs.core import Device, as_actions, check_device, check_num_envs


def _to_tensor(x: Any, device: torch.device) -> Any:
    """numpy numbers -> tensors on ``device`` (floats as float32), recursing into dicts."""
    if isinstance(x, dict):
        return {k: _to_tensor(v, device) for k, v in x.items()}
    if isinstance(x, np.ndarray) and x.dtype != object:
        dtype = torch.float32 if np.issubdtype(x.dtype, np.floating) else None
        return torch.tensor(x, dtype=dtype, device=device)  # a copy, like the obs
    return x  # object arrays and anything else stay as gymnasium made them


def _float32_space(space: gym.Space) -> gym.Space:
    # Observations come out as float32 tensors, so advertise float32 bounds.
    if isinstance(space, gym.spaces.Box) and space.dtype != np.float32:
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32)
    return space


class GymnasiumVecEnv(VectorEnv):
    """A gymnasium vector env with the tensor API of the native envs.

    - ``obs`` float32 ``[N, *obs_shape]``, ``reward`` float32 ``[N]``, ``terminated`` and
      ``truncated`` bool ``[N]``, all on ``device``; other numeric info entries become
      tensors too.
    - Same-step autoreset: ``info["final_obs"]`` is a dense tensor like ``obs`` (equal to
      ``obs`` in the rows that did not finish) and ``info["_final_obs"]`` marks the rows
      that did.
    - ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i`` (gymnasium's rule); the
      ``seed`` given here is used by the first reset that passes none.
    - Actions (tensors, or NumPy arrays/lists such as ``action_space.sample()``) are
      converted and validated with :func:`vecenvs.core.as_actions`; Discrete actions go
      to gymnasium as int64, Box actions as float32.
    - ``state_dict()`` is ``{}``: gymnasium's internal state cannot be captured, so a
      resumed run continues from a fresh reset, not from the saved state.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        vectorization_mode: str = "sync",
        **env_kwargs: Any,
    ) -> None:
        num_envs = check_num_envs(num_envs)
        if "compile" in env_kwargs:
            raise ValueError(
                f"compile= applies to native tensor envs; {env_id!r} runs through the gymnasium adapter, which steps gymnasium's own env"
            )
        self.env_id = env_id
        self.num_envs = num_envs
        self.device = check_device(device)
        self._seed = None if seed is None else int(seed)
        vector_kwargs: dict[str, Any] = {}
        if vectorization_mode in ("sync", "async"):
            vector_kwargs["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.env: VectorEnv = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode=vectorization_mode, vector_kwargs=vector_kwargs, **env_kwargs
        )
        inner_mode = self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if inner_mode != AutoresetMode.SAME_STEP:
            # e.g. CartPole's vector_entry_point is NEXT_STEP only, which cannot be converted.
            self.env.close()
            raise ValueError(
                f"{env_id} with vectorization_mode={vectorization_mode!r} autoresets in mode "
                f"{inner_mode}, not same-step; use vectorization_mode='sync' or 'async'"
            )
        space = self.env.single_action_space
        if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
            self.env.close()
            raise TypeError(f"GymnasiumVecEnv supports Box and Discrete action spaces, {env_id} has {space}")
        self._discrete = isinstance(self.env.single_action_space, gym.spaces.Discrete)
        self.single_observation_space = _float32_space(self.env.single_observation_space)
        self.single_action_space = self.env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {
            "autoreset_mode": AutoresetMode.SAME_STEP,
            "render_modes": self.env.metadata.get("render_modes", []),
        }
        self.spec = self.env.spec
        self.render_mode = getattr(self.env, "render_mode", None)
        spec_steps = gym.spec(env_id).max_episode_steps if env_id in gym.registry else None
        steps = env_kwargs.get("max_episode_steps", spec_steps)
        self.max_episode_steps: int | None = None if steps is None else int(steps)
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is None and self._needs_reset and self._seed is not None:
            seed = self._seed  # the constructor's seed applies to the first reset
        if seed is not None:
            self._seed = int(seed)
            self.action_space.seed(self._seed)
        if options is not None and isinstance(options.get("reset_mask"), torch.Tensor):
            options = {**options, "reset_mask": options["reset_mask"].detach().cpu().numpy()}
        obs, info = self.env.reset(seed=seed, options=options)
        self._needs_reset = False
        return self._obs(obs), _to_tensor(info, self.device)

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = as_actions(actions, self.single_action_space, self.num_envs, self.device)
        np_actions = actions.detach().cpu().numpy()
        np_actions = np_actions.astype(np.int64 if self._discrete else np.float32, copy=False)
        obs, reward, terminated, truncated, info = self.env.step(np_actions)
        done = np.logical_or(terminated, truncated)

        # gymnasium gives an object array with entries only where _final_obs is set; the
        # dense version holds obs in the other rows, as the native envs do.
        final_obs = np.array(obs, dtype=np.float32, copy=True)
        info = dict(info)
        mask = info.pop("_final_obs", np.zeros(self.num_envs, dtype=bool))
        objs = info.pop("final_obs", None)
        for i in np.flatnonzero(mask):
            final_obs[i] = objs[i]
        info = _to_tensor(info, self.device)
        info["final_obs"] = torch.from_numpy(final_obs).to(self.device)
        info["_final_obs"] = torch.from_numpy(done).to(self.device)
        return (
            self._obs(obs),
            torch.tensor(np.asarray(reward), dtype=torch.float32, device=self.device),
            torch.tensor(np.asarray(terminated), dtype=torch.bool, device=self.device),
            torch.tensor(np.asarray(truncated), dtype=torch.bool, device=self.device),
            info,
        )

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        # A copy: with copy=False gymnasium reuses its obs buffer, which from_numpy would alias.
        return torch.tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        """Always ``{}``: gymnasium's internal state cannot be captured (see the class docstring)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Warns and does nothing: exact resume is only available for the native tensor envs."""
        warnings.warn(
            f"GymnasiumVecEnv({self.env_id!r}) cannot restore gymnasium's internal env state; "
            "the env continues from its current state (exact resume needs a native tensor env)",
            RuntimeWarning,
            stacklevel=2,
        )

    def render(self) -> Any:
        return self.env.render()

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close(**kwargs)

    def __repr__(self) -> str:
        return f"GymnasiumVecEnv({self.env_id!r}, num_envs={self.num_envs}, device={self.device})"
