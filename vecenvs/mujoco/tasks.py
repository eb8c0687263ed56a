"""Batched torch definitions of the Gymnasium MuJoCo locomotion tasks (v5 and v4).

Everything here is pure tensor code over a batch of physics readings; no MuJoCo import.
Each definition follows ``gymnasium/envs/mujoco/<task>_v5.py`` (or ``_v4.py``) of
gymnasium 1.x; the comment on each method names the function it reproduces.

A physics backend hands the task a dict of float64 tensors ``f`` with ``qpos`` [N, nq],
``qvel`` [N, nv], ``ctrl`` [N, nu] and the derived ``mjData`` fields the task lists in
``derived`` (``xpos``, ``xipos`` [N, nbody, 3], ``cinert`` [N, nbody, 10], ``cvel``,
``cfrc_ext`` [N, nbody, 6], ``qfrc_actuator`` [N, nv]), read right after
``mj_step(nstep=frame_skip)`` and, where ``needs_cfrc_ext``, ``mj_rnePostConstraint``,
exactly as ``MujocoEnv._step_mujoco_simulation`` leaves them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

Fields = dict[str, torch.Tensor]

TASKS = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid")
VERSIONS = ("v5", "v4")


def assets_dir() -> Path:
    """Gymnasium's installed MuJoCo assets folder (found without importing gymnasium.envs.mujoco,
    whose renderer needs extra packages)."""
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("gymnasium is not installed; pip install 'policyopt[mujoco]'")
    return Path(list(spec.submodule_search_locations)[0]) / "envs" / "mujoco" / "assets"


def _healthy_reward(healthy: torch.Tensor, weight: float, version: str, terminate: bool) -> torch.Tensor:
    if version == "v5":  # v5: healthy_reward = is_healthy * weight (e.g. hopper_v5.py HopperEnv.healthy_reward)
        return healthy.double() * weight
    # v4: float(is_healthy or terminate_when_unhealthy) * weight (hopper_v4.py HopperEnv.healthy_reward)
    return (healthy | terminate).double() * weight


class LocomotionTask:
    """One Gymnasium MuJoCo locomotion task as batched tensor functions.

    Subclasses set the model file, frame skip and defaults, and implement ``position``
    (what the forward velocity is measured on), ``observe``, ``reward_terminated`` and
    ``qvel_noise``. Constructor keyword arguments are Gymnasium's, with its defaults.
    """

    name: str
    xml_file: str
    frame_skip: int
    derived: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    # Only the v4 versions use these defaults instead (keys absent from v4 are rejected).
    defaults_v4: dict[str, Any] | None = None

    def __init__(self, version: str = "v5", **kwargs: Any) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        self.version = version
        defaults = dict(self.defaults if version == "v5" or self.defaults_v4 is None else self.defaults_v4)
        defaults.setdefault("xml_file", self.xml_file)
        defaults.setdefault("frame_skip", self.frame_skip)
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{self.name}-{version} got unknown arguments {sorted(unknown)}; accepted: {sorted(defaults)}")
        defaults.update(kwargs)
        self.cfg = defaults
        self.xml_file = defaults["xml_file"]
        self.frame_skip = int(defaults["frame_skip"])

    # --- set by the env once the model is loaded ---------------------------------------
    def bind_model(self, *, nq: int, nv: int, nbody: int, body_mass: torch.Tensor, body_names: list[str], dt: float) -> None:
        """Record the model sizes and constants the tensor code needs."""
        self.nq, self.nv, self.nbody, self.dt = nq, nv, nbody, float(dt)
        self.body_mass = body_mass.double()
        self.body_names = body_names

    @property
    def needs_cfrc_ext(self) -> bool:
        """Whether obs or reward read ``cfrc_ext`` (so the backend must run mj_rnePostConstraint)."""
        return "cfrc_ext" in self.derived

    def model_xml_path(self) -> str:
        """The MJCF file: Gymnasium's ``expand_model_path`` rule (relative names live in its assets)."""
        p = self.xml_file
        if p.startswith((".", "/", "~")):
            return str(Path(p).expanduser())
        return str(assets_dir() / p)

    # --- to implement -------------------------------------------------------------------
    def obs_dim(self) -> int:
        raise NotImplementedError

    def position(self, f: Fields) -> torch.Tensor:
        """[N, k] positions whose finite difference over ``dt`` is the reward velocity."""
        raise NotImplementedError

    def observe(self, f: Fields) -> torch.Tensor:
        raise NotImplementedError

    def reward_terminated(self, f: Fields, velocity: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward float64 [N], terminated bool [N]) after a step; ``velocity`` is [N, k]."""
        raise NotImplementedError

    qvel_normal_noise: bool = False  # HalfCheetah and Ant draw qvel noise from N(0, 1)

    def reset_state(
        self, generator: torch.Generator, init_qpos: torch.Tensor, init_qvel: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``reset_model``: qpos = init + U(-s, s); qvel = init + U(-s, s) or s * N(0, 1)."""
        s = float(self.cfg["reset_noise_scale"])
        dev = init_qpos.device
        # the same draws in the same order as Gymnasium (qpos then qvel), from our generator
        u = torch.rand((n, self.nq), generator=generator, dtype=torch.float64, device=dev)
        qpos = init_qpos + (-s + 2 * s * u)
        if self.qvel_normal_noise:
            qvel = init_qvel + s * torch.randn((n, self.nv), generator=generator, dtype=torch.float64, device=dev)
        else:
            u = torch.rand((n, self.nv), generator=generator, dtype=torch.float64, device=dev)
            qvel = init_qvel + (-s + 2 * s * u)
        return qpos, qvel


def _ctrl_cost(weight: float, action: torch.Tensor) -> torch.Tensor:
    # control_cost = ctrl_cost_weight * sum(action**2)  (e.g. hopper_v5.py HopperEnv.control_cost)
    return weight * action.double().square().sum(-1)


class _Planar(LocomotionTask):
    """Hopper, Walker2d and HalfCheetah: x velocity from qpos[0], obs = qpos[1:], qvel."""

    clip_qvel = True

    def obs_dim(self) -> int:
        return self.nq + self.nv - int(bool(self.cfg["exclude_current_positions_from_observation"]))

    def position(self, f: Fields) -> torch.Tensor:
        return f["qpos"][:, :1]  # x_position = data.qpos[0] (hopper_v5.py HopperEnv.step)

    def observe(self, f: Fields) -> torch.Tensor:
        # _get_obs: concat(qpos[1:], clip(qvel, -10, 10)) (hopper_v5.py / walker2d_v5.py; half_cheetah_v5.py does not clip)
        qpos = f["qpos"][:, 1:] if self.cfg["exclude_current_positions_from_observation"] else f["qpos"]
        qvel = f["qvel"].clamp(-10.0, 10.0) if self.clip_qvel else f["qvel"]
        return torch.cat([qpos, qvel], dim=1)


class Hopper(_Planar):
    """Hopper-v5 / -v4 (hopper.xml, RK4, frame_skip 4)."""

    name, xml_file, frame_skip = "Hopper", "hopper.xml", 4
    defaults = dict(
        forward_reward_weight=1.0,
        ctrl_cost_weight=1e-3,
        healthy_reward=1.0,
        terminate_when_unhealthy=True,
        healthy_state_range=(-100.0, 100.0),
        healthy_z_range=(0.7, float("inf")),
        healthy_angle_range=(-0.2, 0.2),
        reset_noise_scale=5e-3,
        exclude_current_positions_from_observation=True,
    )

    def is_healthy(self, f: Fields) -> torch.Tensor:
        # HopperEnv.is_healthy (hopper_v5.py): state_vector()[2:] in range, z and angle in range (strict)
        c = self.cfg
        z, angle = f["qpos"][:, 1], f["qpos"][:, 2]
        state = torch.cat([f["qpos"], f["qvel"]], dim=1)[:, 2:]
        ok_state = ((c["healthy_state_range"][0] < state) & (state < c["healthy_state_range"][1])).all(1)
        ok_z = (c["healthy_z_range"][0] < z) & (z < c["healthy_z_range"][1])
        ok_angle = (c["healthy_angle_range"][0] < angle) & (angle < c["healthy_angle_range"][1])
        return ok_state & ok_z & ok_angle

    def reward_terminated(self, f, velocity, action):
        # reward = forward_weight * x_velocity + healthy_reward - ctrl_cost (hopper_v5.py HopperEnv._get_rew)
        c = self.cfg
        healthy = self.is_healthy(f)
        reward = (
            c["forward_reward_weight"] * velocity[:, 0]
            + _healthy_reward(healthy, c["healthy_reward"], self.version, c["terminate_when_unhealthy"])
            - _ctrl_cost(c["ctrl_cost_weight"], action)
        )
        # terminated = not is_healthy and terminate_when_unhealthy (hopper_v5.py HopperEnv.step)
        return reward, ~healthy & bool(c["terminate_when_unhealthy"])


class Walker2d(Hopper):
    """Walker2d-v5 (walker2d_v5.xml) / -v4 (walker2d.xml): RK4, frame_skip 4."""

    name, xml_file = "Walker2d", "walker2d_v5.xml"
    defaults = dict(
        forward_reward_weight=1.0,
        ctrl_cost_weight=1e-3,
        healthy_reward=1.0,
        terminate_when_unhealthy=True,
        healthy_z_range=(0.8, 2.0),
        healthy_angle_range=(-1.0, 1.0),
        reset_noise_scale=5e-3,
        exclude_current_positions_from_observation=True,
    )

    def __init__(self, version: str = "v5", **kwargs: Any) -> None:
        if version == "v4":  # v4 uses the older model with one friction for both feet (walker2d_v4.py)
            self.xml_file = "walker2d.xml"
        super().__init__(version, **kwargs)

    def is_healthy(self, f: Fields) -> torch.Tensor:
        # Walker2dEnv.is_healthy (walker2d_v5.py): z and angle = qpos[1:3] strictly inside their ranges
        c = self.cfg
        z, angle = f["qpos"][:, 1], f["qpos"][:, 2]
        ok_z = (c["healthy_z_range"][0] < z) & (z < c["healthy_z_range"][1])
        ok_angle = (c["healthy_angle_range"][0] < angle) & (angle < c["healthy_angle_range"][1])
        return ok_z & ok_angle


class HalfCheetah(_Planar):
    """HalfCheetah-v5 / -v4 (half_cheetah.xml, Euler, frame_skip 5); never terminates."""

    name, xml_file, frame_skip = "HalfCheetah", "half_cheetah.xml", 5
    clip_qvel = False
    qvel_normal_noise = True  # half_cheetah_v5.py reset_model: qvel = init + scale * standard_normal
    defaults = dict(
        forward_reward_weight=1.0,
        ctrl_cost_weight=0.1,
        reset_noise_scale=0.1,
        exclude_current_positions_from_observation=True,
    )

    def reward_terminated(self, f, velocity, action):
        # reward = forward_weight * x_velocity - ctrl_cost (half_cheetah_v5.py HalfCheetahEnv._get_rew)
        c = self.cfg
        reward = c["forward_reward_weight"] * velocity[:, 0] - _ctrl_cost(c["ctrl_cost_weight"], action)
        return reward, torch.zeros_like(reward, dtype=torch.bool)


class Ant(LocomotionTask):
    """Ant-v5 / -v4 (ant.xml, RK4, frame_skip 5)."""

    name, xml_file, frame_skip = "Ant", "ant.xml", 5
    qvel_normal_noise = True  # ant_v5.py reset_model: qvel = init + scale * standard_normal
    defaults = dict(
        forward_reward_weight=1.0,
        ctrl_cost_weight=0.5,
        contact_cost_weight=5e-4,
        healthy_reward=1.0,
        main_body=1,
        terminate_when_unhealthy=True,
        healthy_z_range=(0.2, 1.0),
        contact_force_range=(-1.0, 1.0),
        reset_noise_scale=0.1,
        exclude_current_positions_from_observation=True,
        include_cfrc_ext_in_observation=True,
    )
    defaults_v4 = dict(
        ctrl_cost_weight=0.5,
        use_contact_forces=False,
        contact_cost_weight=5e-4,
        healthy_reward=1.0,
        terminate_when_unhealthy=True,
        healthy_z_range=(0.2, 1.0),
        contact_force_range=(-1.0, 1.0),
        reset_noise_scale=0.1,
        exclude_current_positions_from_observation=True,
    )

    def __init__(self, version: str = "v5", **kwargs: Any) -> None:
        super().__init__(version, **kwargs)
        # v5 always pays the contact cost; v4 only with use_contact_forces (ant_v4.py AntEnv.step)
        self.use_contacts = version == "v5" or bool(self.cfg.get("use_contact_forces"))
        self.derived = ("xpos", "cfrc_ext") if self.use_contacts else ("xpos",)

    def bind_model(self, **kw: Any) -> None:
        super().bind_model(**kw)
        body = self.cfg.get("main_body", "torso")  # v4 measures get_body_com("torso")
        self.main_body = self.body_names.index(body) if isinstance(body, str) else int(body)

    def obs_dim(self) -> int:
        n = self.nq + self.nv - 2 * int(bool(self.cfg["exclude_current_positions_from_observation"]))
        if self.version == "v5":
            return n + 6 * (self.nbody - 1) * int(bool(self.cfg["include_cfrc_ext_in_observation"]))
        return n + 6 * self.nbody * int(self.use_contacts)

    def position(self, f: Fields) -> torch.Tensor:
        return f["xpos"][:, self.main_body, :2]  # data.body(main_body).xpos[:2] (ant_v5.py AntEnv.step)

    def contact_forces(self, f: Fields) -> torch.Tensor:
        lo, hi = self.cfg["contact_force_range"]
        return f["cfrc_ext"].clamp(lo, hi)  # clip(cfrc_ext, range) (ant_v5.py AntEnv.contact_forces)

    def observe(self, f: Fields) -> torch.Tensor:
        # _get_obs: concat(qpos[2:], qvel, clipped cfrc_ext[1:]) (ant_v5.py); v4: all bodies, if use_contact_forces
        qpos = f["qpos"][:, 2:] if self.cfg["exclude_current_positions_from_observation"] else f["qpos"]
        parts = [qpos, f["qvel"]]
        if self.version == "v5" and self.cfg["include_cfrc_ext_in_observation"]:
            parts.append(self.contact_forces(f)[:, 1:].flatten(1))
        elif self.version == "v4" and self.use_contacts:
            parts.append(self.contact_forces(f).flatten(1))
        return torch.cat(parts, dim=1)

    def reward_terminated(self, f, velocity, action):
        c = self.cfg
        # AntEnv.is_healthy: isfinite(state_vector).all() and min_z <= z <= max_z (inclusive; ant_v5.py)
        z = f["qpos"][:, 2]
        finite = torch.isfinite(f["qpos"]).all(1) & torch.isfinite(f["qvel"]).all(1)
        healthy = finite & (c["healthy_z_range"][0] <= z) & (z <= c["healthy_z_range"][1])
        # reward = forward_weight * x_vel + healthy - ctrl_cost - contact_cost (ant_v5.py AntEnv._get_rew)
        reward = (
            c.get("forward_reward_weight", 1.0) * velocity[:, 0]
            + _healthy_reward(healthy, c["healthy_reward"], self.version, c["terminate_when_unhealthy"])
            - _ctrl_cost(c["ctrl_cost_weight"], action)
        )
        if self.use_contacts:  # contact_cost = weight * sum(clip(cfrc_ext)**2) (ant_v5.py AntEnv.contact_cost)
            reward = reward - c["contact_cost_weight"] * self.contact_forces(f).square().sum((1, 2))
        return reward, ~healthy & bool(c["terminate_when_unhealthy"])


class Humanoid(LocomotionTask):
    """Humanoid-v5 / -v4 (humanoid.xml: RK4, PGS solver, frame_skip 5)."""

    name, xml_file, frame_skip = "Humanoid", "humanoid.xml", 5
    derived = ("xipos", "cinert", "cvel", "qfrc_actuator", "cfrc_ext")
    defaults = dict(
        forward_reward_weight=1.25,
        ctrl_cost_weight=0.1,
        contact_cost_weight=5e-7,
        contact_cost_range=(-float("inf"), 10.0),
        healthy_reward=5.0,
        terminate_when_unhealthy=True,
        healthy_z_range=(1.0, 2.0),
        reset_noise_scale=1e-2,
        exclude_current_positions_from_observation=True,
        include_cinert_in_observation=True,
        include_cvel_in_observation=True,
        include_qfrc_actuator_in_observation=True,
        include_cfrc_ext_in_observation=True,
    )
    defaults_v4 = dict(
        forward_reward_weight=1.25,
        ctrl_cost_weight=0.1,
        healthy_reward=5.0,
        terminate_when_unhealthy=True,
        healthy_z_range=(1.0, 2.0),
        reset_noise_scale=1e-2,
        exclude_current_positions_from_observation=True,
    )

    def obs_dim(self) -> int:
        c = self.cfg
        n = self.nq + self.nv - 2 * int(bool(c["exclude_current_positions_from_observation"]))
        if self.version == "v4":  # humanoid_v4.py: cinert, cvel, qfrc_actuator, cfrc_ext of every body / dof
            return n + 10 * self.nbody + 6 * self.nbody + self.nv + 6 * self.nbody
        b = self.nbody - 1
        return (
            n
            + 10 * b * bool(c["include_cinert_in_observation"])
            + 6 * b * bool(c["include_cvel_in_observation"])
            + (self.nv - 6) * bool(c["include_qfrc_actuator_in_observation"])
            + 6 * b * bool(c["include_cfrc_ext_in_observation"])
        )

    def position(self, f: Fields) -> torch.Tensor:
        # mass_center: sum(body_mass * xipos) / sum(body_mass), first two coordinates (humanoid_v5.py)
        m = self.body_mass
        return (torch.einsum("b,nbj->nj", m, f["xipos"]) / m.sum())[:, :2]

    def observe(self, f: Fields) -> torch.Tensor:
        c = self.cfg
        qpos = f["qpos"][:, 2:] if c["exclude_current_positions_from_observation"] else f["qpos"]
        if self.version == "v4":
            # humanoid_v4.py _get_obs: qpos[2:], qvel, cinert, cvel, qfrc_actuator, cfrc_ext (all flat)
            return torch.cat(
                [qpos, f["qvel"], f["cinert"].flatten(1), f["cvel"].flatten(1), f["qfrc_actuator"], f["cfrc_ext"].flatten(1)], 1
            )
        # humanoid_v5.py _get_obs: qpos[2:], qvel, cinert[1:], cvel[1:], qfrc_actuator[6:], cfrc_ext[1:]
        parts = [qpos, f["qvel"]]
        if c["include_cinert_in_observation"]:
            parts.append(f["cinert"][:, 1:].flatten(1))
        if c["include_cvel_in_observation"]:
            parts.append(f["cvel"][:, 1:].flatten(1))
        if c["include_qfrc_actuator_in_observation"]:
            parts.append(f["qfrc_actuator"][:, 6:])
        if c["include_cfrc_ext_in_observation"]:
            parts.append(f["cfrc_ext"][:, 1:].flatten(1))
        return torch.cat(parts, 1)

    def reward_terminated(self, f, velocity, action):
        c = self.cfg
        z = f["qpos"][:, 2]
        healthy = (c["healthy_z_range"][0] < z) & (z < c["healthy_z_range"][1])  # HumanoidEnv.is_healthy
        # reward = 1.25 x_vel(centre of mass) + healthy - 0.1 sum(ctrl^2) - contact (humanoid_v5.py _get_rew)
        reward = (
            c["forward_reward_weight"] * velocity[:, 0]
            + _healthy_reward(healthy, c["healthy_reward"], self.version, c["terminate_when_unhealthy"])
            - c["ctrl_cost_weight"] * f["ctrl"].square().sum(1)  # control_cost uses data.ctrl
        )
        if self.version == "v5":  # contact_cost = clip(weight * sum(cfrc_ext**2), range) (humanoid_v5.py)
            lo, hi = c["contact_cost_range"]
            reward = reward - (c["contact_cost_weight"] * f["cfrc_ext"].square().sum((1, 2))).clamp(lo, hi)
        return reward, ~healthy & bool(c["terminate_when_unhealthy"])


TASK_CLASSES: dict[str, type[LocomotionTask]] = {
    "Hopper": Hopper,
    "HalfCheetah": HalfCheetah,
    "Walker2d": Walker2d,
    "Ant": Ant,
    "Humanoid": Humanoid,
}


def make_task(name: str, version: str = "v5", **kwargs: Any) -> LocomotionTask:
    """The task definition for ``name`` ("HalfCheetah", ...) and Gymnasium ``version``."""
    if name not in TASK_CLASSES:
        raise ValueError(f"unknown MuJoCo task {name!r}; available tasks: {', '.join(TASKS)} (versions {', '.join(VERSIONS)})")
    return TASK_CLASSES[name](version, **kwargs)
