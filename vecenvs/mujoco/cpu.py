"""CPU physics: MuJoCo C on a thread pool through mjbatch, bit-identical to Gymnasium.

mjbatch keeps one persistent ``mjSTATE_INTEGRATION`` row per env (qpos, qvel, act, ctrl,
qacc_warmstart, time, ...) and steps them on a C++ thread pool with the GIL released, so
there is no Python loop over envs, and the solver warm start of every env persists exactly
as in one ``MjData`` per env. Its bound fields are live NumPy views, which we wrap with
``torch.from_numpy`` (zero copy; the env clones what it keeps across calls).

``cfrc_ext`` (Ant, Humanoid) needs ``mj_rnePostConstraint`` on the ``MjData`` that
``mj_step`` leaves (with RK4 that is the last Runge-Kutta stage), which mjbatch does not
run. We replay each env's last substep from mjbatch's per-substep state history on a
private ``MjData`` per worker thread (``mj_setState`` + ``mj_step`` + ``mj_rnePostConstraint``;
the MuJoCo calls release the GIL), which reproduces Gymnasium's ``cfrc_ext`` bit for bit at
the cost of one extra substep per env step plus a few microseconds of Python per env.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from policyopt.vecenvs.mujoco.base import require
from policyopt.vecenvs.mujoco.tasks import Fields, LocomotionTask

_VIEWED = ("qpos", "qvel", "ctrl", "time")


class CpuPhysics:
    """N MuJoCo simulations on CPU threads (mjbatch), read through zero-copy torch views."""

    device = torch.device("cpu")

    def __init__(self, model: Any, num_envs: int, task: LocomotionTask, num_threads: int | None = None) -> None:
        self.mujoco = require("mujoco", "mujoco")
        mjbatch = require("mjbatch", "mujoco")
        self.model = model
        self.n = num_envs
        self.frame_skip = task.frame_skip
        self.dt = float(model.opt.timestep)
        threads = int(num_threads) if num_threads else min(num_envs, os.cpu_count() or 1)
        self.batch = mjbatch.Batch(model, num_envs, threads)
        self._state_np = self.batch.bind("state")
        self._np = {k: self.batch.bind(k) for k in (*_VIEWED, *(d for d in task.derived if d != "cfrc_ext"))}
        self.views = {k: torch.from_numpy(v) for k, v in self._np.items()}
        self.replay = task.needs_cfrc_ext
        if self.replay:
            self._hist = np.zeros((num_envs, self.frame_skip, self.batch.nstate))
            self._cfrc = np.zeros((num_envs, model.nbody, 6))
            self.views["cfrc_ext"] = torch.from_numpy(self._cfrc)
            self._spec = int(self.mujoco.mjtState.mjSTATE_INTEGRATION)
            self._nthreads = max(1, min(threads, num_envs))
            self._datas = [self.mujoco.MjData(model) for _ in range(self._nthreads)]
            self._pool = ThreadPoolExecutor(self._nthreads) if self._nthreads > 1 else None
            self._ok = np.ones(num_envs, dtype=bool)

    def read(self) -> Fields:
        return dict(self.views)

    # --- stepping -----------------------------------------------------------------------
    def step(self, actions: torch.Tensor) -> torch.Tensor:
        ctrl = self._np["ctrl"]
        ctrl[:] = actions.detach().numpy()
        bad = ~np.isfinite(ctrl).all(1)
        if bad.any():
            ctrl[bad] = 0.0
        t0 = self._np["time"].copy()
        if self.replay and self.frame_skip == 1:
            self._hist[:, 0] = self._state_np  # the state before the (only) substep
        try:
            self.batch.step(None, self.frame_skip, self._hist if self.replay and self.frame_skip > 1 else None)
        except RuntimeError:
            pass  # a MuJoCo error in some env: it kept its pre-call state, so its clock did not move (below)
        # Each substep adds timestep to time; MuJoCo's own bad qpos/qvel/qacc autoreset
        # (mj_checkPos/Vel/Acc -> mj_resetData) or an error leaves it elsewhere.
        expected = t0 + self.frame_skip * self.dt
        failed = ~(np.abs(self._np["time"] - expected) < 0.5 * self.dt)
        if self.replay:
            self._replay_cfrc_ext(~failed)
        return torch.from_numpy(failed)

    def _replay_cfrc_ext(self, ok: np.ndarray) -> None:
        """cfrc_ext as Gymnasium's ``mj_step(nstep) ; mj_rnePostConstraint`` leaves it."""
        row = 0 if self.frame_skip == 1 else self.frame_skip - 2  # state before the last substep
        mj, m, spec, hist, out = self.mujoco, self.model, self._spec, self._hist, self._cfrc
        self._ok = ok

        def work(k: int) -> None:
            d = self._datas[k]
            for i in range(k, self.n, self._nthreads):  # strided split: envs of equal cost on average
                if not ok[i]:
                    out[i] = 0.0
                    continue
                try:
                    mj.mj_setState(m, d, hist[i, row], spec)
                    mj.mj_step(m, d)
                    mj.mj_rnePostConstraint(m, d)
                    out[i] = d.cfrc_ext
                except Exception:  # noqa: BLE001 - the env is flagged by the time check already
                    out[i] = 0.0

        if self._pool is None:
            work(0)
        else:
            list(self._pool.map(work, range(self._nthreads)))

    # --- resets -------------------------------------------------------------------------
    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        m = mask.numpy()
        idx = np.flatnonzero(m)
        if idx.size == 0:
            return
        want_q, want_v = qpos.numpy()[idx], qvel.numpy()[idx]
        # Pending writes, then mj_resetData + the writes + mj_forward: Gymnasium's reset order
        # (mj_resetData; reset_model -> set_state -> mj_forward).
        self._np["qpos"][idx] = want_q
        self._np["qvel"][idx] = want_v
        self.batch.reset(m)
        # mjbatch re-applies only elements that changed since its last sync; a value equal to
        # the old one would come back as the model default, so check and fix.
        bad = ~((self._np["qpos"][idx] == want_q).all(1) & (self._np["qvel"][idx] == want_v).all(1))
        if bad.any():
            fix = idx[bad]
            self._np["qpos"][fix] = want_q[bad]
            self._np["qvel"][fix] = want_v[bad]
            self.batch.forward(fix)
        if self.replay:
            self._cfrc[idx] = 0.0  # mj_resetData zeroes cfrc_ext and mj_forward does not compute it

    # --- checkpointing ------------------------------------------------------------------
    def get_state(self) -> dict[str, torch.Tensor]:
        """Each env's mjSTATE_INTEGRATION row (time, qpos, qvel, act, warm start, ctrl, ...)."""
        return {"state": torch.from_numpy(self._state_np.copy())}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        s = state["state"]
        if tuple(s.shape) != self._state_np.shape:
            raise ValueError(f"physics state has shape {tuple(s.shape)}, expected {self._state_np.shape}")
        self._state_np[:] = s.double().cpu().numpy()

    def close(self) -> None:
        if self.replay and self._pool is not None:
            self._pool.shutdown(wait=False)
