"""The MuJoCo tensor env: Gymnasium task logic in torch over a batched physics backend."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from policyopt.vecenvs.core import Device, TorchVecEnv, as_actions, compile_method, pack_flags, unpack_flags
from policyopt.vecenvs.mujoco.tasks import Fields, LocomotionTask, make_task

# mju_isBad's threshold (engine_util_misc.h mjMAXVAL): MuJoCo treats larger values as diverged
_MAXVAL = 1e10


def require(module: str, extra: str) -> Any:
    """Import ``module`` or fail naming the policyopt extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this MuJoCo backend needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'policyopt[{extra}]'"
        ) from e


class Physics(Protocol):
    """What a physics backend gives :class:`MujocoVecEnv` (see cpu.py and warp.py)."""

    device: torch.device  # where its tensors live

    def read(self) -> Fields:
        """float64 qpos, qvel, ctrl and the task's derived fields, as after mj_step (+ rnePostConstraint)."""
        ...

    def step(self, actions: torch.Tensor) -> torch.Tensor:
        """Set ctrl from ``actions`` [N, nu], with the rows that hold a NaN or inf zeroed (as
        MuJoCo's mjWARN_BADCTRL does, without its warning), and advance every env by
        frame_skip substeps; returns bool [N], the envs whose simulation failed."""
        ...

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """mj_resetData, then qpos/qvel from the given rows, then mj_forward, for the envs in ``mask``."""
        ...

    def get_state(self) -> dict[str, torch.Tensor]: ...

    def set_state(self, state: dict[str, torch.Tensor]) -> None: ...


class MujocoVecEnv(TorchVecEnv):
    """A batch of Gymnasium MuJoCo locomotion envs (v5 or v4 semantics) as torch tensors.

    The physics runs in ``physics`` (MuJoCo C through mjbatch on CPU threads, or MuJoCo
    Warp); observations, rewards, termination and reset noise are batched torch code from
    :mod:`vecenvs.mujoco.tasks`. Autoreset is same-step as in :class:`TorchVecEnv`, with
    ``info["final_obs"]``/``info["_final_obs"]``, and ``info["sim_error"]`` handled as for
    every native env (see :class:`TorchVecEnv`): a non-finite action, a diverged simulation
    (MuJoCo's bad qpos/qvel/qacc autoreset, a non-finite or huge qpos/qvel, a MuJoCo
    error) or a non-finite observation or reward (also after the cast to float32, e.g. the
    control cost of a 1e30 action) resets that env as truncated, with reward 0.
    """

    state_dim = 0  # the physics state lives in the backend, not in ``self.state``

    def __init__(
        self,
        env_id: str,
        backend: str,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 1000,
        backend_options: dict[str, Any] | None = None,
        compile: bool = False,
        **task_kwargs: Any,
    ) -> None:
        name, _, version = env_id.partition("-")
        self.env_id = env_id
        self.task: LocomotionTask = make_task(name, version, **task_kwargs)
        mujoco = require("mujoco", "mujoco")
        model = mujoco.MjModel.from_xml_path(self.task.model_xml_path())
        self.model = model
        self.task.bind_model(
            nq=model.nq,
            nv=model.nv,
            nbody=model.nbody,
            body_mass=torch.as_tensor(model.body_mass.copy()),
            body_names=[model.body(i).name for i in range(model.nbody)],
            dt=model.opt.timestep * self.task.frame_skip,
        )
        obs_dtype = np.float32 if dtype == torch.float32 else np.float64
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.task.obs_dim(),), dtype=obs_dtype)
        low, high = model.actuator_ctrlrange.copy().astype(np.float32).T  # MujocoEnv._set_action_space
        act_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        super().__init__(num_envs, obs_space, act_space, max_episode_steps, device, seed, dtype)
        self.backend = backend
        opts = dict(backend_options or {})
        if backend == "cpu":
            from policyopt.vecenvs.mujoco.cpu import CpuPhysics

            self.physics: Physics = CpuPhysics(model, num_envs, self.task, **opts)
        elif backend == "warp":
            from policyopt.vecenvs.mujoco.warp import WarpPhysics

            self.physics = WarpPhysics(model, num_envs, self.task, self.device, **opts)
        else:
            raise ValueError(
                f"unknown MuJoCo backend {backend!r}; available: 'cpu', 'warp' (and 'gymnasium' through vecenvs.make)"
            )
        # Gymnasium's init_qpos / init_qvel are MjData's values at construction: qpos0 and zeros
        self.init_qpos = torch.as_tensor(model.qpos0.copy(), dtype=torch.float64, device=self.device)
        self.init_qvel = torch.zeros(model.nv, dtype=torch.float64, device=self.device)
        k = 1 if self.task.name in ("Hopper", "Walker2d", "HalfCheetah") else 2  # x, or x and y
        self._pos_before = torch.zeros(num_envs, k, dtype=torch.float64, device=self.physics.device)
        self.metadata = {**self.metadata, "render_fps": int(np.round(1.0 / self.task.dt))}
        self._outcome = compile_method(self, type(self)._outcome_eager) if compile else self._outcome_eager

    # --- helpers ------------------------------------------------------------------------
    def _reset_rows(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reset the envs in ``mask`` (on the physics device); their fresh obs and positions [N, ...]."""
        sim = self.physics.device
        n = self.num_envs
        if self.device.type == "cpu":  # host: draw only the rows that reset
            idx = mask.nonzero().squeeze(1)
            qpos = self.init_qpos.expand(n, -1).clone()
            qvel = self.init_qvel.expand(n, -1).clone()
            qpos[idx], qvel[idx] = self.task.reset_state(self.generator, self.init_qpos, self.init_qvel, idx.numel())
        else:  # accelerator: draw every row and select, no host sync
            qpos, qvel = self.task.reset_state(self.generator, self.init_qpos, self.init_qvel, n)
        self.physics.reset(mask.to(sim), qpos.to(sim), qvel.to(sim))
        f = self.physics.read()
        return self.task.observe(f), self.task.position(f).clone()

    # --- the vector API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset all envs, or only those in ``options["reset_mask"]`` (a bool tensor [N]).

        With a mask, the returned observation rows of the other envs are their current
        observation only if the physics has not been touched since their last step.
        """
        if seed is not None:
            self._seed = int(seed)
            self.generator.manual_seed(self._seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        elif not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and tuple(mask.shape) == (self.num_envs,)):
            raise ValueError(f"options['reset_mask'] must be a bool tensor of shape ({self.num_envs},)")
        mask = mask.to(self.device)
        obs, pos = self._reset_rows(mask.to(self.physics.device))
        m = mask.to(pos.device)
        self._pos_before = torch.where(m[:, None], pos, self._pos_before)
        self.elapsed_steps = torch.where(mask, 0, self.elapsed_steps)
        self._needs_reset = False
        return obs.to(self.device, self.dtype), {}

    def set_qpos_qvel(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Gymnasium's ``reset`` with a given state (``mj_resetData``; ``set_state(qpos, qvel)``)
        for the envs in ``mask`` (all by default): restarts their episodes; returns their obs."""
        sim = self.physics.device
        n = self.num_envs
        mask = torch.ones(n, dtype=torch.bool, device=sim) if mask is None else mask.to(sim)
        q = torch.as_tensor(qpos, dtype=torch.float64, device=sim).expand(n, self.model.nq)
        v = torch.as_tensor(qvel, dtype=torch.float64, device=sim).expand(n, self.model.nv)
        self.physics.reset(mask, q, v)
        f = self.physics.read()
        self._pos_before = torch.where(mask[:, None], self.task.position(f), self._pos_before)
        self.elapsed_steps = torch.where(mask.to(self.device), 0, self.elapsed_steps)
        self._needs_reset = False
        return self.task.observe(f).to(self.device, self.dtype)

    def _outcome_eager(
        self, f: Fields, pos_before: torch.Tensor, act: torch.Tensor, failed: torch.Tensor, elapsed: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The task logic after a physics step, as pure tensor code (compiled with ``compile=True``).

        Returns obs (env dtype), reward (float32), terminated, truncated, done, sim_error,
        position and elapsed steps (before autoreset).
        """
        pos = self.task.position(f).clone()  # clone: a view the next physics call overwrites
        velocity = (pos - pos_before) / self.task.dt  # (pos_after - pos_before) / dt, as in every *_v5.step
        reward, terminated = self.task.reward_terminated(f, velocity, act)
        # Checked after the casts: a float64 value can overflow float32 (a 1e30 action's
        # control cost is -3e57, -inf as float32).
        reward = reward.to(torch.float32)
        obs = self.task.observe(f).to(self.dtype)
        # |x| <= mjMAXVAL is False for NaN, inf and values MuJoCo calls diverged
        state_ok = (f["qpos"].abs() <= _MAXVAL).all(1) & (f["qvel"].abs() <= _MAXVAL).all(1)
        obs_finite = torch.isfinite(obs)
        bad_action = ~torch.isfinite(act).all(1)
        sim_error = bad_action | failed | ~state_ok | ~obs_finite.all(1) | ~torch.isfinite(reward)
        reward = torch.where(sim_error, 0.0, reward)
        obs = torch.where(obs_finite, obs, 0.0)
        terminated = terminated & ~sim_error  # a diverged state says nothing about termination
        elapsed = elapsed + 1
        truncated = (elapsed >= self.max_episode_steps) | sim_error
        done = terminated | truncated
        terminated, truncated, done, sim_error = pack_flags(terminated, truncated, done, sim_error)
        return obs, reward, terminated, truncated, done, sim_error, pos, elapsed

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = as_actions(actions, self.single_action_space, self.num_envs, self.device)
        sim = self.physics.device
        act = actions.to(sim)
        failed = self.physics.step(act)
        obs, reward, terminated, truncated, done, sim_error, pos, elapsed = self._outcome(
            self.physics.read(), self._pos_before, act, failed, self.elapsed_steps.to(sim)
        )
        terminated, truncated, done, sim_error = unpack_flags(terminated, truncated, done, sim_error)
        final_obs = obs
        self._pos_before = pos
        # On the host the check is free and skips the reset call on most steps; on an
        # accelerator the masked reset always runs, so a step never syncs with the host.
        if sim.type != "cpu" or bool(done.any()):
            new_obs, new_pos = self._reset_rows(done)
            obs = torch.where(done[:, None], new_obs.to(obs.dtype), final_obs)
            self._pos_before = torch.where(done[:, None], new_pos, pos)
            elapsed = torch.where(done, 0, elapsed)
        dev = self.device
        self.elapsed_steps = elapsed.to(dev)
        info = {"final_obs": final_obs.to(dev), "_final_obs": done.to(dev), "sim_error": sim_error.to(dev)}
        return obs.to(dev), reward.to(dev), terminated.to(dev), truncated.to(dev), info

    def state_dict(self) -> dict[str, Any]:
        """Physics state (incl. warm starts), reward bookkeeping, step counters and RNG."""
        return {
            "physics": {k: v.clone() for k, v in self.physics.get_state().items()},
            "pos_before": self._pos_before.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "generator": self.generator.get_state(),
            "needs_reset": self._needs_reset,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.physics.set_state(state["physics"])
        self._pos_before = state["pos_before"].to(self.physics.device).clone()
        self.elapsed_steps = state["elapsed_steps"].to(self.device).clone()
        self.generator.set_state(state["generator"])
        self._needs_reset = bool(state["needs_reset"])

    def close(self, **kwargs: Any) -> None:
        close = getattr(self.physics, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"MujocoVecEnv({self.env_id!r}, backend={self.backend!r}, num_envs={self.num_envs}, device={self.device})"
