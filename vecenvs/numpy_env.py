"""A NumPy view of a tensor env, for code written against gymnasium's NumPy vector API.

:class:`NumpyVecEnv` wraps any :class:`~vecenvs.core.TorchVecEnv` (or a chain of our
wrappers, or :class:`~vecenvs.adapter.GymnasiumVecEnv`) as a ``gymnasium.vector.VectorEnv``
whose observations, rewards, flags and info arrays are NumPy arrays, so gymnasium's own
vector wrappers apply to it. (gymnasium's ``ArrayConversion`` converts the same way but
needs the optional ``array_api_compat`` package.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from policyopt.vecenvs.core import as_actions


def to_numpy(x: Any) -> Any:
    """Tensors -> NumPy arrays (on the host), recursing into dicts, lists and tuples."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    return x


class NumpyVecEnv(VectorWrapper):
    """``env`` with NumPy in and out: a gymnasium ``VectorEnv`` view of a tensor env.

    - ``step`` takes NumPy actions (or lists, or tensors), converted on ``env.device`` by
      :func:`vecenvs.core.as_actions`, and returns NumPy ``obs``, ``reward``,
      ``terminated``, ``truncated`` and an info dict whose tensors are NumPy arrays.
    - ``autoreset_mode=SAME_STEP`` (default): the env's own semantics, with the dense
      ``info["final_obs"]`` [N, *obs_shape], its mask ``info["_final_obs"]``,
      ``info["sim_error"]`` and the other entries kept. gymnasium's
      ``RecordEpisodeStatistics``, ``ClipAction``, ``RescaleAction``, ``DictInfoToList``
      and the reward wrappers accept it.
    - ``autoreset_mode=NEXT_STEP``: gymnasium's default convention, which its observation
      wrappers (``NormalizeObservation``, ``TransformObservation``, ...) require: a
      finished env returns its last observation as ``obs``, and its next step ignores
      the action and returns a first observation with reward 0 and both flags False.
      That next step still advances the env's row once; the row is then reset again
      (``reset_mask``), so the returned observation is a fresh initial state. Wrappers
      under this view see that extra step (ours reset their per-row statistics with it);
      its info entries are masked out.
    - ``reset(options={"reset_mask": np.ndarray})`` is passed on as a bool tensor; the
      spaces are the env's, and other public attributes are forwarded to it.

    Each step copies its results to the host, which syncs an accelerator: this view is for
    interoperability, not for the fastest loop.
    """

    def __init__(self, env: VectorEnv, autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP) -> None:
        super().__init__(env)
        inner = env.metadata.get("autoreset_mode", AutoresetMode.SAME_STEP)
        if inner != AutoresetMode.SAME_STEP:
            raise ValueError(f"NumpyVecEnv wraps envs with same-step autoreset (ours), got autoreset_mode={inner}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
            raise ValueError(f"autoreset_mode must be SAME_STEP or NEXT_STEP, got {mode}")
        self.autoreset_mode = mode
        self.metadata = {**env.metadata, "autoreset_mode": mode}
        self._device = torch.device(getattr(env, "device", "cpu"))
        self._pending = np.zeros(self.num_envs, dtype=bool)  # NEXT_STEP: rows to reset at the next step

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask), device=self._device)
            options = {**options, "reset_mask": mask}
            self._pending &= ~mask.cpu().numpy()
        else:
            self._pending[:] = False
        obs, info = self.env.reset(seed=seed, options=options)
        return to_numpy(obs), to_numpy(info)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        # Convert here, against the wrapped env's space: an inner wrapper may expect tensors.
        actions = as_actions(actions, self.env.single_action_space, self.num_envs, self._device)
        obs, reward, terminated, truncated, info = to_numpy(self.env.step(actions))
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            return obs, reward, terminated, truncated, info
        return self._next_step(obs, reward, terminated, truncated, info)

    def _next_step(self, obs, reward, terminated, truncated, info):
        """Same-step results -> next-step ones (see the class docstring)."""
        pending, keep = self._pending, ~self._pending
        final_obs = info.pop("final_obs", obs)
        info.pop("_final_obs", None)
        if pending.any():
            fresh, _ = self.env.reset(options={"reset_mask": torch.as_tensor(pending, device=self._device)})
            obs = np.where(pending.reshape(-1, *[1] * (obs.ndim - 1)), to_numpy(fresh), obs)
            reward = np.where(pending, np.zeros_like(reward), reward)
            terminated, truncated = terminated & keep, truncated & keep
            for key in list(info):  # what the ignored step reported is not part of any episode
                if key.startswith("_") and isinstance(info[key], np.ndarray) and info[key].shape == pending.shape:
                    info[key] = info[key] & keep
            if "sim_error" in info:
                info["sim_error"] = info["sim_error"] & keep
        done = terminated | truncated
        # A finished row shows its last observation now and is reset at the next step.
        obs = np.where(done.reshape(-1, *[1] * (obs.ndim - 1)), final_obs, obs)
        self._pending = done
        return obs, reward, terminated, truncated, info

    def __getattr__(self, name: str) -> Any:
        # Like TorchVecEnvWrapper: public attributes (max_episode_steps, state_dict, ...) of the env.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"NumpyVecEnv({self.env!r}, autoreset_mode={self.autoreset_mode.name})"
