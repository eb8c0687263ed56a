"""Off-policy replay storage: a ring buffer of vectorised transitions with n-step returns.

Layout is time-major ``[T, N, ...]`` (one row per :meth:`ReplayBuffer.add`, i.e. one step of
all N envs), on one device chosen at construction; nothing here moves a tensor to another
device, and neither ``add`` nor ``sample`` syncs with the host.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from policyopt.buffers.rollout import _resolve_device

_CONFIG_CHECKED = ("capacity", "num_envs", "obs_shape", "action_shape", "n_step")


def _shape(shape: tuple[int, ...] | int) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "int"


# Which input kinds may be cast silently into a storage kind: never bool<->number or
# float->int (information would be lost or a bug hidden); int->float is exact for any
# value an env would produce.
_CASTABLE = {"bool": {"bool"}, "int": {"int"}, "float": {"float", "int"}, "complex": {"complex"}}


class ReplayBuffer:
    """A ring buffer of the last ``capacity`` transitions of ``num_envs`` envs, for SAC/TD3/DQN.

    Storage holds ``T = ceil(capacity / num_envs)`` rows of N transitions (so up to
    ``T * N >= capacity`` transitions); once full, each :meth:`add` overwrites the oldest row.
    ``next_obs`` is the true next observation (``final_obs`` where an episode ended, since
    the envs autoreset), and ``terminated`` and ``truncated`` are kept apart, so a truncated
    transition bootstraps and a terminated one does not.

    :meth:`sample` returns ``obs, actions, rewards, next_obs, terminated, discounts``, for the
    target ``rewards + discounts * (1 - terminated) * Q(next_obs)``. With ``n_step > 1`` the
    reward is the discounted sum over up to ``n_step`` steps, cut at the first episode end
    (Sutton & Barto 2018, sec. 7.1; Hessel et al. 2018, "Rainbow"); ``discounts`` is
    ``gamma ** m`` for the ``m`` steps covered.

    Attributes (all ``[T, N, ...]``): ``obs, actions, rewards, next_obs, terminated, truncated``;
    ``pos`` (next row to write) and ``full`` (whether every row has been written).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...] | int,
        action_shape: tuple[int, ...] | int,
        device: str | torch.device = "cpu",
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        n_step: int = 1,
        gamma: float = 0.99,
        store_next_actions: bool = False,
    ) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if int(capacity) < int(num_envs):
            raise ValueError(f"capacity must be >= num_envs ({num_envs}), got {capacity!r}")
        if int(n_step) < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step!r}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        self.capacity, self.num_envs, self.n_step, self.gamma = int(capacity), int(num_envs), int(n_step), float(gamma)
        self.num_rows = math.ceil(self.capacity / self.num_envs)
        if self.num_rows < self.n_step:
            raise ValueError(
                f"capacity must hold at least n_step={self.n_step} rows of num_envs={self.num_envs} "
                f"(capacity >= {self.n_step * self.num_envs}), got {capacity!r}"
            )
        self.obs_shape, self.action_shape = _shape(obs_shape), _shape(action_shape)
        self.device = _resolve_device(device)
        T, N = self.num_rows, self.num_envs
        kw = dict(device=self.device)
        self.obs = torch.zeros((T, N, *self.obs_shape), dtype=obs_dtype, **kw)
        self.actions = torch.zeros((T, N, *self.action_shape), dtype=action_dtype, **kw)
        self.rewards = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.next_obs = torch.zeros((T, N, *self.obs_shape), dtype=obs_dtype, **kw)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, **kw)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, **kw)
        # the action taken (or to be taken) at next_obs: ReBRAC's critic penalty needs it
        self.next_actions = torch.zeros((T, N, *self.action_shape), dtype=action_dtype, **kw) if store_next_actions else None
        # gamma**k for k = 0..n_step, computed in float64 once so sums and discounts agree.
        self._gamma_pows = torch.tensor([self.gamma**k for k in range(self.n_step + 1)], dtype=torch.float32, **kw)
        self.pos = 0
        self.full = False

    # --- sizes -------------------------------------------------------------------------
    @property
    def rows_filled(self) -> int:
        """Rows written so far (at most ``num_rows``)."""
        return self.num_rows if self.full else self.pos

    def __len__(self) -> int:
        return self.rows_filled * self.num_envs

    @property
    def num_sampleable(self) -> int:
        """Transitions :meth:`sample` can return: the newest ``n_step - 1`` rows have no full window yet."""
        return max(self.rows_filled - self.n_step + 1, 0) * self.num_envs

    # --- filling -----------------------------------------------------------------------
    def _check(self, name: str, x: Any, like: Tensor) -> None:
        shape, dtype = (self.num_envs, *like.shape[2:]), like.dtype
        want = f"a {dtype} (or castable) tensor of shape {shape} on {self.device}"
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}: expected {want}, got {type(x).__name__}")
        if tuple(x.shape) != shape or x.device != self.device or _kind(x.dtype) not in _CASTABLE[_kind(dtype)]:
            raise ValueError(f"{name}: expected {want}, got a {x.dtype} tensor of shape {tuple(x.shape)} on {x.device}")

    @torch.no_grad()  # the buffer holds data, never part of a graph
    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        next_actions: Tensor | None = None,
    ) -> None:
        """Store one step of all envs, overwriting the oldest row once full.

        ``next_obs`` is the true next observation: ``info["final_obs"]`` where
        ``terminated | truncated``, the returned observation elsewhere. ``next_actions`` (the
        action at ``next_obs``) is required exactly when the buffer stores them. Raises ``ValueError``
        on a non-tensor, a shape or device mismatch, or a dtype that cannot be cast without
        loss of meaning (float into bool or integer storage, bool into numbers).
        """
        items = (
            ("obs", obs, self.obs),
            ("actions", actions, self.actions),
            ("rewards", rewards, self.rewards),
            ("next_obs", next_obs, self.next_obs),
            ("terminated", terminated, self.terminated),
            ("truncated", truncated, self.truncated),
        )
        if (next_actions is None) != (self.next_actions is None):
            raise ValueError(
                "next_actions: pass them exactly when the buffer was built with store_next_actions=True "
                f"(this one: {self.next_actions is not None})"
            )
        if next_actions is not None:
            items += (("next_actions", next_actions, self.next_actions),)
        for name, x, store in items:  # validate all before writing any, so a bad call leaves no half row
            self._check(name, x, store)
        t = self.pos
        for _, x, store in items:
            store[t].copy_(x)
        self.pos = (t + 1) % self.num_rows
        self.full = self.full or self.pos == 0

    # --- sampling ----------------------------------------------------------------------
    def sample(self, batch_size: int) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement (global torch RNG, on the device).

        Returns ``obs, actions, next_obs`` (and ``next_actions`` where stored) and float32 ``[B]``
        ``rewards, terminated, discounts``. Raises ``ValueError`` when fewer than one full n-step window is stored.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        available = self.num_sampleable
        if available == 0:
            raise ValueError(
                f"cannot sample: the buffer holds {len(self)} transitions ({self.rows_filled} rows of "
                f"{self.num_envs} envs) and needs at least {self.n_step} rows ({self.n_step * self.num_envs} "
                f"transitions) for n_step={self.n_step}"
            )
        B, N, T, n = int(batch_size), self.num_envs, self.num_rows, self.n_step
        idx = torch.randint(0, available, (B,), device=self.device)
        oldest = self.pos if self.full else 0
        start = (oldest + torch.div(idx, N, rounding_mode="floor")) % T
        env = idx % N
        batch = {"obs": self.obs[start, env], "actions": self.actions[start, env]}
        if n == 1:
            batch["rewards"] = self.rewards[start, env]
            batch["next_obs"] = self.next_obs[start, env]
            batch["terminated"] = self.terminated[start, env].float()
            batch["discounts"] = self._gamma_pows[1].expand(B).clone()
            if self.next_actions is not None:
                batch["next_actions"] = self.next_actions[start, env]
            return batch

        # The [B, n] window of rows t..t+n-1; step k counts while no episode ended before it.
        rows = (start[:, None] + torch.arange(n, device=self.device)) % T
        cols = env[:, None]
        done = (self.terminated[rows, cols] | self.truncated[rows, cols]).to(torch.int32)
        ended_before = torch.cumsum(done, dim=1) - done
        alive = (ended_before == 0).float()
        m = alive.sum(dim=1).long()  # steps covered, 1..n
        batch["rewards"] = (alive * self._gamma_pows[:n] * self.rewards[rows, cols]).sum(dim=1)
        last = rows.gather(1, (m - 1)[:, None]).squeeze(1)
        batch["next_obs"] = self.next_obs[last, env]
        # only a true terminal stops the bootstrap; a truncation just cuts the window short
        batch["terminated"] = self.terminated[last, env].float()
        batch["discounts"] = self._gamma_pows[m]
        if self.next_actions is not None:
            batch["next_actions"] = self.next_actions[last, env]
        return batch

    # --- checkpointing -----------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "obs_shape": list(self.obs_shape),
            "action_shape": list(self.action_shape),
            "n_step": self.n_step,
            "gamma": self.gamma,
            "obs_dtype": str(self.obs.dtype),
            "action_dtype": str(self.actions.dtype),
        }

    def _stores(self) -> dict[str, Tensor]:
        return {
            "obs": self.obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "next_obs": self.next_obs,
            "terminated": self.terminated,
            "truncated": self.truncated,
            **({"next_actions": self.next_actions} if self.next_actions is not None else {}),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the config, ``pos``, ``full`` and the filled rows."""
        rows = self.rows_filled
        return {
            "config": self._config(),
            "pos": self.pos,
            "full": self.full,
            "data": {k: v[:rows].clone() for k, v in self._stores().items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output onto this buffer's device.

        Raises ``ValueError`` when ``capacity``, ``num_envs``, the shapes or ``n_step`` differ
        from this buffer's. ``gamma`` and the dtypes are this buffer's own (rewards are stored
        undiscounted, so a new gamma applies cleanly).
        """
        config = state["config"]
        mine = self._config()
        for key in _CONFIG_CHECKED:
            if config.get(key) != mine[key]:
                raise ValueError(
                    f"state_dict does not match this buffer: {key} is {config.get(key)!r} in the state, {mine[key]!r} here"
                )
        pos, full = int(state["pos"]), bool(state["full"])
        if not 0 <= pos < self.num_rows:
            raise ValueError(f"state_dict pos must be in 0..{self.num_rows - 1}, got {pos}")
        rows = self.num_rows if full else pos
        data = state["data"]
        stores = self._stores()
        if set(data) != set(stores):
            raise ValueError(f"state_dict data must hold {sorted(stores)}, got {sorted(data)}")
        for k, store in stores.items():  # validate all before writing any
            x = data[k]
            if not isinstance(x, Tensor) or tuple(x.shape) != (rows, *store.shape[1:]):
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"state_dict data[{k!r}]: expected shape {(rows, *store.shape[1:])}, got {got}")
            if _kind(x.dtype) not in _CASTABLE[_kind(store.dtype)]:
                raise ValueError(f"state_dict data[{k!r}]: expected dtype {store.dtype} (or castable), got {x.dtype}")
        for k, store in stores.items():
            store.zero_()
            store[:rows].copy_(data[k].to(self.device))
        self.pos, self.full = pos, full

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(capacity={self.capacity}, num_envs={self.num_envs}, obs_shape={self.obs_shape}, "
            f"action_shape={self.action_shape}, device={self.device}, n_step={self.n_step}, gamma={self.gamma}, "
            f"len={len(self)})"
        )
