"""Classic control as batched torch environments, step-for-step equal to gymnasium 1.x.

CartPole-v0/v1, Pendulum-v1, Acrobot-v1, MountainCar-v0 and MountainCarContinuous-v0 as
:class:`~vecenvs.core.TorchVecEnv` subclasses. Each reproduces the constants, order of
operations, clipping, angle wrapping, rewards, termination thresholds, reset
distributions (with gymnasium's reset ``options``), time limits and spaces of
``gymnasium/envs/classic_control``. With ``dtype=torch.float64`` the state is kept in
float64 like gymnasium's NumPy state, so trajectories agree to rounding
(``tests/test_classic_parity.py``); the default float32 state is faster and agrees loosely.

The physics is written as per-column tensor expressions (``unbind`` then ``stack``) in the
same order as gymnasium's scalar code, so float64 results round identically wherever the
elementary functions agree.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces

from policyopt.vecenvs.core import Device, TorchVecEnv
from policyopt.vecenvs.registry import register

Tensor = torch.Tensor

__all__ = ["CartPole", "Pendulum", "Acrobot", "MountainCar", "MountainCarContinuous"]


def _reset_bounds(options: dict[str, Any] | None, default_low: float, default_high: float) -> tuple[float, float]:
    """``gymnasium.envs.classic_control.utils.maybe_parse_reset_bounds``, same errors."""
    if options is None:
        return default_low, default_high
    low = options.get("low") if "low" in options else default_low
    high = options.get("high") if "high" in options else default_high
    low, high = _to_float(low), _to_float(high)
    if low > high:
        raise ValueError(f"Lower bound ({low}) must be lower than higher bound ({high}).")
    return low, high


def _to_float(x: Any) -> float:
    """``utils.verify_number_and_cast``."""
    try:
        return float(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"An option ({x}) could not be converted to a float.") from e


# Layout: the state is an [N, state_dim] tensor stored column-major (the transpose of a
# contiguous [state_dim, N] buffer), so each state variable is a contiguous vector. That is
# what lets inductor vectorize the fused step (it leaves stride-`state_dim` loads scalar), and
# eager unary math on strided columns is far slower than on contiguous ones. Any layout is
# accepted as input (e.g. a state set by hand); the envs always produce this one.
def _columns(state: Tensor) -> tuple[Tensor, ...]:
    """The state's columns as contiguous vectors (free for the column-major layout)."""
    return state.t().contiguous().unbind(0)


def _pack(columns: tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    """Columns -> an [N, d] state in the column-major layout."""
    return torch.stack(tuple(columns), dim=0).t()


def _obs(columns: tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    """Columns -> a contiguous [N, d] float32 observation (a new tensor, never the state)."""
    return torch.stack(tuple(columns), dim=1).to(torch.float32)


class _ClassicEnv(TorchVecEnv):
    """Shared plumbing: column-major state draws."""

    def _draw(self, n: int, low: list[float], high: list[float]) -> Tensor:
        """``n`` states with column j ~ U(low[j], high[j]) (constant where low == high)."""
        out = torch.empty((len(low), n), dtype=self.dtype, device=self.device)
        if len(set(low)) == 1 and len(set(high)) == 1 and low[0] != high[0]:
            out.uniform_(low[0], high[0], generator=self.generator)
        else:
            for j, (lo, hi) in enumerate(zip(low, high)):
                if lo == hi:
                    out[j].fill_(lo)
                else:
                    out[j].uniform_(lo, hi, generator=self.generator)
        return out.t()


# --------------------------------------------------------------------------------------
# CartPole
# --------------------------------------------------------------------------------------
class CartPole(_ClassicEnv):
    """CartPole-v1 (and v0): balance a pole on a cart by pushing it left (0) or right (1).

    State ``[x, x_dot, theta, theta_dot]``, explicit Euler with ``tau=0.02``; reward 1 on
    every step including the terminating one (or gymnasium's ``sutton_barto_reward``:
    0 per step, -1 on termination); terminates when ``|x| > 2.4`` or
    ``|theta| > 12 degrees`` (strict). Reset: every entry ~ U(-0.05, 0.05), or
    U(options["low"], options["high"]).
    """

    state_dim = 4
    # Constants as in gymnasium cartpole.py (derived ones computed the same way, so equal bits).
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(
        self,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 500,
        sutton_barto_reward: bool = False,
    ) -> None:
        self.sutton_barto_reward = bool(sutton_barto_reward)
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=np.float32)
        super().__init__(
            num_envs,
            spaces.Box(-high, high, dtype=np.float32),
            spaces.Discrete(2),
            max_episode_steps,
            device=device,
            seed=seed,
            dtype=dtype,
            compile=compile,
        )

    def _initial_state(self, n: int, options: dict[str, Any] | None) -> Tensor:
        low, high = _reset_bounds(options, -0.05, 0.05)
        return self._draw(n, [low] * 4, [high] * 4)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, x_dot, theta, theta_dot = _columns(state)
        force = torch.where(action == 1, self.force_mag, -self.force_mag).to(state.dtype)
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        # Barto, Sutton & Anderson 1983 / Florian 2007; gymnasium cartpole.py
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # explicit Euler: positions advance with the OLD velocities (gymnasium "euler" integrator)
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        next_state = _pack((x, x_dot, theta, theta_dot))
        # strict inequalities, gymnasium cartpole.py
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        if self.sutton_barto_reward:
            reward = -terminated.to(state.dtype)
        else:
            reward = torch.ones_like(x)
        return next_state, reward, terminated

    def _observe(self, state: Tensor) -> Tensor:
        # the observation is the state: one copy into a new contiguous float32 tensor
        return state.to(torch.float32, memory_format=torch.contiguous_format, copy=True)


# --------------------------------------------------------------------------------------
# Pendulum
# --------------------------------------------------------------------------------------
class Pendulum(_ClassicEnv):
    """Pendulum-v1: swing a frictionless pendulum up with a torque in [-2, 2].

    State ``[theta, theta_dot]`` (theta is NOT wrapped, as in gymnasium); observation
    ``[cos theta, sin theta, theta_dot]``. Reward ``-(angle_normalize(theta)^2 +
    0.1 theta_dot^2 + 0.001 u^2)`` from the pre-step state and the clipped torque ``u``;
    never terminates, truncated at 200 steps. Reset: theta ~ U(-pi, pi),
    theta_dot ~ U(-1, 1), or U(-x_init, x_init) / U(-y_init, y_init) from ``options``.
    """

    state_dim = 2
    max_speed = 8
    max_torque = 2.0
    dt = 0.05
    m = 1.0
    l = 1.0  # noqa: E741  (gymnasium's name)

    def __init__(
        self,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 200,
        g: float = 10.0,
    ) -> None:
        self.g = g
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        super().__init__(
            num_envs,
            spaces.Box(low=-high, high=high, dtype=np.float32),
            spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,), dtype=np.float32),
            max_episode_steps,
            device=device,
            seed=seed,
            dtype=dtype,
            compile=compile,
        )

    def _initial_state(self, n: int, options: dict[str, Any] | None) -> Tensor:
        x, y = math.pi, 1.0  # gymnasium pendulum.py DEFAULT_X, DEFAULT_Y
        if options is not None:
            x = _to_float(options["x_init"]) if "x_init" in options else x
            y = _to_float(options["y_init"]) if "y_init" in options else y
        return self._draw(n, [-x, -y], [x, y])  # symmetric limits, as gymnasium enforces

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        th, thdot = _columns(state)
        g, m, l, dt = self.g, self.m, self.l, self.dt
        # The torque terms stay in the action's dtype, as NumPy 2 keeps gymnasium's float32
        # ``u`` in float32 for ``0.001 * u**2`` and ``3.0 * u``; they promote when added.
        u = action[:, 0].clamp(-self.max_torque, self.max_torque)
        # cost on the pre-step state and the clipped torque; angle_normalize(x) = ((x+pi) % 2pi) - pi
        # with Python % semantics = torch.remainder (gymnasium pendulum.py)
        ang = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = (ang.square() + 0.1 * thdot.square() + 0.001 * u.square()).to(state.dtype)
        # semi-implicit Euler: theta advances with the NEW velocity (gymnasium pendulum.py)
        newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed).to(state.dtype)
        newth = th + newthdot * dt
        next_state = _pack((newth, newthdot))
        return next_state, -costs, torch.zeros_like(th, dtype=torch.bool)

    def _observe(self, state: Tensor) -> Tensor:
        th, thdot = _columns(state)
        return _obs((torch.cos(th), torch.sin(th), thdot))


# --------------------------------------------------------------------------------------
# Acrobot
# --------------------------------------------------------------------------------------
def _wrap_pi(x: Tensor) -> Tensor:
    """gymnasium acrobot.py ``wrap(x, -pi, pi)``: repeated +-2pi, so exactly +-pi stays put.

    Two unrolled iterations per side reproduce gymnasium's rounding for every reachable
    angle (one RK4 step moves an angle by far less than 2pi from [-pi, pi]); anything still
    outside falls back to the remainder formula.
    """
    diff = math.pi - (-math.pi)
    for _ in range(2):
        x = torch.where(x > math.pi, x - diff, x)
    for _ in range(2):
        x = torch.where(x < -math.pi, x + diff, x)
    out = (x > math.pi) | (x < -math.pi)
    return torch.where(out, torch.remainder(x + math.pi, diff) - math.pi, x)


class Acrobot(_ClassicEnv):
    """Acrobot-v1: swing the tip of a two-link chain above the bar by torquing the joint.

    State ``[theta1, theta2, dtheta1, dtheta2]``; action 0/1/2 = torque -1/0/+1; one RK4
    step of dt=0.2 of the "book" dynamics (Sutton & Barto 1998), angles wrapped into
    [-pi, pi], velocities clipped to 4pi / 9pi. Terminated when
    ``-cos(theta1) - cos(theta1 + theta2) > 1``; reward -1 per step, 0 on the terminating
    step. Reset: every entry ~ U(-0.1, 0.1) (or options low/high) rounded to float32, as
    gymnasium does.
    """

    state_dim = 4
    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_LENGTH_2 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

    def __init__(
        self,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 500,
    ) -> None:
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        super().__init__(
            num_envs,
            spaces.Box(low=-high, high=high, dtype=np.float32),
            spaces.Discrete(3),
            max_episode_steps,
            device=device,
            seed=seed,
            dtype=dtype,
            compile=compile,
        )

    def _initial_state(self, n: int, options: dict[str, Any] | None) -> Tensor:
        low, high = _reset_bounds(options, -0.1, 0.1)
        # gymnasium draws in float64 then stores .astype(np.float32)
        return self._draw(n, [low] * 4, [high] * 4).to(torch.float32).to(self.dtype)

    def _dsdt(self, theta1: Tensor, theta2: Tensor, dtheta1: Tensor, dtheta2: Tensor, a: Tensor):
        # Sutton & Barto 1998 "book" acrobot equations; gymnasium acrobot.py _dsdt (same order)
        m1, m2 = self.LINK_MASS_1, self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1, lc2 = self.LINK_COM_POS_1, self.LINK_COM_POS_2
        I1 = I2 = self.LINK_MOI
        g = 9.8
        cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + I2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * sin2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin2 - phi2) / (m2 * lc2**2 + I2 - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return dtheta1, dtheta2, ddtheta1, ddtheta2

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y0 = _columns(state)
        torque = action.to(state.dtype) - 1.0  # AVAIL_TORQUE = [-1, 0, +1]; noise is 0
        # one classical RK4 step over [0, dt] (gymnasium acrobot.py rk4); the torque is constant
        dt = self.dt - 0.0
        dt2 = dt / 2.0
        k1 = self._dsdt(*y0, torque)
        k2 = self._dsdt(*(y + dt2 * k for y, k in zip(y0, k1)), torque)
        k3 = self._dsdt(*(y + dt2 * k for y, k in zip(y0, k2)), torque)
        k4 = self._dsdt(*(y + dt * k for y, k in zip(y0, k3)), torque)
        ns = [y + dt / 6.0 * (a + 2 * b + 2 * c + d) for y, a, b, c, d in zip(y0, k1, k2, k3, k4)]
        th1, th2 = _wrap_pi(ns[0]), _wrap_pi(ns[1])
        dth1 = ns[2].clamp(-self.MAX_VEL_1, self.MAX_VEL_1)
        dth2 = ns[3].clamp(-self.MAX_VEL_2, self.MAX_VEL_2)
        next_state = _pack((th1, th2, dth1, dth2))
        # tip above the bar (strict), gymnasium acrobot.py _terminal
        terminated = -torch.cos(th1) - torch.cos(th2 + th1) > 1.0
        reward = terminated.to(state.dtype) - 1.0  # -1, or 0 on the terminating step
        return next_state, reward, terminated

    def _observe(self, state: Tensor) -> Tensor:
        th1, th2, dth1, dth2 = _columns(state)
        return _obs((torch.cos(th1), torch.sin(th1), torch.cos(th2), torch.sin(th2), dth1, dth2))


# --------------------------------------------------------------------------------------
# Mountain car
# --------------------------------------------------------------------------------------
class MountainCar(_ClassicEnv):
    """MountainCar-v0: drive an under-powered car up the right hill (actions 0/1/2 = push
    left / none / right).

    State ``[position, velocity]``; velocity clipped to +-0.07, position to [-1.2, 0.6],
    velocity zeroed when the car sits at the left wall moving left. Terminated when
    ``position >= 0.5 and velocity >= goal_velocity``; reward -1 on every step; truncated
    at 200. Reset: position ~ U(-0.6, -0.4) (or options low/high), velocity 0.
    """

    state_dim = 2
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    force = 0.001
    gravity = 0.0025

    def __init__(
        self,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 200,
        goal_velocity: float = 0,
    ) -> None:
        self.goal_velocity = goal_velocity
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        super().__init__(
            num_envs,
            spaces.Box(low, high, dtype=np.float32),
            self._make_action_space(),
            max_episode_steps,
            device=device,
            seed=seed,
            dtype=dtype,
            compile=compile,
        )

    def _make_action_space(self) -> spaces.Space:
        return spaces.Discrete(3)

    def _initial_state(self, n: int, options: dict[str, Any] | None) -> Tensor:
        low, high = _reset_bounds(options, -0.6, -0.4)
        return self._draw(n, [low, 0.0], [high, 0.0])

    def _accel(self, action: Tensor, position: Tensor, dtype: torch.dtype) -> Tensor:
        # Moore 1990; gymnasium mountain_car.py: (action - 1) * force + cos(3 * position) * (-gravity)
        return (action.to(dtype) - 1.0) * self.force + torch.cos(3 * position) * (-self.gravity)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        position, velocity = _columns(state)
        velocity = velocity + self._accel(action, position, state.dtype)
        # order matters: clip velocity, move, clip position, then stop at the left wall
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = torch.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return _pack((position, velocity)), self._reward(action, terminated, state.dtype), terminated

    def _reward(self, action: Tensor, terminated: Tensor, dtype: torch.dtype) -> Tensor:
        return torch.full_like(terminated, -1.0, dtype=dtype)

    def _observe(self, state: Tensor) -> Tensor:
        # the observation is the state: one copy into a new contiguous float32 tensor
        return state.to(torch.float32, memory_format=torch.contiguous_format, copy=True)


class MountainCarContinuous(MountainCar):
    """MountainCarContinuous-v0: the mountain car with a force in [-1, 1].

    Like :class:`MountainCar` but ``velocity += clip(a, -1, 1) * 0.0015 -
    0.0025 cos(3 position)``, goal at 0.45, reward ``100 * terminated - 0.1 a^2`` with the
    UNCLIPPED action ``a``, truncated at 999. Gymnasium stores the state as float32 after
    every step; in float64 mode the state is rounded through float32 at the same point.
    """

    goal_position = 0.45
    power = 0.0015

    def __init__(
        self,
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 999,
        goal_velocity: float = 0,
    ) -> None:
        super().__init__(num_envs, device, seed, compile, dtype, max_episode_steps, goal_velocity)

    def _make_action_space(self) -> spaces.Space:
        return spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)

    def _accel(self, action: Tensor, position: Tensor, dtype: torch.dtype) -> Tensor:
        # gymnasium continuous_mountain_car.py: force = min(max(a, -1), 1)
        force = action[:, 0].to(dtype).clamp(-1.0, 1.0)
        return force * self.power - 0.0025 * torch.cos(3 * position)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        next_state, reward, terminated = super()._dynamics(state, action)
        if self.dtype == torch.float64:  # gymnasium: self.state = np.array([...], dtype=np.float32)
            next_state = next_state.to(torch.float32).to(torch.float64)
        return next_state, reward, terminated

    def _reward(self, action: Tensor, terminated: Tensor, dtype: torch.dtype) -> Tensor:
        # 100 on reaching the goal minus 0.1 * a^2 of the UNCLIPPED action
        a = action[:, 0].to(dtype)
        return terminated.to(dtype) * 100.0 - a.square() * 0.1


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------
def _factory(cls: type[TorchVecEnv], default_limit: int, **fixed: Any) -> Callable[..., TorchVecEnv]:
    def make(
        num_envs: int = 1,
        device: Device = "cpu",
        seed: int | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> TorchVecEnv:
        limit = default_limit if max_episode_steps is None else max_episode_steps
        return cls(num_envs, device, seed, compile, dtype, limit, **fixed, **env_kwargs)

    make.__doc__ = f"Build ``num_envs`` batched {cls.__name__} envs (default time limit {default_limit})."
    return make


# time limits from gymnasium/envs/__init__.py
register("CartPole-v0", {"torch": _factory(CartPole, 200)})
register("CartPole-v1", {"torch": _factory(CartPole, 500)})
register("Pendulum-v1", {"torch": _factory(Pendulum, 200)})
register("Acrobot-v1", {"torch": _factory(Acrobot, 500)})
register("MountainCar-v0", {"torch": _factory(MountainCar, 200)})
register("MountainCarContinuous-v0", {"torch": _factory(MountainCarContinuous, 999)})
