"""On-policy rollout storage and generalized advantage estimation.

Layout is time-major ``[T, N, ...]`` (T steps of N envs), on one device chosen at
construction; nothing here ever moves a tensor to another device.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

STORED_PREFIX = "stored."


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over a ``[T, N]`` rollout.

    ``next_values[t]`` is the value of the state reached by step ``t``: ``V(obs_{t+1})``, or
    ``V(final_obs_t)`` where the episode ended at ``t``. ``terminated[t]`` removes the
    bootstrap (a true terminal state has value 0), ``done[t] = terminated | truncated`` cuts
    the recursion so advantages never leak across episodes. Returns ``(advantages, returns)``
    with ``returns = advantages + values`` (the TD(lambda) value targets).
    """
    if not (rewards.shape == values.shape == next_values.shape == terminated.shape == done.shape):
        raise ValueError(
            "gae needs equal [T, N] shapes; got rewards "
            f"{tuple(rewards.shape)}, values {tuple(values.shape)}, next_values {tuple(next_values.shape)}, "
            f"terminated {tuple(terminated.shape)}, done {tuple(done.shape)}"
        )
    dtype = values.dtype
    not_term = 1.0 - terminated.to(dtype)
    not_done = 1.0 - done.to(dtype)
    # delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)  (Schulman et al. 2016, GAE eq. 10)
    deltas = rewards.to(dtype) + gamma * not_term * next_values.to(dtype) - values
    advantages = torch.empty_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        # A_t = delta_t + gamma * lam * A_{t+1}, reset at episode ends  (Schulman et al. 2016, eq. 16)
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values


def stored_of(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The policy's ``stored`` dict out of a batch from :meth:`RolloutBuffer.minibatches` (prefix stripped)."""
    n = len(STORED_PREFIX)
    return {k[n:]: v for k, v in batch.items() if k.startswith(STORED_PREFIX)}


def _resolve_device(device: str | torch.device) -> torch.device:
    # "cuda" -> "cuda:0" etc., so device checks compare equal to the devices tensors report.
    return torch.empty(0, device=device).device


class RolloutBuffer:
    """Fixed-size storage for ``num_steps`` steps of ``num_envs`` envs, for PPO/TRPO/SPO.

    Each :meth:`add` writes one step. ``stored`` holds whatever the policy's ``explore()``
    returned (allocated on the first ``add`` with the same shapes and dtypes), so policies
    with other per-step needs than a log-probability use the same buffer. After
    :meth:`compute_advantages`, :meth:`minibatches` and :meth:`flat` give flat ``[T*N, ...]``
    batches with keys ``obs, actions, values, advantages, returns`` and ``stored.<name>``.

    Attributes (all ``[T, N, ...]``): ``obs, actions, rewards, terminated, truncated, values,
    final_obs, advantages, returns`` and the dict ``stored``.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...] | int,
        action_shape: tuple[int, ...] | int,
        device: str | torch.device,
        action_dtype: torch.dtype = torch.float32,
        obs_dtype: torch.dtype = torch.float32,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if int(num_steps) < 1 or int(num_envs) < 1:
            raise ValueError(f"num_steps and num_envs must be >= 1, got {num_steps}, {num_envs}")
        self.num_steps, self.num_envs = int(num_steps), int(num_envs)
        self.obs_shape = (int(obs_shape),) if isinstance(obs_shape, int) else tuple(int(s) for s in obs_shape)
        self.action_shape = (int(action_shape),) if isinstance(action_shape, int) else tuple(int(s) for s in action_shape)
        self.device = _resolve_device(device)
        T, N = self.num_steps, self.num_envs
        kw = dict(device=self.device)
        self.obs = torch.zeros((T, N, *self.obs_shape), dtype=obs_dtype, **kw)
        self.actions = torch.zeros((T, N, *self.action_shape), dtype=action_dtype, **kw)
        self.rewards = torch.zeros((T, N), dtype=dtype, **kw)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, **kw)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, **kw)
        self.values = torch.zeros((T, N), dtype=dtype, **kw)
        self.final_obs = torch.zeros((T, N, *self.obs_shape), dtype=obs_dtype, **kw)
        self.advantages = torch.zeros((T, N), dtype=dtype, **kw)
        self.returns = torch.zeros((T, N), dtype=dtype, **kw)
        self.stored: dict[str, Tensor] = {}
        self.pos = 0
        self._advantages_ready = False

    # --- filling -----------------------------------------------------------------------
    @property
    def full(self) -> bool:
        """Whether all ``num_steps`` steps have been added since the last :meth:`reset`."""
        return self.pos == self.num_steps

    @property
    def num_samples(self) -> int:
        """Samples per full rollout, ``num_steps * num_envs``."""
        return self.num_steps * self.num_envs

    def _check(self, name: str, x: Tensor, shape: tuple[int, ...]) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor of shape {shape} on {self.device}, got {type(x).__name__}")
        if tuple(x.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"{name}: expected device {self.device}, got {x.device}")

    @torch.no_grad()  # the buffer holds data, never part of a graph
    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        values: Tensor,
        final_obs: Tensor,
        stored: dict[str, Tensor],
    ) -> None:
        """Store step ``pos``: the observation the action was taken in, the action, and its outcome.

        ``final_obs`` is the dense ``[N, ...]`` ``info["final_obs"]``; only rows where
        ``terminated | truncated`` are read. Raises ``RuntimeError`` when full and
        ``ValueError`` on a shape, device or (float into integer) dtype mismatch.
        """
        if self.full:
            raise RuntimeError(f"RolloutBuffer is full ({self.num_steps} steps); call reset() before adding more")
        N = self.num_envs
        self._check("obs", obs, (N, *self.obs_shape))
        self._check("actions", actions, (N, *self.action_shape))
        self._check("rewards", rewards, (N,))
        self._check("terminated", terminated, (N,))
        self._check("truncated", truncated, (N,))
        self._check("values", values, (N,))
        self._check("final_obs", final_obs, (N, *self.obs_shape))
        if actions.dtype.is_floating_point and not self.actions.dtype.is_floating_point:
            raise ValueError(
                f"actions: expected dtype {self.actions.dtype} (buffer action_dtype), got {actions.dtype}; "
                "floating actions would be truncated"
            )
        if not isinstance(stored, dict):
            raise ValueError(f"stored: expected the dict returned by policy.explore(), got {type(stored).__name__}")
        if not self.stored:
            for k, v in stored.items():  # validate every entry before allocating any
                self._check(f"stored[{k!r}]", v, (N, *getattr(v, "shape", (None,))[1:]))
            for k, v in stored.items():
                self.stored[k] = torch.zeros((self.num_steps, *v.shape), dtype=v.dtype, device=self.device)
        elif set(stored) != set(self.stored):
            raise ValueError(f"stored: expected keys {sorted(self.stored)}, got {sorted(stored)}")

        t = self.pos
        self.obs[t].copy_(obs)
        self.actions[t].copy_(actions)
        self.rewards[t].copy_(rewards)
        self.terminated[t].copy_(terminated)
        self.truncated[t].copy_(truncated)
        self.values[t].copy_(values)
        self.final_obs[t].copy_(final_obs)
        for k, v in stored.items():
            self._check(f"stored[{k!r}]", v, tuple(self.stored[k].shape[1:]))
            self.stored[k][t].copy_(v)
        self.pos += 1
        self._advantages_ready = False

    def reset(self) -> None:
        """Start a new rollout: ``pos`` back to 0; the tensors are kept and overwritten."""
        self.pos = 0
        self._advantages_ready = False

    # --- advantages --------------------------------------------------------------------
    @torch.no_grad()
    def compute_advantages(
        self,
        last_values: Tensor,
        final_values: Tensor | None,
        gamma: float,
        lam: float,
        truncation_as_termination: bool = False,
    ) -> None:
        """Fill ``advantages`` and ``returns`` with GAE over the full rollout.

        ``last_values`` is ``V(obs after the last step)`` ``[N]``; ``final_values`` is
        ``V(final_obs)`` ``[T, N]`` (evaluate the critic on ``buffer.final_obs``; only rows
        that ended are used). By default a truncated episode bootstraps from
        ``V(final_obs)`` (Pardo et al. 2018, "Time Limits in RL"). With
        ``truncation_as_termination=True`` truncation is treated as termination, which
        reproduces CleanRL's PPO exactly; ``final_values`` may then be ``None``.
        """
        if not self.full:
            raise RuntimeError(f"compute_advantages needs a full buffer; {self.pos}/{self.num_steps} steps added")
        T, N = self.num_steps, self.num_envs
        self._check("last_values", last_values, (N,))
        done = self.terminated | self.truncated
        terminated = done if truncation_as_termination else self.terminated
        next_values = torch.cat([self.values[1:], last_values.to(self.values.dtype)[None]], dim=0)
        if final_values is not None:
            self._check("final_values", final_values, (T, N))
            # where an episode ended at t, the next state is final_obs_t, not the reset obs_{t+1}
            next_values = torch.where(done, final_values.to(self.values.dtype), next_values)
        elif not truncation_as_termination:
            raise ValueError("final_values (V(buffer.final_obs), [T, N]) is required unless truncation_as_termination=True")
        adv, ret = gae(self.rewards, self.values, next_values, terminated, done, gamma, lam)
        self.advantages.copy_(adv)
        self.returns.copy_(ret)
        self._advantages_ready = True

    # --- reading -----------------------------------------------------------------------
    def flat(self) -> dict[str, Tensor]:
        """The whole rollout flattened to ``[T*N, ...]`` (views, no copy)."""
        if not self.full:
            raise RuntimeError(f"the buffer is not full: {self.pos}/{self.num_steps} steps added")
        if not self._advantages_ready:
            raise RuntimeError("call compute_advantages() before reading batches")
        S = self.num_samples
        batch = {
            "obs": self.obs.reshape(S, *self.obs_shape),
            "actions": self.actions.reshape(S, *self.action_shape),
            "values": self.values.reshape(S),
            "advantages": self.advantages.reshape(S),
            "returns": self.returns.reshape(S),
        }
        for k, v in self.stored.items():
            batch[STORED_PREFIX + k] = v.reshape(S, *v.shape[2:])
        return batch

    def minibatches(self, num_minibatches: int, generator: torch.Generator | None = None) -> Iterator[dict[str, Tensor]]:
        """One shuffled pass over all ``T*N`` samples in ``num_minibatches`` batches.

        Every sample appears exactly once; when ``num_minibatches`` does not divide ``T*N`` the
        batch sizes differ by at most one. The permutation is drawn on the buffer's device
        (``generator``, if given, must live there), so nothing leaves the device.
        """
        if not 1 <= int(num_minibatches) <= self.num_samples:
            raise ValueError(f"num_minibatches must be in 1..{self.num_samples}, got {num_minibatches}")
        flat = self.flat()  # validates eagerly, before the first batch is requested
        perm = torch.randperm(self.num_samples, generator=generator, device=self.device)
        return ({k: v[idx] for k, v in flat.items()} for idx in torch.tensor_split(perm, int(num_minibatches)))

    stored_of = staticmethod(stored_of)

    def __repr__(self) -> str:
        return (
            f"RolloutBuffer(num_steps={self.num_steps}, num_envs={self.num_envs}, obs_shape={self.obs_shape}, "
            f"action_shape={self.action_shape}, device={self.device}, pos={self.pos})"
        )
