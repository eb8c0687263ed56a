"""The batched tensor environment API shared by every backend.

A :class:`TorchVecEnv` is a ``gymnasium.vector.VectorEnv`` whose state, actions and
returns are torch tensors on ``env.device``. Autoreset happens in the same step
(``AutoresetMode.SAME_STEP``): the returned observation of a finished env is already the
first observation of its next episode, and the true last observation sits in the dense
tensor ``info["final_obs"]``, with ``info["_final_obs"]`` marking the envs that finished.
"""

from __future__ import annotations

import types
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

Device = str | torch.device


def new_seed() -> int:
    """A fresh 63-bit seed from OS entropy, for when the user gives none."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def check_device(device: Device) -> torch.device:
    """``torch.device(device)``, with a clear error when that device is not available here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}: expected 'cpu', 'cuda', 'cuda:N' or another torch device ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was asked for, but CUDA is not available on this machine (torch {torch.__version__}); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} was asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type not in ("cpu", "meta") and not getattr(getattr(torch, dev.type, None), "is_available", lambda: True)():
        raise ValueError(
            f"device {str(device)!r} was asked for, but {dev.type} is not available on this machine; use device='cpu'"
        )
    return dev


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` as an int, or a ``ValueError`` saying a positive int is expected."""
    if isinstance(num_envs, (bool, np.bool_)) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int (1, 2, ...), got {num_envs!r}")
    return int(num_envs)


def _same_device(a: torch.device, b: torch.device) -> bool:
    # "cuda" (no index) is whatever device is current: a tensor made with device="cuda"
    # reports "cuda:0", which must count as a match.
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _expected_actions(space: gym.Space, num_envs: int) -> tuple[bool, tuple[int, ...]]:
    discrete = isinstance(space, gym.spaces.Discrete)
    return discrete, (num_envs,) if discrete else (num_envs, *space.shape)


def _expected_message(space: gym.Space, num_envs: int, device: torch.device) -> str:
    # Only built on error: formatting it on every step would cost more than the checks.
    discrete, shape = _expected_actions(space, num_envs)
    kind = "an integer dtype (e.g. torch.int64)" if discrete else "a floating dtype (e.g. torch.float32)"
    return f"expected a torch.Tensor of shape {shape}, {kind}, on device {device}"


def check_actions(actions: torch.Tensor, space: gym.Space, num_envs: int, device: torch.device) -> torch.Tensor:
    """Validate a batch of action tensors against a single-env action space.

    Raises ``ValueError`` naming the expected shape, dtype and device. Discrete actions
    must be integers in range; continuous ones floating point (out-of-bound values are
    left to the env, which handles them exactly as gymnasium does). NumPy or Python
    actions go through :func:`as_actions` instead.
    """
    discrete, expected_shape = _expected_actions(space, num_envs)

    def expected() -> str:
        return _expected_message(space, num_envs, device)

    if not isinstance(actions, torch.Tensor):
        raise ValueError(f"actions must be a torch.Tensor, got {type(actions).__name__}; {expected()}")
    if tuple(actions.shape) != expected_shape:
        raise ValueError(f"actions have shape {tuple(actions.shape)}; {expected()}")
    if not _same_device(actions.device, device):
        raise ValueError(f"actions are on device {actions.device}; {expected()}")
    if discrete:
        if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
            raise ValueError(f"actions have dtype {actions.dtype}; {expected()}")
        low, high = int(space.start), int(space.start + space.n - 1)
        if device.type == "cpu":
            lo, hi = torch.aminmax(actions)  # one pass; the host is the device, so .item() is free
            if lo.item() < low or hi.item() > high:
                bad = actions[(actions < low) | (actions > high)][:5].tolist()
                raise ValueError(f"invalid discrete actions {bad}: valid actions are {low}..{high}")
        else:  # no host sync on accelerators: the check fails at the next synchronisation
            torch._assert_async(((actions >= low) & (actions <= high)).all(), f"discrete actions must lie in {low}..{high}")
    elif not actions.dtype.is_floating_point:
        raise ValueError(f"actions have dtype {actions.dtype}; {expected()}")
    return actions


def as_actions(actions: Any, space: gym.Space, num_envs: int, device: torch.device) -> torch.Tensor:
    """A validated action tensor from a tensor, a NumPy array, a list or a Python number.

    Tensors are checked as they are (:func:`check_actions`). Anything else, e.g. what
    ``env.action_space.sample()`` returns, is converted on ``device`` to float32 (Box, from
    any real dtype) or int64 (Discrete, from integers only; a bare int when ``num_envs == 1``),
    after the same shape check, so a wrong shape raises the same ``ValueError``.
    """
    if isinstance(actions, torch.Tensor):
        return check_actions(actions, space, num_envs, device)
    discrete, expected_shape = _expected_actions(space, num_envs)

    def expected() -> str:
        return _expected_message(space, num_envs, device) + " (NumPy arrays and lists of that shape are converted)"

    try:
        arr = np.asarray(actions)
    except (ValueError, TypeError) as e:  # e.g. a ragged list
        raise ValueError(f"actions of type {type(actions).__name__} cannot be read as an array ({e}); {expected()}") from None
    kinds = "iu" if discrete else "iuf"
    if arr.dtype.kind not in kinds:
        raise ValueError(f"actions have NumPy dtype {arr.dtype}; {expected()}")
    if discrete and arr.ndim == 0 and num_envs == 1:
        arr = arr.reshape(1)  # env.step(1) on a single env is unambiguous
    if arr.shape != expected_shape:
        raise ValueError(f"actions have shape {arr.shape}; {expected()}")
    # torch.tensor copies: the env must not alias an array the caller may reuse
    tensor = torch.tensor(arr, dtype=torch.int64 if discrete else torch.float32, device=device)
    return check_actions(tensor, space, num_envs, device) if discrete else tensor  # range check


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are backed by the same storage (a cheap, conservative test)."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# Parallelise a fused kernel only from 32768 elements per thread (ATen's grain size):
# inductor's default (512) spreads a 4096-env step over OpenMP threads, which costs more
# than it saves and stalls whenever another process holds a core.
_INDUCTOR_OPTIONS: dict[str, Any] = {"cpp.min_chunk_size": 32768}


def _private_code_copy(fn: Callable) -> Callable:
    """A copy of function ``fn`` with its own code object, hence its own dynamo cache."""
    _private_code_copy.count += 1
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{_private_code_copy.count}")
    copy = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


_private_code_copy.count = 0


def compile_method(obj: Any, method: Callable) -> Callable:
    """``torch.compile`` of ``method`` bound to ``obj``, from a private copy of its code.

    Dynamo keeps one cache per code object with a limit of 8 graphs, so sharing a method's
    code across more than 8 env variants (class, num_envs, ...) would silently fall back to eager.
    """
    return torch.compile(_private_code_copy(method).__get__(obj), dynamic=False, options=_INDUCTOR_OPTIONS)


def pack_flags(*flags: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Bool outputs of a compiled step as uint8 on CPU (see :func:`unpack_flags`); unchanged elsewhere.

    Inductor's CPU kernels store bool outputs ~10x slower than uint8 ones produced from float
    (torch 2.x); viewing them back as bool is free.
    """
    if flags[0].device.type == "cpu" and torch.compiler.is_compiling():
        return tuple(f.to(torch.float32).to(torch.uint8) for f in flags)
    return flags


def unpack_flags(*flags: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The bool views of what :func:`pack_flags` returned."""
    return tuple(f.view(torch.bool) if f.dtype == torch.uint8 else f for f in flags)


class TorchVecEnv(VectorEnv):
    """Base class of the native tensor environments.

    Subclasses describe one env as pure tensor functions over a batch of states:

    - ``_initial_state(n, options)`` draws ``n`` initial states with ``self.generator``;
    - ``_dynamics(state, action) -> (next_state, reward, terminated)``, pure and compilable;
    - ``_observe(state) -> obs`` (float32).

    This class adds the time limit, same-step autoreset with ``final_obs``, seeding,
    action validation and conversion (:func:`as_actions`: tensors, NumPy arrays such as
    ``env.action_space.sample()``, lists) and the optional ``torch.compile`` of the step.

    Simulation errors, the same for every native env (classic control and MuJoCo):
    ``info["sim_error"]`` (bool ``[N]``, on every step) marks the rows whose action was
    non-finite (NaN/inf) or whose next state, observation or reward is not finite (MuJoCo
    also: diverged physics). Such a row is reset in the same step and reported as
    ``truncated=True``, ``terminated=False``, with reward 0 and the non-finite entries of
    ``info["final_obs"]`` set to 0, so nothing non-finite leaks; the other rows are
    unaffected. The checks are tensor ops (no host sync on accelerators).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    state_dim: int
    max_episode_steps: int

    def __init__(
        self,
        num_envs: int,
        single_observation_space: gym.Space,
        single_action_space: gym.Space,
        max_episode_steps: int,
        device: Device = "cpu",
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        num_envs = check_num_envs(num_envs)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.num_envs = num_envs
        self.device = check_device(device)
        self.dtype = dtype
        self.max_episode_steps = int(max_episode_steps)
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.generator = torch.Generator(device=self.device)
        self._seed = new_seed() if seed is None else int(seed)
        self.generator.manual_seed(self._seed)
        self.state = torch.zeros(num_envs, self.state_dim, dtype=dtype, device=self.device)
        self.elapsed_steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._core: Callable = self._step_core
        if compile:
            self._core = compile_method(self, type(self)._step_core)
        self._needs_reset = True

    # --- to implement -------------------------------------------------------------------
    def _initial_state(self, n: int, options: dict[str, Any] | None) -> torch.Tensor:
        raise NotImplementedError

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- the vector API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset all envs, or only those in ``options["reset_mask"]`` (a bool tensor [N])."""
        if seed is not None:
            self._seed = int(seed)
            self.generator.manual_seed(self._seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self.state = self._initial_state(self.num_envs, options)
            self.elapsed_steps = torch.zeros_like(self.elapsed_steps)
        else:
            if not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and tuple(mask.shape) == (self.num_envs,)):
                raise ValueError(f"options['reset_mask'] must be a bool tensor of shape ({self.num_envs},)")
            mask = mask.to(self.device)
            self.state = torch.where(mask[:, None], self._initial_state(self.num_envs, options), self.state)
            self.elapsed_steps = torch.where(mask, 0, self.elapsed_steps)
        self._needs_reset = False
        return self._observe(self.state), {}

    def _step_core(self, state: torch.Tensor, elapsed: torch.Tensor, action: torch.Tensor):
        # Everything per-step that is pure tensor code, so that compile=True fuses it all
        # (dynamics, observation, time limit and the done mask) into one kernel.
        next_state, reward, terminated = self._dynamics(state, action)
        obs = self._observe(next_state)
        # One sum per row is non-finite iff one of its terms is (or it overflows, which only
        # absurd values reach): fewer kernels than isfinite().all() per tensor, in eager mode.
        total = next_state.sum(1) + obs.flatten(1).sum(1) + reward
        if action.dtype.is_floating_point:  # static under compile; integer actions are always finite
            total = total + action.flatten(1).sum(1)
        ok = torch.isfinite(total)
        sim_error = ~ok
        reward = torch.where(ok, reward, 0.0)
        obs = torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        terminated = terminated & ok  # a garbage state says nothing about termination
        elapsed = elapsed + 1
        truncated = (elapsed >= self.max_episode_steps) | sim_error
        done = terminated | truncated
        terminated, truncated, done, sim_error = pack_flags(terminated, truncated, done, sim_error)
        return next_state, obs, reward, terminated, truncated, done, sim_error, elapsed

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = as_actions(actions, self.single_action_space, self.num_envs, self.device)
        state, final_obs, reward, terminated, truncated, done, sim_error, elapsed = self._core(
            self.state, self.elapsed_steps, actions
        )
        terminated, truncated, done, sim_error = unpack_flags(terminated, truncated, done, sim_error)
        state, elapsed, obs = self._autoreset(state, elapsed, final_obs, done)
        self.state, self.elapsed_steps = state, elapsed
        info = {"final_obs": final_obs, "_final_obs": done, "sim_error": sim_error}
        return obs, reward, terminated, truncated, info

    def _autoreset(self, state, elapsed, final_obs, done):
        if self.device.type == "cpu":
            # The host is the device: resample only the finished rows, which is far cheaper
            # than drawing a fresh initial state for every env on every step.
            idx = done.nonzero().squeeze(1)
            if idx.numel() == 0:
                return state, elapsed, final_obs
            # `state` and `elapsed` come fresh out of _step_core, so they are written in
            # place, unless they share memory with what the caller may hold (the old state,
            # or final_obs when _observe returns the state itself).
            if _shares_memory(state, self.state) or _shares_memory(state, final_obs):
                state = state.clone()
            if _shares_memory(elapsed, self.elapsed_steps):
                elapsed = elapsed.clone()
            fresh = self._initial_state(idx.numel(), None)
            state.index_copy_(0, idx, fresh)
            elapsed.index_fill_(0, idx, 0)
            obs = final_obs.index_copy(0, idx, self._observe(fresh))  # out of place: final_obs is kept
            return state, elapsed, obs
        # Accelerators: draw for every row and select, so there is no host sync.
        fresh = self._initial_state(self.num_envs, None)
        state = torch.where(done[:, None], fresh, state)
        elapsed = torch.where(done, 0, elapsed)
        obs = torch.where(done[:, None], self._observe(fresh), final_obs)
        return state, elapsed, obs

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: physics state, step counters, RNG."""
        return {
            "state": self.state.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "generator": self.generator.get_state(),
            "needs_reset": self._needs_reset,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = (self.num_envs, self.state_dim)
        if tuple(state["state"].shape) != expected:
            raise ValueError(f"env state has shape {tuple(state['state'].shape)}, expected {expected}")
        self.state = state["state"].to(self.device, self.dtype).clone()
        self.elapsed_steps = state["elapsed_steps"].to(self.device).clone()
        self.generator.set_state(state["generator"])
        self._needs_reset = bool(state["needs_reset"])

    def uniform(self, n: int, low: Any, high: Any) -> torch.Tensor:
        """``n`` rows of U(low, high) in the state dtype, drawn from this env's generator."""
        low = torch.as_tensor(low, dtype=self.dtype, device=self.device)
        high = torch.as_tensor(high, dtype=self.dtype, device=self.device)
        shape = (n, *torch.broadcast_shapes(low.shape, high.shape))
        u = torch.rand(shape, generator=self.generator, dtype=self.dtype, device=self.device)
        return low + (high - low) * u

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, dtype={self.dtype})"


class TorchVecEnvWrapper(VectorWrapper):
    """Base of the tensor wrappers: forwards unknown public attributes to the wrapped env."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def state_dict(self) -> dict[str, Any]:
        """The state of the whole chain: ``{"env": inner chain, <ClassName>: own state}``."""
        inner = self.env.state_dict() if hasattr(self.env, "state_dict") else {}
        return {"env": inner, type(self).__name__: self._own_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
        self._load_own_state(state[type(self).__name__])

    def _own_state(self) -> dict[str, Any]:
        return {}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        pass
