"""Tensor wrappers for :class:`vecenvs.core.TorchVecEnv` chains.

Each wrapper keeps its state as tensors on ``env.device`` and never synchronises with the
host during ``step``, so a chain stays as fast as the env under it. All of them assume
same-step autoreset (``info["final_obs"]`` / ``info["_final_obs"]``) and save their state
through the ``state_dict()`` composition of :class:`TorchVecEnvWrapper`.

Typical order, innermost first::

    env = RecordEpisodeStatistics(env)   # raw returns for logging
    env = ClipAction(env) or RescaleAction(env)
    env = NormalizeObservation(env, rms=agent_rms)
    env = NormalizeReward(env, gamma=0.99)
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from vecenvs.core import Device, TorchVecEnvWrapper, as_actions


class RunningMeanStd:
    """Running mean and variance of a stream of batches, in float64 on ``device``.

    The statistics start at mean 0, variance 1 with a pseudo-count ``epsilon`` (as in
    gymnasium and SB3) and are merged batch by batch with the parallel-variance formula
    (Chan et al.), so the result equals the mean/variance of everything seen, up to that
    tiny prior. ``count`` is a tensor: updating never syncs with the host.
    """

    def __init__(self, shape: Sequence[int] = (), device: Device = "cpu", epsilon: float = 1e-4) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.device = torch.device(device)
        self.mean = torch.zeros(self.shape, dtype=torch.float64, device=self.device)
        self.var = torch.ones(self.shape, dtype=torch.float64, device=self.device)
        self.count = torch.tensor(float(epsilon), dtype=torch.float64, device=self.device)

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Merge a batch ``x`` of shape ``[B, *shape]``; with ``mask`` (bool ``[B]``) only its rows."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"RunningMeanStd.update expects a batch of shape [B, *{self.shape}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        x = x.to(self.device, torch.float64)
        if mask is None:
            batch_count: torch.Tensor | float = float(x.shape[0])
            batch_mean = x.mean(0)
            batch_var = x.var(0, unbiased=False)
        else:
            # Weighted moments instead of x[mask]: boolean indexing would sync with the host.
            w = mask.to(self.device, torch.float64).reshape(-1, *([1] * len(self.shape)))
            batch_count = w.sum()
            n = batch_count.clamp_min(1.0)  # an empty mask merges nothing (delta * 0 / count)
            batch_mean = (w * x).sum(0) / n
            batch_var = (w * (x - batch_mean) ** 2).sum(0) / n
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * (batch_count / total)
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        self.var = m2 / total
        self.count = total

    def normalize(self, x: torch.Tensor, clip: float | None = None, epsilon: float = 1e-8) -> torch.Tensor:
        """``(x - mean) / sqrt(var + epsilon)``, clipped to ``[-clip, clip]``, as float32 on ``x.device``."""
        mean = self.mean.to(x.device)
        std = torch.sqrt(self.var.to(x.device) + epsilon)
        y = (x.to(torch.float64) - mean) / std
        if clip is not None:
            y = y.clamp(-clip, clip)
        return y.to(torch.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = torch.as_tensor(state["mean"], dtype=torch.float64)
        var = torch.as_tensor(state["var"], dtype=torch.float64)
        for name, value in (("mean", mean), ("var", var)):
            if tuple(value.shape) != self.shape:
                raise ValueError(
                    f"cannot load RunningMeanStd state: its {name} has shape {tuple(value.shape)}, "
                    f"but this RunningMeanStd has shape {self.shape}"
                )
        self.mean = mean.to(self.device).clone()
        self.var = var.to(self.device).clone()
        self.count = torch.as_tensor(state["count"], dtype=torch.float64).to(self.device).clone()

    def __repr__(self) -> str:
        return f"RunningMeanStd(shape={self.shape}, device={self.device})"


def _require_same_step(env: VectorEnv, wrapper: str) -> None:
    # These wrappers read final_obs / reset their accumulators in the done step itself,
    # which is only right when the env autoresets in the same step.
    mode = env.metadata.get("autoreset_mode", AutoresetMode.SAME_STEP)
    if mode != AutoresetMode.SAME_STEP:
        raise ValueError(f"{wrapper} needs an env with same-step autoreset, got autoreset_mode={mode}")


def _box_action_space(env: VectorEnv, wrapper: str) -> gym.spaces.Box:
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{wrapper} only applies to Box action spaces, got {space}")
    return space


def _reset_mask(options: dict[str, Any] | None) -> torch.Tensor | None:
    return None if options is None else options.get("reset_mask")


def _zero_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zeros everywhere (full reset) or in the rows of ``mask`` (partial reset)."""
    if mask is None:
        return torch.zeros_like(x)
    return torch.where(mask.to(x.device), torch.zeros_like(x), x)


class NormalizeObservation(TorchVecEnvWrapper):
    """Normalises observations with one running mean/std shared by all sub-envs.

    The statistics are updated with every batch of observations returned by ``reset`` and
    ``step`` (not with ``final_obs``, as in SB3's ``VecNormalize``), then ``obs`` and
    ``info["final_obs"]`` are normalised with the *same* updated statistics, so the value
    of a final observation used for bootstrapping is consistent with the observations of
    that step. Pass ``rms`` to share the statistics with an agent, which can then
    normalise raw observations with :meth:`normalize`. Set ``update = False`` (or call
    :meth:`freeze`) to keep the statistics fixed, e.g. for evaluation.
    """

    def __init__(
        self, env: VectorEnv, clip: float | None = 10.0, epsilon: float = 1e-8, rms: RunningMeanStd | None = None
    ) -> None:
        super().__init__(env)
        _require_same_step(env, "NormalizeObservation")
        space = env.single_observation_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"NormalizeObservation only applies to Box observation spaces, got {space}")
        self.rms = rms if rms is not None else RunningMeanStd(space.shape, device=env.device)
        if self.rms.shape != tuple(space.shape):
            raise ValueError(f"rms has shape {self.rms.shape}, but observations have shape {tuple(space.shape)}")
        self.clip = clip
        self.epsilon = epsilon
        self.update = True
        bound = np.inf if clip is None else float(clip)
        self.single_observation_space = gym.spaces.Box(-bound, bound, space.shape, np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def freeze(self) -> None:
        """Stop updating the statistics (evaluation)."""
        self.update = False

    def unfreeze(self) -> None:
        """Resume updating the statistics."""
        self.update = True

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalise raw observations with the current statistics, without updating them."""
        return self.rms.normalize(obs, clip=self.clip, epsilon=self.epsilon)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.update:
            self.rms.update(obs, _reset_mask(options))  # a partial reset brings only those rows
        return self.normalize(obs), info

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self.update:
            self.rms.update(obs)
        if "final_obs" in info:
            info = {**info, "final_obs": self.normalize(info["final_obs"])}
        return self.normalize(obs), reward, terminated, truncated, info

    def _own_state(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self.rms.load_state_dict(state["rms"])  # in place: an agent sharing self.rms sees it too


class NormalizeReward(TorchVecEnvWrapper):
    """Scales rewards by the running std of each sub-env's discounted return.

    Per step: ``ret = gamma * ret + r``; the statistics are updated with ``ret``; the
    reward is divided by ``sqrt(var + epsilon)`` and clipped; then ``ret`` is set to 0
    where the episode ended (terminated or truncated). The reset comes *after* the update,
    so the done step's reward still belongs to the finished episode's return and the next
    step (already the new episode under same-step autoreset) starts from 0 — the order
    gymnasium#1451 got wrong. Rewards are not shifted by the mean, as in gymnasium/SB3.
    """

    def __init__(self, env: VectorEnv, gamma: float = 0.99, clip: float | None = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__(env)
        _require_same_step(env, "NormalizeReward")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.update = True
        self.rms = RunningMeanStd((), device=env.device)
        self.returns = torch.zeros(self.num_envs, dtype=torch.float64, device=torch.device(env.device))

    def freeze(self) -> None:
        """Stop updating the return statistics (evaluation)."""
        self.update = False

    def unfreeze(self) -> None:
        """Resume updating the return statistics."""
        self.update = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        self.returns = _zero_rows(self.returns, _reset_mask(options))
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        r = reward.to(torch.float64)
        returns = self.returns * self.gamma + r
        if self.update:
            self.rms.update(returns)
        scaled = r / torch.sqrt(self.rms.var + self.epsilon)
        if self.clip is not None:
            scaled = scaled.clamp(-self.clip, self.clip)
        self.returns = torch.where(terminated | truncated, torch.zeros_like(returns), returns)
        return obs, scaled.to(torch.float32), terminated, truncated, info

    def _own_state(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict(), "returns": self.returns.clone()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        returns = torch.as_tensor(state["returns"])
        if tuple(returns.shape) != (self.num_envs,):
            raise ValueError(f"NormalizeReward returns have shape {tuple(returns.shape)}, expected ({self.num_envs},)")
        self.rms.load_state_dict(state["rms"])
        self.returns = returns.to(self.returns.device, torch.float64).clone()


class _BoxActionWrapper(TorchVecEnvWrapper):
    """Shared set-up of the action wrappers: the env's Box bounds as tensors on its device."""

    def __init__(self, env: VectorEnv, name: str) -> None:
        super().__init__(env)
        space = _box_action_space(env, name)
        device = torch.device(env.device)
        self._env_low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        self._env_high = torch.as_tensor(space.high, dtype=torch.float32, device=device)

    def step(self, actions: torch.Tensor | np.ndarray):
        # Validate (and convert NumPy) against the wrapper's own space: broadcasting could hide a bad shape.
        actions = as_actions(actions, self.single_action_space, self.num_envs, torch.device(self.device))
        return self.env.step(self.actions(actions))

    def actions(self, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class RescaleAction(_BoxActionWrapper):
    """Lets the policy act in ``[low, high]`` (default ``[-1, 1]``) and maps affinely to the env's Box.

    ``low`` maps to the env's lower bound and ``high`` to its upper bound exactly. With
    ``clip=True`` actions are first clipped to ``[low, high]``, so the env never sees an
    out-of-bounds action. The env's bounds must be finite.
    """

    def __init__(self, env: VectorEnv, low: float | np.ndarray = -1.0, high: float | np.ndarray = 1.0, clip: bool = True) -> None:
        super().__init__(env, "RescaleAction")
        space = env.single_action_space
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(f"RescaleAction needs finite action bounds, got {space}")
        low_arr = np.broadcast_to(np.asarray(low, dtype=np.float32), space.shape)
        high_arr = np.broadcast_to(np.asarray(high, dtype=np.float32), space.shape)
        if not np.all(low_arr < high_arr):
            raise ValueError(f"RescaleAction needs low < high, got low={low}, high={high}")
        self.clip = clip
        self.single_action_space = gym.spaces.Box(low_arr, high_arr, space.shape, np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._low = torch.tensor(low_arr, device=self._env_low.device)
        self._high = torch.tensor(high_arr, device=self._env_low.device)

    def actions(self, actions: torch.Tensor) -> torch.Tensor:
        dt = actions.dtype
        low, high = self._low.to(dt), self._high.to(dt)
        env_low, env_high = self._env_low.to(dt), self._env_high.to(dt)
        if self.clip:
            actions = torch.clamp(actions, low, high)
        t = (actions - low) / (high - low)
        # (1 - t) * a + t * b is exact at t = 0 and t = 1, unlike a + t * (b - a).
        mapped = env_low * (1 - t) + env_high * t
        if self.clip:
            mapped = torch.clamp(mapped, env_low, env_high)  # guard the last ulp of rounding
        return mapped


class ClipAction(_BoxActionWrapper):
    """Clips actions to the env's Box bounds; the wrapper accepts any real action."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env, "ClipAction")
        space = env.single_action_space
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, space.shape, space.dtype)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def actions(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.clamp(actions, self._env_low.to(actions.dtype), self._env_high.to(actions.dtype))


class RecordEpisodeStatistics(TorchVecEnvWrapper):
    """Adds episode returns and lengths to ``info`` when episodes end.

    Every step puts ``info["episode"] = {"r": float32 [N], "l": int64 [N]}`` and
    ``info["_episode"]`` (the bool done mask); values are valid where the mask is True (the
    keys are always present: testing for any finished env would sync with the host). The
    return accumulates in float64. Put this wrapper innermost so that ``r`` is the sum of
    the raw rewards.
    """

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        _require_same_step(env, "RecordEpisodeStatistics")
        device = torch.device(env.device)
        self.episode_returns = torch.zeros(self.num_envs, dtype=torch.float64, device=device)
        self.episode_lengths = torch.zeros(self.num_envs, dtype=torch.int64, device=device)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        mask = _reset_mask(options)
        self.episode_returns = _zero_rows(self.episode_returns, mask)
        self.episode_lengths = _zero_rows(self.episode_lengths, mask)
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        returns = self.episode_returns + reward.to(torch.float64)
        lengths = self.episode_lengths + 1
        done = terminated | truncated
        info = {**info, "episode": {"r": returns.to(torch.float32), "l": lengths}, "_episode": done}
        self.episode_returns = torch.where(done, torch.zeros_like(returns), returns)
        self.episode_lengths = torch.where(done, torch.zeros_like(lengths), lengths)
        return obs, reward, terminated, truncated, info

    def _own_state(self) -> dict[str, Any]:
        return {"returns": self.episode_returns.clone(), "lengths": self.episode_lengths.clone()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        for key in ("returns", "lengths"):
            if tuple(state[key].shape) != (self.num_envs,):
                raise ValueError(f"RecordEpisodeStatistics {key} have shape {tuple(state[key].shape)}, expected ({self.num_envs},)")
        self.episode_returns = state["returns"].to(self.episode_returns.device, torch.float64).clone()
        self.episode_lengths = state["lengths"].to(self.episode_lengths.device, torch.int64).clone()
