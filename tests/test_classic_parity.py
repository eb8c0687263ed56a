"""Step-for-step parity of the torch classic-control envs with gymnasium's own.

The same float64 state is injected into ``gym.make(id).unwrapped`` and into a batch of our
env (``dtype=torch.float64``); both get the same actions and must agree on observation,
reward, terminated and truncated to 1e-6 at every step. Injected states are drawn wide,
so that many steps land near and across the termination thresholds, and a few are placed
exactly on them. Reset distributions are checked statistically, and the float32 default
mode loosely.
"""

from __future__ import annotations

import math
from typing import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.vecenvs import classic
from policyopt.vecenvs.classic import _wrap_pi

ENV_IDS = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]
PI = math.pi
CP_THETA = 12 * 2 * math.pi / 360


# --- what to inject and which actions to apply ------------------------------------------
def _states(env_id: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Wide random states: many episodes start next to (or across) a threshold."""
    u = lambda lo, hi: rng.uniform(lo, hi, size=n)  # noqa: E731
    if env_id.startswith("CartPole"):
        return np.stack([u(-2.45, 2.45), u(-2, 2), u(-0.22, 0.22), u(-2, 2)], 1)
    if env_id == "Pendulum-v1":  # theta unwrapped on purpose: angle_normalize must handle it
        return np.stack([u(-3 * PI, 3 * PI), u(-8, 8)], 1)
    if env_id == "Acrobot-v1":
        return np.stack([u(-PI, PI), u(-PI, PI), u(-4 * PI, 4 * PI), u(-9 * PI, 9 * PI)], 1)
    goal = 0.5 if env_id == "MountainCar-v0" else 0.45
    pos = np.where(rng.random(n) < 0.5, u(goal - 0.08, 0.6), u(-1.2, -0.9))  # near the goal / left wall
    return np.stack([pos, u(-0.07, 0.07)], 1)


def _boundary_states(env_id: str) -> np.ndarray:
    """States placed exactly on a threshold, clipping bound or wrap point."""
    if env_id.startswith("CartPole"):
        return np.array(
            [
                [2.4, 0.0, 0.0, 0.0],  # x stays exactly 2.4: not terminated (strict >)
                [-2.4, 0.0, 0.0, 0.0],
                [0.0, 0.0, CP_THETA, 0.0],  # theta stays exactly on the threshold
                [0.0, 0.0, -CP_THETA, 0.0],
                [2.4, 1e-9, 0.0, 0.0],  # just across
                [0.0, 0.0, CP_THETA, 1e-9],
            ]
        )
    if env_id == "Pendulum-v1":
        return np.array([[PI, 0.0], [-PI, 0.0], [3 * PI, 8.0], [0.0, -8.0], [-5 * PI, 7.99]])
    if env_id == "Acrobot-v1":
        return np.array(
            [[PI, 0.0, 0.0, 0.0], [-PI, PI, 0.0, 0.0], [0.0, 0.0, 4 * PI, 9 * PI], [PI - 1e-3, -PI + 1e-3, 4 * PI, -9 * PI]]
        )
    goal = 0.5 if env_id == "MountainCar-v0" else 0.45
    return np.array([[-1.2, -0.07], [-1.19, -0.05], [0.6, 0.07], [goal, 0.0], [goal - 0.01, 0.07], [-0.5, 0.0]])


def _actions(env_id: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if env_id.startswith("CartPole"):
        return rng.integers(0, 2, size=n)
    if env_id in ("Acrobot-v1", "MountainCar-v0"):
        return rng.integers(0, 3, size=n)
    bound = 2.0 if env_id == "Pendulum-v1" else 1.0
    # out-of-range actions too: gymnasium clips the torque/force (and MCC's cost uses the raw action)
    return rng.uniform(-1.5 * bound, 1.5 * bound, size=(n, 1)).astype(np.float32)


def _gym_action(a: np.ndarray):
    return int(a) if a.ndim == 0 else a


def _set_gym_state(env: gym.Env, s: np.ndarray) -> None:
    env.state = np.array(s, dtype=np.float64)
    if hasattr(env, "steps_beyond_terminated"):
        env.steps_beyond_terminated = None


def _gym_state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.state, dtype=np.float64)


def _set_rows(env: vecenvs.TorchVecEnv, rows: np.ndarray, states: np.ndarray) -> None:
    state = env.state.clone()
    state[torch.as_tensor(rows)] = torch.as_tensor(states, dtype=env.dtype)
    env.state = state


# --- the lockstep runner ----------------------------------------------------------------
def _lockstep(
    env_id: str,
    n: int,
    steps: int,
    seed: int,
    reinject_every_step: bool,
    first_states: np.ndarray | None = None,
    dtype: torch.dtype = torch.float64,
    check: Callable | None = None,
) -> dict[str, int]:
    """Step ``n`` gymnasium envs and one batch of ours side by side; ``check`` compares."""
    rng = np.random.default_rng(seed)
    ours = vecenvs.make(env_id, n, seed=seed, dtype=dtype, max_episode_steps=10**9)
    ours.reset()
    gyms = [gym.make(env_id).unwrapped for _ in range(n)]
    for g in gyms:
        g.reset(seed=int(rng.integers(2**31)))
    start = _states(env_id, rng, n) if first_states is None else first_states
    for g, s in zip(gyms, start):
        _set_gym_state(g, s)
    _set_rows(ours, np.arange(n), start)
    counts = {"steps": 0, "terminated": 0}
    for _ in range(steps):
        actions = _actions(env_id, rng, n)
        results = [g.step(_gym_action(a)) for g, a in zip(gyms, actions)]
        g_obs = np.stack([r[0] for r in results]).astype(np.float32)
        g_rew = np.array([r[1] for r in results], dtype=np.float64)
        g_term = np.array([r[2] for r in results])
        g_state = np.stack([_gym_state(g) for g in gyms])
        obs, rew, term, trunc, info = ours.step(torch.as_tensor(actions))
        done = info["_final_obs"].numpy()
        # the row's own last obs is in final_obs (obs already holds the next episode's first one)
        (check or _check_exact)(env_id, g_obs, g_rew, g_term, info["final_obs"].numpy(), rew.numpy(), term.numpy())
        assert not trunc.any()
        np.testing.assert_array_equal(done, g_term)
        counts["steps"] += n
        counts["terminated"] += int(g_term.sum())
        # continuing rows keep our own state: compare it too (a stronger check than the obs)
        if dtype == torch.float64:
            keep = ~g_term
            tol = 1e-7 if env_id == "MountainCarContinuous-v0" else 1e-9  # float32-stored state
            np.testing.assert_allclose(ours.state.numpy()[keep], g_state[keep], rtol=tol, atol=tol)
        # new episodes (and every step if asked) start again from gymnasium's state
        fresh = np.flatnonzero(g_term)
        new = _states(env_id, rng, len(fresh))
        for i, s in zip(fresh, new):
            _set_gym_state(gyms[i], s)
            g_state[i] = s
        rows = np.arange(n) if reinject_every_step else fresh
        if len(rows):
            _set_rows(ours, rows, g_state[rows])
    return counts


def _check_exact(env_id, g_obs, g_rew, g_term, obs, rew, term) -> None:
    np.testing.assert_allclose(obs, g_obs, rtol=1e-6, atol=1e-6, err_msg=env_id)
    np.testing.assert_allclose(rew, g_rew, rtol=1e-6, atol=1e-6, err_msg=env_id)
    np.testing.assert_array_equal(term, g_term, err_msg=env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float64_parity_lockstep(env_id: str) -> None:
    """>= 1000 env-steps per env, random wide states and actions, per-step comparison."""
    # Acrobot is chaotic and MCC re-rounds through float32 (1-ulp differences can grow):
    # give them gymnasium's state every step; the others run free within each episode.
    reinject = env_id in ("Acrobot-v1", "MountainCarContinuous-v0")
    counts = _lockstep(env_id, n=16, steps=80, seed=1, reinject_every_step=reinject)
    assert counts["steps"] >= 1000
    if env_id != "Pendulum-v1":  # the wide states must actually exercise termination
        assert counts["terminated"] >= 10, counts


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float64_parity_boundaries(env_id: str) -> None:
    """States exactly on thresholds, clipping bounds and wrap points."""
    first = _boundary_states(env_id)
    _lockstep(env_id, n=len(first), steps=5, seed=2, reinject_every_step=False, first_states=first)


def test_acrobot_free_run() -> None:
    """50 steps without re-injection: the RK4 trajectory itself matches."""
    rng = np.random.default_rng(3)
    n = 8
    ours = vecenvs.make("Acrobot-v1", n, seed=0, dtype=torch.float64)
    ours.reset()
    gyms = [gym.make("Acrobot-v1").unwrapped for _ in range(n)]
    start = []
    for g in gyms:
        g.reset(seed=int(rng.integers(2**31)))
        start.append(_gym_state(g))  # gymnasium's own float32-rounded reset state
    _set_rows(ours, np.arange(n), np.stack(start))
    for _ in range(50):
        actions = rng.integers(0, 3, size=n)
        results = [g.step(int(a)) for g, a in zip(gyms, actions)]
        _, _, term, _, info = ours.step(torch.as_tensor(actions))
        g_term = np.array([r[2] for r in results])
        assert not g_term.any()  # 50 steps from rest cannot reach the goal height
        np.testing.assert_array_equal(term.numpy(), g_term)
        np.testing.assert_allclose(info["final_obs"].numpy(), np.stack([r[0] for r in results]), atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(ours.state.numpy(), np.stack([_gym_state(g) for g in gyms]), atol=1e-6)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_truncation_matches_time_limit(env_id: str) -> None:
    """Against gymnasium's TimeLimit-wrapped env: same limit, and truncated on the same step.

    Rows are re-injected from gymnasium after every step so that termination (and the
    autoreset it triggers) coincides too; a short custom limit keeps it quick.
    """
    limit = gym.spec(env_id).max_episode_steps
    assert vecenvs.make(env_id, 1).max_episode_steps == limit
    k, n = 7, 4
    rng = np.random.default_rng(4)
    gyms = [gym.make(env_id, max_episode_steps=k) for _ in range(n)]
    ours = vecenvs.make(env_id, n, seed=0, dtype=torch.float64, max_episode_steps=k)
    ours.reset()
    for g in gyms:
        g.reset(seed=int(rng.integers(2**31)))
    _set_rows(ours, np.arange(n), np.stack([_gym_state(g.unwrapped) for g in gyms]))
    n_trunc = 0
    for _ in range(3 * k + 2):
        actions = _actions(env_id, rng, n)
        results = [g.step(_gym_action(a)) for g, a in zip(gyms, actions)]
        _, _, term, trunc, info = ours.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(term.numpy(), [r[2] for r in results])
        np.testing.assert_array_equal(trunc.numpy(), [r[3] for r in results])
        np.testing.assert_allclose(info["final_obs"].numpy(), np.stack([r[0] for r in results]), atol=1e-6, rtol=1e-6)
        n_trunc += int(trunc.sum())
        for i, r in enumerate(results):
            if r[2] or r[3]:
                gyms[i].reset(seed=int(rng.integers(2**31)))
        _set_rows(ours, np.arange(n), np.stack([_gym_state(g.unwrapped) for g in gyms]))
    assert n_trunc > 0


def test_terminated_and_truncated_on_the_same_step() -> None:
    """Both flags are reported when the last allowed step also terminates (TimeLimit does too)."""
    g = gym.make("CartPole-v1", max_episode_steps=1)
    g.reset(seed=0)
    _set_gym_state(g.unwrapped, np.array([2.39, 5.0, 0.0, 0.0]))
    _, _, g_term, g_trunc, _ = g.step(1)
    ours = vecenvs.make("CartPole-v1", 2, dtype=torch.float64, max_episode_steps=1)
    ours.reset(seed=0)
    _set_rows(ours, np.array([0]), np.array([[2.39, 5.0, 0.0, 0.0]]))
    _, _, term, trunc, _ = ours.step(torch.tensor([1, 1]))
    assert (g_term, g_trunc) == (True, True)
    assert bool(term[0]) and bool(trunc[0])
    assert not bool(term[1]) and bool(trunc[1])


def test_pendulum_default_limit_full_episode() -> None:
    """A whole 200-step Pendulum episode against gymnasium's registered TimeLimit."""
    rng = np.random.default_rng(5)
    g = gym.make("Pendulum-v1")
    g.reset(seed=5)
    ours = vecenvs.make("Pendulum-v1", 1, seed=0, dtype=torch.float64)
    ours.reset()
    _set_rows(ours, np.array([0]), _gym_state(g.unwrapped)[None])
    for t in range(1, 201):
        a = rng.uniform(-2, 2, size=(1, 1)).astype(np.float32)
        g_obs, g_rew, g_term, g_trunc, _ = g.step(a[0])
        _, rew, term, trunc, info = ours.step(torch.as_tensor(a))
        np.testing.assert_allclose(info["final_obs"].numpy()[0], g_obs, atol=1e-6, rtol=1e-6)
        assert abs(float(rew[0]) - g_rew) < 1e-6
        assert (bool(term[0]), bool(trunc[0])) == (g_term, g_trunc) == (False, t == 200)


def test_mountain_car_lands_exactly_on_goal() -> None:
    """``position >= goal`` is not strict: find a state whose next position IS the goal.

    (MountainCarContinuous stores a float32 position, which can never equal 0.45.)
    """
    env_id, goal, action = "MountainCar-v0", 0.5, 1  # no push
    g = gym.make(env_id).unwrapped
    g.reset(seed=0)
    p = goal - 0.03
    v = 0.03 + 0.0025 * math.cos(3 * p)  # about what lands on the goal; now search ulps
    for _ in range(200):
        _set_gym_state(g, np.array([p, v]))
        g.step(action)
        pos = float(np.asarray(g.state, dtype=np.float64)[0])
        if pos == goal:
            break
        v = np.nextafter(v, np.inf if pos < goal else -np.inf)
    else:
        raise AssertionError("no state lands exactly on the goal")
    for start, expected in ((v, True), (np.nextafter(np.nextafter(v, -1.0), -1.0), False)):
        _set_gym_state(g, np.array([p, start]))
        _, _, g_term, _, _ = g.step(action)
        ours = vecenvs.make(env_id, 1, dtype=torch.float64)
        ours.reset(seed=0)
        _set_rows(ours, np.array([0]), np.array([[p, start]]))
        _, _, term, _, _ = ours.step(torch.as_tensor(np.array([action])))
        assert g_term == expected or start != v
        assert bool(term[0]) == g_term


def test_mcc_state_is_stored_as_float32() -> None:
    """Gymnasium re-stores MountainCarContinuous's state as float32 after every step."""
    env = vecenvs.make("MountainCarContinuous-v0", 64, seed=0, dtype=torch.float64)
    env.reset()
    assert not (env.state == env.state.float().double()).all()  # the reset state is float64
    env.step(torch.rand(64, 1, dtype=torch.float64) * 2 - 1)
    assert (env.state == env.state.float().double()).all()


@pytest.mark.parametrize(
    "x",
    [PI, -PI, 3 * PI, -3 * PI, PI + 1e-12, -PI - 1e-12, 2 * PI, -2 * PI, 4.0, -4.0, 9.5, -9.5, 0.0, 1e-300, 40.0],
)
def test_wrap_matches_gymnasium(x: float) -> None:
    from gymnasium.envs.classic_control.acrobot import wrap

    expected = wrap(x, -PI, PI)
    got = float(_wrap_pi(torch.tensor([x], dtype=torch.float64))[0])
    if abs(x) < 4 * PI:  # gymnasium's repeated subtraction, reproduced bit for bit
        assert got == expected
    else:  # far out (unreachable in one step): the remainder fallback, up to rounding
        assert abs(got - expected) < 1e-12


# --- float32 default mode ---------------------------------------------------------------
def _check_loose(env_id, g_obs, g_rew, g_term, obs, rew, term) -> None:
    np.testing.assert_allclose(obs, g_obs, rtol=1e-4, atol=1e-4, err_msg=env_id)
    np.testing.assert_allclose(rew, g_rew, rtol=1e-4, atol=1e-4, err_msg=env_id)
    # a float32 state may land on the other side of a threshold than gymnasium's float64
    assert (term != g_term).mean() <= 0.1, env_id


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float32_mode_loosely(env_id: str) -> None:
    ours = vecenvs.make(env_id, 4, seed=0)
    assert ours.state.dtype == torch.float32
    obs, _ = ours.reset()
    assert obs.dtype == torch.float32

    rng = np.random.default_rng(6)
    n, steps = 32, 20
    ours = vecenvs.make(env_id, n, seed=0, max_episode_steps=10**9)
    ours.reset()
    gyms = [gym.make(env_id).unwrapped for _ in range(n)]
    mismatches = 0
    for _ in range(steps):
        # gymnasium's float64 state, rounded into ours every step
        start = _states(env_id, rng, n)
        for g, s in zip(gyms, start):
            _set_gym_state(g, s)
        _set_rows(ours, np.arange(n), start)
        actions = _actions(env_id, rng, n)
        results = [g.step(_gym_action(a)) for g, a in zip(gyms, actions)]
        _, rew, term, _, info = ours.step(torch.as_tensor(actions))
        assert rew.dtype == torch.float32
        g_term = np.array([r[2] for r in results])
        mismatches += int((term.numpy() != g_term).sum())
        np.testing.assert_allclose(info["final_obs"].numpy(), np.stack([r[0] for r in results]), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(rew.numpy(), [r[1] for r in results], rtol=1e-4, atol=1e-4)
    assert mismatches <= 0.02 * n * steps


# --- reset distributions ----------------------------------------------------------------
def _ks_uniform(x: np.ndarray, low: float, high: float) -> float:
    """Kolmogorov-Smirnov distance of a sample to U(low, high) (scipy is not a dependency)."""
    x = np.sort((x - low) / (high - low))
    n = len(x)
    i = np.arange(1, n + 1)
    return float(max((i / n - x).max(), (x - (i - 1) / n).max()))


def _check_uniform(x: np.ndarray, low: float, high: float, what: str) -> None:
    n = len(x)
    assert x.min() >= low and x.max() <= high, what
    mean, std = (low + high) / 2, (high - low) / math.sqrt(12)
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n), what  # 5 sigma
    assert abs(x.std() - std) < 0.02 * std, what
    assert _ks_uniform(x, low, high) < 1.95 / math.sqrt(n), what  # KS critical value, alpha = 0.001


RESET = {  # per state column: (low, high), from gymnasium's reset()
    "CartPole-v1": [(-0.05, 0.05)] * 4,
    "Pendulum-v1": [(-PI, PI), (-1.0, 1.0)],
    "Acrobot-v1": [(-0.1, 0.1)] * 4,
    "MountainCar-v0": [(-0.6, -0.4), (0.0, 0.0)],
    "MountainCarContinuous-v0": [(-0.6, -0.4), (0.0, 0.0)],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_distribution(env_id: str, dtype: torch.dtype) -> None:
    env = vecenvs.make(env_id, 20000, seed=7, dtype=dtype)
    obs, _ = env.reset()
    state = env.state.double().numpy()
    for j, (low, high) in enumerate(RESET[env_id]):
        if low == high:
            assert (state[:, j] == low).all()
        else:
            _check_uniform(state[:, j], low, high, f"{env_id} column {j}")
    np.testing.assert_array_equal(obs.numpy(), env._observe(env.state).numpy())
    assert env.single_observation_space.contains(obs[0].numpy())
    if env_id == "Acrobot-v1":  # gymnasium stores .astype(np.float32)
        assert (env.state == env.state.float().to(dtype)).all()
    # autoreset draws from the same distribution
    if env_id == "CartPole-v1":
        fresh = env._initial_state(20000, None).double().numpy()
        _check_uniform(fresh[:, 0], -0.05, 0.05, "autoreset")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"])
def test_reset_options_low_high(env_id: str) -> None:
    env = vecenvs.make(env_id, 5000, seed=8, dtype=torch.float64)
    env.reset(options={"low": -0.2, "high": -0.1})
    pos = env.state.numpy()[:, 0]
    assert pos.min() >= -0.2 and pos.max() <= -0.1 and pos.std() > 0.02
    default_low = {"CartPole-v1": -0.05, "Acrobot-v1": -0.1}.get(env_id, -0.6)
    high = default_low / 2
    env.reset(options={"high": high})  # gymnasium fills in the default low
    pos = env.state.numpy()[:, 0]
    assert pos.min() >= default_low and pos.min() < default_low * 0.99 and pos.max() <= high + 1e-7
    with pytest.raises(ValueError):
        env.reset(options={"low": 1.0, "high": 0.0})  # gymnasium: low > high
    with pytest.raises(ValueError):
        env.reset(options={"low": "abc"})
    with pytest.raises(ValueError):
        gym.make(env_id).reset(options={"low": 1.0, "high": 0.0})


def test_pendulum_reset_options() -> None:
    env = vecenvs.make("Pendulum-v1", 5000, seed=9, dtype=torch.float64)
    env.reset(options={"x_init": 0.5, "y_init": 0.25})
    s = env.state.numpy()
    assert np.abs(s[:, 0]).max() <= 0.5 and np.abs(s[:, 0]).max() > 0.45
    assert np.abs(s[:, 1]).max() <= 0.25 and np.abs(s[:, 1]).max() > 0.2
    env.reset(options={"y_init": 0.1})  # x keeps gymnasium's default pi
    assert np.abs(env.state.numpy()[:, 0]).max() > 3.0


@pytest.mark.parametrize("env_id", ENV_IDS + ["CartPole-v0"])
def test_spaces_identical_to_gymnasium(env_id: str) -> None:
    ours = vecenvs.make(env_id, 3)
    g = gym.make(env_id)
    assert ours.single_observation_space == g.observation_space
    assert ours.single_action_space == g.action_space
    assert ours.single_observation_space.dtype == np.float32
    assert ours.max_episode_steps == g.spec.max_episode_steps
    assert env_id in vecenvs.registered_ids()
    assert isinstance(ours, classic.CartPole if env_id.startswith("CartPole") else vecenvs.TorchVecEnv)


def test_cartpole_sutton_barto_reward() -> None:
    """gymnasium's ``sutton_barto_reward=True``: 0 per step, -1 on the terminating step."""
    rng = np.random.default_rng(10)
    n = 64
    ours = vecenvs.make("CartPole-v1", n, dtype=torch.float64, sutton_barto_reward=True)
    ours.reset(seed=0)
    start = _states("CartPole-v1", rng, n)
    _set_rows(ours, np.arange(n), start)
    actions = rng.integers(0, 2, size=n)
    results = []
    for s, a in zip(start, actions):
        g = gym.make("CartPole-v1", sutton_barto_reward=True).unwrapped
        g.reset(seed=0)
        _set_gym_state(g, s)
        results.append(g.step(int(a)))
    _, rew, term, _, _ = ours.step(torch.as_tensor(actions))
    np.testing.assert_array_equal(term.numpy(), [r[2] for r in results])
    np.testing.assert_array_equal(rew.numpy(), [r[1] for r in results])
    assert term.any() and not term.all()
