"""Render one copy of a vector env to RGB frames, for evaluation videos.

:func:`make_renderer` returns a :class:`Renderer` that draws copy ``index`` of an env as it is
now, without stepping it or drawing from its random generator:

- native classic control (:mod:`vecenvs.classic`): the copy's state is written into the
  ``unwrapped.state`` of a gymnasium env of the same task made with ``render_mode="rgb_array"``,
  which draws it with pygame (``gymnasium[classic-control]``);
- native MuJoCo tasks (:mod:`vecenvs.mujoco`, any backend): the copy's ``qpos``/``qvel`` go into
  a private ``MjData`` of the env's model, drawn offscreen by ``mujoco.Renderer`` through EGL
  (or OSMesa) with the gymnasium task's default camera, tracking the agent;
- the gymnasium adapter (:class:`vecenvs.GymnasiumVecEnv`, any other id, or ``backend="gymnasium"``):
  the sub-env renders itself; make the env with :func:`render_kwargs` (``render_mode="rgb_array"``).

Nothing here is imported by the envs or by training without video capture; pygame, mujoco's
GL and gymnasium's renderers are imported only when a renderer is made. A missing piece raises
:class:`RenderingUnavailable` naming it and the command that installs it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from policyopt.vecenvs import classic
from policyopt.vecenvs.adapter import GymnasiumVecEnv
from policyopt.vecenvs.registry import resolve_backend

__all__ = ["Renderer", "RenderingUnavailable", "make_renderer", "render_kwargs", "select_gl", "INSTALL_VIDEO"]

INSTALL_VIDEO = 'pip install -e ".[video]"'
INSTALL_GL = "apt-get install libegl1 libgl1-mesa-dri (EGL) or apt-get install libosmesa6 (OSMesa)"

# The gymnasium id whose renderer draws each native classic-control class (v0/v1 draw alike).
_CLASSIC_IDS: dict[type, str] = {
    classic.CartPole: "CartPole-v1",
    classic.Pendulum: "Pendulum-v1",
    classic.Acrobot: "Acrobot-v1",
    classic.MountainCar: "MountainCar-v0",
    classic.MountainCarContinuous: "MountainCarContinuous-v0",
}

# gymnasium's module of each MuJoCo task, for its DEFAULT_CAMERA_CONFIG
_MUJOCO_MODULES = {
    "Hopper": "hopper",
    "HalfCheetah": "half_cheetah",
    "Walker2d": "walker2d",
    "Ant": "ant",
    "Humanoid": "humanoid",
}


class RenderingUnavailable(RuntimeError):
    """A renderer's dependency (pygame, an offscreen GL library) is missing; the message says how to install it."""


class Renderer(Protocol):
    """Draws one copy of an env as it is now."""

    fps: int  # the env's real-time frame rate (its render_fps)

    def render(self) -> np.ndarray:
        """The copy's current state as an RGB ``uint8`` array ``[H, W, 3]``."""
        ...

    def close(self) -> None:
        """Free the renderer's window surfaces or GL context."""
        ...


def supported() -> str:
    """What :func:`make_renderer` can draw, for error messages."""
    native = ", ".join(sorted(_CLASSIC_IDS.values()))
    return (
        f"the native classic-control envs ({native}, CartPole-v0), the native MuJoCo tasks "
        f"({', '.join(_MUJOCO_MODULES)}, -v5 and -v4, any backend) and gymnasium envs through the adapter "
        "(any other gymnasium id, or backend='gymnasium') made with render_mode='rgb_array'"
    )


def render_kwargs(env_id: str, device: Any = "cpu", backend: str | None = None) -> dict[str, Any]:
    """Extra ``vecenvs.make`` keyword arguments for an env that :func:`make_renderer` will draw:
    ``render_mode="rgb_array"`` where the env is gymnasium's own (the adapter), else none."""
    if resolve_backend(env_id, device, backend) != "gymnasium":
        return {}
    if _is_mujoco_id(env_id):
        select_gl()  # gymnasium's MuJoCo renderer reads MUJOCO_GL when it first renders
    return {"render_mode": "rgb_array"}


def make_renderer(env: VectorEnv, index: int = 0, width: int = 480, height: int = 480) -> Renderer:
    """A :class:`Renderer` of copy ``index`` of ``env`` (any wrapper chain over a vecenvs env).

    ``width``/``height`` apply to MuJoCo tasks (classic control and gymnasium envs draw at their
    own size). Raises ``ValueError`` for an env it cannot draw and :class:`RenderingUnavailable`
    when a dependency is missing.
    """
    base = env.unwrapped
    if not 0 <= index < env.num_envs:
        raise ValueError(f"copy index {index} out of range: the env has {env.num_envs} copies")
    if isinstance(base, GymnasiumVecEnv):
        return _AdapterRenderer(base, index)
    if type(base) in _CLASSIC_IDS:
        return _ClassicRenderer(base, index)
    mujoco_base = sys.modules.get("policyopt.vecenvs.mujoco.base")  # imported by every native MuJoCo env
    if mujoco_base is not None and isinstance(base, mujoco_base.MujocoVecEnv):
        return _MujocoRenderer(base, index, width, height)
    name = getattr(base, "env_id", None) or getattr(getattr(base, "spec", None), "id", None) or type(base).__name__
    raise ValueError(f"video capture cannot render {name} ({type(base).__name__}); it renders {supported()}")


# --- classic control: the native state drawn by gymnasium's own renderer --------------------
def require_pygame() -> Any:
    """Import pygame (gymnasium's classic-control renderer) or say how to install it."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array draws on surfaces: no window, no display
    try:
        return importlib.import_module("pygame")
    except ImportError as e:
        raise RenderingUnavailable(
            "rendering classic-control envs needs pygame (gymnasium's classic-control renderer), which is not "
            f"installed; install it with: {INSTALL_VIDEO} (or pip install \"gymnasium[classic-control]\")"
        ) from e


class _ClassicRenderer:
    def __init__(self, env: Any, index: int) -> None:
        require_pygame()
        self.env, self.index = env, index
        self.gym_env = gym.make(_CLASSIC_IDS[type(env)], render_mode="rgb_array").unwrapped
        self.fps = int(self.gym_env.metadata.get("render_fps", 30))

    def render(self) -> np.ndarray:
        # gymnasium keeps a float64 NumPy state of the same layout as ours (tests/test_classic_parity.py)
        self.gym_env.state = self.env.state[self.index].detach().to("cpu").double().numpy()
        if isinstance(self.env, classic.Pendulum):
            self.gym_env.last_u = None  # the torque arrow: the native env keeps no last action
        return self.gym_env.render()

    def close(self) -> None:
        self.gym_env.close()


# --- MuJoCo: offscreen GL ---------------------------------------------------------------------
_GL_CHOICE: str | None = None


def _probe_gl(platform: str) -> str | None:
    """None when an offscreen MuJoCo GL context of ``platform`` works, else the reason it does not.

    Probed in a child process: PyOpenGL fixes its platform on first import, so a failed EGL
    attempt in this process would rule out the OSMesa fallback.
    """
    code = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"
    env = {**os.environ, "MUJOCO_GL": platform, "PYOPENGL_PLATFORM": platform}
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out"
    if out.returncode == 0:
        return None
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {out.returncode}"


def select_gl() -> str:
    """The offscreen GL platform for MuJoCo rendering: ``MUJOCO_GL`` if set, else EGL, falling back to OSMesa.

    Sets ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) for this process. Raises
    :class:`RenderingUnavailable` naming what to install when neither works.
    """
    global _GL_CHOICE
    if _GL_CHOICE is not None:
        return _GL_CHOICE
    platform = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not platform:
        failures = {}
        for candidate in ("egl", "osmesa"):
            failures[candidate] = _probe_gl(candidate)
            if failures[candidate] is None:
                platform = candidate
                break
        else:
            reasons = "; ".join(f"{k}: {v}" for k, v in failures.items())
            raise RenderingUnavailable(
                f"rendering MuJoCo needs an offscreen OpenGL context (EGL or OSMesa), and neither works here ({reasons}); "
                f"install one with: {INSTALL_GL}, and the mujoco package with pip install -e \".[mujoco]\"; "
                "or set MUJOCO_GL to a platform that works on this machine"
            )
        os.environ["MUJOCO_GL"] = platform
        os.environ.setdefault("PYOPENGL_PLATFORM", platform)
    _GL_CHOICE = platform
    return platform


def _mujoco_with_gl() -> Any:
    """``mujoco`` whose ``Renderer`` makes contexts of :func:`select_gl`'s platform."""
    platform = select_gl()
    try:
        mujoco = importlib.import_module("mujoco")
    except ImportError as e:
        raise RenderingUnavailable(
            'rendering MuJoCo needs the mujoco package; install it with: pip install -e ".[mujoco]"'
        ) from e
    if platform in ("egl", "osmesa"):
        # mujoco picks its GL context class from MUJOCO_GL once, when first imported; a process that
        # imported it earlier (to build a training env, say) would otherwise render through GLFW,
        # which needs a display.
        gl_context = importlib.import_module("mujoco.rendering.classic.gl_context")
        wanted = importlib.import_module(f"mujoco.{platform}").GLContext
        if getattr(gl_context, "GLContext", None) is not wanted:
            gl_context.GLContext = wanted
    return mujoco


def _is_mujoco_id(env_id: str) -> bool:
    spec = gym.registry.get(env_id)
    return spec is not None and "mujoco" in str(spec.entry_point)


class _MujocoRenderer:
    def __init__(self, env: Any, index: int, width: int, height: int) -> None:
        mujoco = _mujoco_with_gl()
        self.mujoco, self.env, self.index = mujoco, env, index
        self.model = env.model
        self.data = mujoco.MjData(self.model)
        width, height = min(width, self.model.vis.global_.offwidth), min(height, self.model.vis.global_.offheight)
        try:
            self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        except Exception as e:  # noqa: BLE001 - GL errors come as several types
            raise RenderingUnavailable(
                f"mujoco.Renderer could not create an offscreen {os.environ.get('MUJOCO_GL')} GL context "
                f"({type(e).__name__}: {e}); install one with: {INSTALL_GL}, or set MUJOCO_GL=egl / osmesa"
            ) from e
        self.camera = self._camera(env.task.name, env.task.version)
        self.fps = int(env.metadata.get("render_fps", 30))

    def _camera(self, task: str, version: str) -> Any:
        """gymnasium's default camera of the task (distance, elevation, azimuth), tracking the agent's
        root body (or the task's ``trackbodyid``) so that it stays in view while it moves."""
        try:
            module = importlib.import_module(f"gymnasium.envs.mujoco.{_MUJOCO_MODULES[task]}_{version}")
            config = dict(getattr(module, "DEFAULT_CAMERA_CONFIG", {}))
        except ImportError:
            config = {}
        cam = self.mujoco.MjvCamera()
        self.mujoco.mjv_defaultFreeCamera(self.model, cam)
        cam.type = self.mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = int(config.get("trackbodyid", 1))
        for key in ("distance", "elevation", "azimuth"):
            if key in config:
                setattr(cam, key, float(config[key]))
        return cam

    def render(self) -> np.ndarray:
        fields = self.env.physics.read()
        self.data.qpos[:] = fields["qpos"][self.index].detach().to("cpu").numpy()
        self.data.qvel[:] = fields["qvel"][self.index].detach().to("cpu").numpy()
        self.mujoco.mj_forward(self.model, self.data)  # positions of every body from qpos
        self.renderer.update_scene(self.data, camera=self.camera)
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()


# --- gymnasium's own envs through the adapter ----------------------------------------------
class _AdapterRenderer:
    def __init__(self, env: GymnasiumVecEnv, index: int) -> None:
        envs = getattr(env.env, "envs", None)
        if envs is None:
            raise ValueError(
                f"video capture renders a gymnasium sub-env in this process; {env.env_id} runs in "
                "subprocesses (vectorization_mode='async'): make it with vectorization_mode='sync'"
            )
        self.sub = envs[index]
        if self.sub.render_mode != "rgb_array":
            raise ValueError(
                f"{env.env_id} was made with render_mode={self.sub.render_mode!r}; video capture needs "
                f"vecenvs.make({env.env_id!r}, ..., render_mode='rgb_array') (vecenvs.render.render_kwargs)"
            )
        if _is_mujoco_id(env.env_id):
            select_gl()
        self.fps = int(self.sub.metadata.get("render_fps") or 30)

    def render(self) -> np.ndarray:
        try:
            return np.asarray(self.sub.render())
        except gym.error.DependencyNotInstalled as e:
            raise RenderingUnavailable(f"{e}; install the renderers with: {INSTALL_VIDEO}") from e

    def close(self) -> None:
        pass  # the sub-env is the adapter's; it closes with it
