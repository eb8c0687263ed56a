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

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from policyopt.vecenvs.core import Device, TorchVecEnvWrapper, as_actions


class _Stat:
    """A float64 tensor attribute of :class:`RunningMeanStd` with a Python-float twin.

    Reading gives a tensor, as a plain attribute would; assigning takes one (or a number).
    A 0-d tensor on the CPU also has its value as a Python float, which the merge uses
    instead of tensor ops; after a merge in Python the tensor is only built when read. An
    in-place change of a tensor that was read (its version counter moves) is picked up.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.tensor, self.version, self.host = f"_{name}", f"_{name}_version", f"_{name}_host"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        d = obj.__dict__
        value = d[self.tensor]
        if value is None:  # only ever None with a host twin, hence on the CPU
            value = torch.tensor(d[self.host], dtype=torch.float64, device=obj.device)
            d[self.tensor], d[self.version] = value, value._version
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        if not isinstance(value, torch.Tensor):
            value = torch.tensor(value, dtype=torch.float64, device=obj.device)
        d = obj.__dict__
        d[self.tensor], d[self.version] = value, value._version
        d[self.host] = float(value) if value.dim() == 0 and value.device.type == "cpu" else None

    def twin(self, obj: Any) -> float | None:
        """The value as a Python float where it is a 0-d CPU tensor, else None."""
        d = obj.__dict__
        value = d[self.tensor]
        if value is not None and value._version != d[self.version]:
            self.__set__(obj, value)
        return d[self.host]

    def set_twin(self, obj: Any, value: float) -> None:
        d = obj.__dict__
        d[self.tensor], d[self.host] = None, value


class RunningMeanStd:
    """Running mean and variance of a stream of batches, in float64 on ``device``.

    The statistics start at mean 0, variance 1 with a pseudo-count ``epsilon`` (as in
    gymnasium and SB3) and are merged batch by batch with the parallel-variance formula
    (Chan et al.), so the result equals the mean/variance of everything seen, up to that
    tiny prior. ``count`` is a tensor: updating never syncs with the host.

    Speed: the wrappers update and read these statistics on every step, mostly for small
    batches, where a torch op costs microseconds of dispatch whatever its size. On the CPU
    the 0-d statistics (always ``count``; ``mean`` and ``var`` too when ``shape == ()``, as
    in :class:`NormalizeReward`) are merged as Python floats and their tensors only built
    when read. Python floats and float64 CPU tensors round alike (IEEE double), and every
    path computes the same operations in the same order as the all-tensor merge
    (:meth:`_update_tensors`), so the statistics are bitwise the same whichever path ran.
    Accelerators, and masked updates (a data-dependent count), use the all-tensor merge.
    """

    mean = _Stat()
    var = _Stat()
    count = _Stat()

    def __init__(self, shape: Sequence[int] = (), device: Device = "cpu", epsilon: float = 1e-4) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.device = torch.device(device)
        self.mean = torch.zeros(self.shape, dtype=torch.float64, device=self.device)
        self.var = torch.ones(self.shape, dtype=torch.float64, device=self.device)
        self.count = torch.tensor(float(epsilon), dtype=torch.float64, device=self.device)
        self._std_cache: tuple | None = None

    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Merge a batch ``x`` of shape ``[B, *shape]``; with ``mask`` (bool ``[B]``) only its rows."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"RunningMeanStd.update expects a batch of shape [B, *{self.shape}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        if torch.is_grad_enabled() and self._records_grad(x):
            with torch.no_grad():  # entered only when needed: it costs ~2 µs a call
                self._update(x, mask)
        else:
            self._update(x, mask)

    def _records_grad(self, x: torch.Tensor) -> bool:
        # Autograd records an op only if an input requires grad.
        d = self.__dict__
        m, v, c = d["_mean"], d["_var"], d["_count"]
        return (
            x.requires_grad
            or (m is not None and m.requires_grad)
            or (v is not None and v.requires_grad)
            or (c is not None and c.requires_grad)
        )

    def _update(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        n = x.shape[0]
        x = x.double() if x.device == self.device else x.to(self.device, torch.float64)
        count = None if mask is not None else RunningMeanStd.count.twin(self)
        if count is None:
            self._update_tensors(x, mask)
            return
        # The merge of _update_tensors(x, None), operation for operation, with the 0-d
        # values as Python floats. Notes on the equalities relied on:
        # - batch_count / total there is Tensor.__rdiv__, i.e. (1 / total) * batch_count;
        # - delta**2 is delta * delta, bitwise (ATen's pow special-cases the exponent 2);
        # - one row: x.mean(0) is x[0], up to the sign of a zero, which does not change the
        #   merged mean (+0 + -0 = +0) or variance; x.var(0) of one row is 0, or NaN where it is
        #   not finite (Welford); batch_var * 1.0 is batch_var.
        batch_count = float(n)
        total = count + batch_count
        mean = RunningMeanStd.mean.twin(self)
        var = RunningMeanStd.var.twin(self) if mean is not None else None
        if var is not None:  # shape (): all of it in Python
            if n == 1:
                batch_mean = x.item()
                batch_var = 0.0 if math.isfinite(batch_mean) else math.nan
            else:
                batch_mean = x.mean(0).item()
                batch_var = x.var(0, unbiased=False).item()
            delta = batch_mean - mean
            m2 = var * count + batch_var * batch_count + delta * delta * (count * batch_count / total)
            RunningMeanStd.mean.set_twin(self, mean + delta * ((1.0 / total) * batch_count))
            RunningMeanStd.var.set_twin(self, m2 / total)
        else:  # tensor moments, Python scalars, in-place ops on fresh temporaries
            if n == 1:
                batch_mean = x[0]
                batch_m2 = x.var(0, unbiased=False)
            else:
                batch_mean = x.mean(0)
                batch_m2 = x.var(0, unbiased=False).mul_(batch_count)
            delta = batch_mean - self.mean
            m2 = self.var * count
            m2 += batch_m2
            m2 += (delta * delta).mul_(count * batch_count / total)
            self.var = m2.div_(total)
            self.mean = self.mean + delta.mul_((1.0 / total) * batch_count)
        RunningMeanStd.count.set_twin(self, total)

    def _update_tensors(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        """The reference merge, all in tensors (``x`` is float64 on ``self.device``)."""
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
        mean, var, count = self.mean, self.var, self.count
        delta = batch_mean - mean
        total = count + batch_count
        self.mean = mean + delta * (batch_count / total)
        m2 = var * count + batch_var * batch_count + delta**2 * (count * batch_count / total)
        self.var = m2 / total
        self.count = total

    def _host_std(self, epsilon: Any) -> float | None:
        """``sqrt(var + epsilon)`` as a Python float where ``var`` has a host twin, else None."""
        var = RunningMeanStd.var.twin(self)
        if var is None or not isinstance(epsilon, (int, float)):
            return None
        v = var + epsilon
        return math.sqrt(v) if v >= 0 else math.nan  # what torch.sqrt gives, without math's ValueError

    def _mean_std(self, device: torch.device, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``sqrt(var + epsilon)`` on ``device``, the latter cached while ``var`` is unchanged."""
        mean, var = self.mean, self.var
        c = self._std_cache
        if c is not None and c[0] is var and c[1] == var._version and c[2] == epsilon and c[3] == device:
            std = c[4]
        else:
            std = (var.to(device) + epsilon).sqrt_()
            self._std_cache = (var, var._version, epsilon, device, std)
        return (mean if mean.device == device else mean.to(device)), std

    def normalize(self, x: torch.Tensor, clip: float | None = None, epsilon: float = 1e-8) -> torch.Tensor:
        """``(x - mean) / sqrt(var + epsilon)``, clipped to ``[-clip, clip]``, as float32 on ``x.device``."""
        mean, std = self._mean_std(x.device, epsilon)
        if x.dtype != torch.float64 and mean.dim() > 0:
            y = torch.sub(x, mean)  # type promotion computes float64(x) - mean, one op instead of two
        else:  # (a 0-d mean would not promote x)
            y = x.to(torch.float64) - mean
        y.div_(std)
        if clip is not None:
            y.clamp_(-clip, clip)
        return y.float()

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
    return x.masked_fill(mask.to(x.device), 0)  # == torch.where(mask, 0, x), one op


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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.update:
            self.rms.update(obs, _reset_mask(options))  # a partial reset brings only those rows
        return self.normalize(obs), info

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        rms = self.rms
        raw = obs
        if self.update:
            x = obs.double() if obs.device == rms.device else obs.to(rms.device, torch.float64)
            rms.update(x)
            if x.device == obs.device:
                raw = x  # normalising the float64 copy is normalising obs, with one cast fewer
        if "final_obs" in info:
            info = {**info, "final_obs": rms.normalize(info["final_obs"], clip=self.clip, epsilon=self.epsilon)}
        return rms.normalize(raw, clip=self.clip, epsilon=self.epsilon), reward, terminated, truncated, info

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

    def __init__(
        self,
        env: VectorEnv,
        gamma: float = 0.99,
        clip: float | None = 10.0,
        epsilon: float = 1e-8,
        rms: RunningMeanStd | None = None,
    ) -> None:
        """``rms``: the 0-d return statistics to use (e.g. one kept in sync across processes); default a fresh one."""
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
        self.rms = rms if rms is not None else RunningMeanStd((), device=env.device)
        if self.rms.shape != ():
            raise ValueError(f"NormalizeReward's rms tracks scalar returns: it must have shape (), got {self.rms.shape}")
        self.returns = torch.zeros(self.num_envs, dtype=torch.float64, device=torch.device(env.device))

    def freeze(self) -> None:
        """Stop updating the return statistics (evaluation)."""
        self.update = False

    def unfreeze(self) -> None:
        """Resume updating the return statistics."""
        self.update = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        self.returns = _zero_rows(self.returns, _reset_mask(options))
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        r = reward.double()
        returns = (self.returns * self.gamma).add_(r)  # a fresh tensor: in-place ops on it are safe
        rms = self.rms
        if self.update:
            rms.update(returns)  # keeps no reference to returns
        std = rms._host_std(self.epsilon)  # == torch.sqrt(rms.var + epsilon), as a float or a tensor
        if std is None:
            std = rms._mean_std(rms.var.device, self.epsilon)[1]
        scaled = r.div_(std) if r is not reward else r / std  # never write into the env's reward
        if self.clip is not None:
            scaled.clamp_(-self.clip, self.clip)
        self.returns = returns.masked_fill_(terminated | truncated, 0.0)  # == torch.where(done, 0, returns)
        return obs, scaled.float(), terminated, truncated, info

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
        self._device = device
        self._env_low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        self._env_high = torch.as_tensor(space.high, dtype=torch.float32, device=device)

    def step(self, actions: torch.Tensor | np.ndarray):
        # Validate (and convert NumPy) against the wrapper's own space: broadcasting could hide a bad shape.
        actions = as_actions(actions, self.single_action_space, self.num_envs, self._device)
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
        low, high = self._env_low, self._env_high
        if actions.dtype != low.dtype:  # (.to would return the same tensors, at the price of two dispatches)
            low, high = low.to(actions.dtype), high.to(actions.dtype)
        return torch.clamp(actions, low, high)


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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        mask = _reset_mask(options)
        self.episode_returns = _zero_rows(self.episode_returns, mask)
        self.episode_lengths = _zero_rows(self.episode_lengths, mask)
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if reward.dtype.is_complex:
            returns = self.episode_returns + reward.to(torch.float64)
        else:  # float64 + any real dtype promotes to float64 with the same cast: cast and sum in one op
            returns = torch.add(self.episode_returns, reward)
        lengths = self.episode_lengths + 1
        done = terminated | truncated
        info = {**info, "episode": {"r": returns.float(), "l": lengths}, "_episode": done}
        self.episode_returns = returns.masked_fill_(done, 0.0)  # == torch.where(done, 0, returns); returns is ours
        self.episode_lengths = lengths.masked_fill(done, 0)  # out of place: lengths is in info
        return obs, reward, terminated, truncated, info

    def _own_state(self) -> dict[str, Any]:
        return {"returns": self.episode_returns.clone(), "lengths": self.episode_lengths.clone()}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        for key in ("returns", "lengths"):
            if tuple(state[key].shape) != (self.num_envs,):
                raise ValueError(
                    f"RecordEpisodeStatistics {key} have shape {tuple(state[key].shape)}, expected ({self.num_envs},)"
                )
        self.episode_returns = state["returns"].to(self.episode_returns.device, torch.float64).clone()
        self.episode_lengths = state["lengths"].to(self.episode_lengths.device, torch.int64).clone()
