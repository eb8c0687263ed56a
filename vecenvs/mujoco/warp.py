"""MuJoCo Warp physics (``mujoco_warp``): all envs as worlds of one batched ``Data`` on the GPU.

- The frame_skip substeps (and ``rne_postconstraint`` for ``cfrc_ext``) are one CUDA graph
  when Warp's memory pool is on (as mjlab does), launched on a side stream that is ordered
  against torch's current stream by stream waits.
- State and derived fields are zero-copy torch views (``wp.to_torch``); :meth:`read` returns
  float64 copies, because Warp overwrites the views on the next call.
- Resets are masked (``reset_data(reset=mask)``), then qpos/qvel of those worlds are set and
  one ``forward`` runs (for all worlds: MJWarp has no masked forward; it only recomputes
  derived fields, not the state of the other worlds).

Known differences from MuJoCo C / Gymnasium: float32 arithmetic and a different contact and
solver implementation, so trajectories agree only over short horizons and statistically
afterwards; GPU runs are not bitwise deterministic; the PGS solver is not implemented, so
Humanoid (PGS in humanoid.xml) runs with the Newton solver here (same iterations).
Warp also runs on CPU (for tests); its kernels then compile for tens of seconds per model
on first use (cached under ~/.cache/warp afterwards).
"""

from __future__ import annotations

from typing import Any

import torch

from policyopt.vecenvs.mujoco.base import require
from policyopt.vecenvs.mujoco.tasks import Fields, LocomotionTask

_STATE = ("time", "qpos", "qvel", "act", "qacc_warmstart", "ctrl")


class WarpPhysics:
    """N MuJoCo Warp worlds on ``device`` (a CUDA device, or the CPU for development)."""

    def __init__(
        self,
        model: Any,
        num_envs: int,
        task: LocomotionTask,
        device: torch.device,
        graph: bool | None = None,
        nconmax: int | None = None,
        njmax: int | None = None,
    ) -> None:
        mujoco = require("mujoco", "mujoco")
        self.wp = wp = require("warp", "warp")
        self.mjw = mjw = require("mujoco_warp", "warp")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"the warp backend runs on 'cpu' or 'cuda' devices, not {device}")
        self.device = device
        self.frame_skip = task.frame_skip
        self.cfrc = task.needs_cfrc_ext
        if model.opt.solver == mujoco.mjtSolver.mjSOL_PGS:  # not implemented in MJWarp (Humanoid)
            model = _copy_model(mujoco, model)
            model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
        self.wdev = (
            "cpu" if device.type == "cpu" else f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
        )
        if device.type == "cuda" and device.index is None:
            self.device = torch.device(self.wdev)
        with wp.ScopedDevice(self.wdev):
            data = mujoco.MjData(model)
            mujoco.mj_forward(model, data)
            self.m = mjw.put_model(model)
            self.d = mjw.put_data(model, data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        names = ("time", "qpos", "qvel", "act", "ctrl", "qacc_warmstart", *task.derived)
        self.views = {k: wp.to_torch(getattr(self.d, k)) for k in names}
        self._stream = None
        self._graph = None
        if device.type == "cuda":
            self._stream = torch.cuda.Stream(self.device)
            use_graph = wp.is_mempool_enabled(self.wdev) if graph is None else bool(graph)
            with self._on_stream():  # on the env's device and stream, like every later call
                self._substeps()  # compile and load every kernel before capture
            torch.cuda.synchronize(self.device)
            if use_graph:
                with self._on_stream():
                    with wp.ScopedCapture(device=self.wdev, stream=self._wstream) as cap:
                        self._substeps()
                self._graph = cap.graph

    # --- streams ------------------------------------------------------------------------
    def _on_stream(self) -> Any:
        """Run torch and Warp work on our side stream, ordered after torch's current stream."""
        wp = self.wp
        outer = self

        class _Ctx:
            def __enter__(self) -> None:
                outer._stream.wait_stream(torch.cuda.current_stream(outer.device))
                self.t = torch.cuda.stream(outer._stream)
                self.t.__enter__()
                outer._wstream = wp.stream_from_torch(outer._stream)
                self.w = wp.ScopedStream(outer._wstream)
                self.w.__enter__()

            def __exit__(self, *exc: Any) -> None:
                self.w.__exit__(*exc)
                self.t.__exit__(*exc)
                torch.cuda.current_stream(outer.device).wait_stream(outer._stream)

        return _Ctx()

    def _scope(self) -> Any:
        if self.device.type == "cuda":
            return self._on_stream()
        return self.wp.ScopedDevice(self.wdev)

    def _substeps(self) -> None:
        for _ in range(self.frame_skip):
            self.mjw.step(self.m, self.d)
        if self.cfrc:  # Gymnasium calls mj_rnePostConstraint after the substeps
            self.mjw.rne_postconstraint(self.m, self.d)

    # --- the Physics protocol -----------------------------------------------------------
    def read(self) -> Fields:
        return {k: v.double() for k, v in self.views.items() if k not in ("time", "act", "qacc_warmstart")}

    def step(self, actions: torch.Tensor) -> torch.Tensor:
        with self._scope():
            # rows with a NaN or inf are zeroed, as MuJoCo's mjWARN_BADCTRL does
            self.views["ctrl"].copy_(torch.where(torch.isfinite(actions).all(1, keepdim=True), actions, 0.0))
            if self._graph is not None:
                self.wp.capture_launch(self._graph, stream=self._wstream)
            else:
                self._substeps()
        # MJWarp does not reset diverged worlds itself; the env checks for non-finite/huge state
        return torch.zeros(self.views["qpos"].shape[0], dtype=torch.bool, device=self.device)

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        wp = self.wp
        with self._scope():
            mask = mask.to(self.device).contiguous()
            self.mjw.reset_data(self.m, self.d, reset=wp.from_torch(mask, dtype=wp.bool))
            q, v = self.views["qpos"], self.views["qvel"]
            q.copy_(torch.where(mask[:, None], qpos.to(q), q))
            v.copy_(torch.where(mask[:, None], qvel.to(v), v))
            self.mjw.forward(self.m, self.d)
            if self.cfrc:  # mj_resetData zeroes cfrc_ext; mj_forward does not compute it
                c = self.views["cfrc_ext"]
                c.copy_(torch.where(mask[:, None, None], 0.0, c))

    def get_state(self) -> dict[str, torch.Tensor]:
        return {k: self.views[k].clone() for k in _STATE}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        with self._scope():
            for k in _STATE:
                self.views[k].copy_(state[k])


def _copy_model(mujoco: Any, model: Any) -> Any:
    """A private copy of an MjModel (so changing its options leaves the caller's alone)."""
    import copy

    return copy.copy(model) if hasattr(model, "__copy__") else mujoco.MjModel.from_xml_string(model.to_xml())
