"""Vector-env API semantics of the native tensor envs (``vecenvs.TorchVecEnv``)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from policyopt import vecenvs

ENV_IDS = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]
CP_THETA = 12 * 2 * math.pi / 360


def _random_actions(env: vecenvs.TorchVecEnv, gen: torch.Generator) -> torch.Tensor:
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (env.num_envs,), generator=gen)
    low, high = float(space.low[0]), float(space.high[0])
    return low + (high - low) * torch.rand((env.num_envs, *space.shape), generator=gen)


def _rollout(env: vecenvs.TorchVecEnv, steps: int, action_seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(action_seed)
    out = []
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(_random_actions(env, gen))
        out.append((obs.clone(), rew.clone(), term.clone(), trunc.clone(), info["final_obs"].clone()))
    return out


def _assert_same(a: list[tuple[torch.Tensor, ...]], b: list[tuple[torch.Tensor, ...]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert torch.equal(u, v)


# --- autoreset ------------------------------------------------------------------------
def test_same_step_autoreset_cartpole() -> None:
    n = 256
    env = vecenvs.make("CartPole-v1", n, seed=0)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset()
    gen = torch.Generator().manual_seed(1)
    n_done = 0
    for _ in range(60):
        prev_elapsed = env.elapsed_steps.clone()
        obs, rew, term, trunc, info = env.step(_random_actions(env, gen))
        done = info["_final_obs"]
        final = info["final_obs"]
        assert done.dtype == torch.bool and done.shape == (n,)
        assert torch.equal(done, term | trunc)
        assert final.shape == obs.shape == (n, 4) and final.dtype == obs.dtype == torch.float32
        # continuing rows: obs is the final obs; the step counter advanced
        assert torch.equal(obs[~done], final[~done])
        assert torch.equal(env.elapsed_steps[~done], prev_elapsed[~done] + 1)
        if done.any():
            # finished rows: final_obs crossed a threshold, obs is a fresh reset state
            f = final[done]
            assert ((f[:, 0].abs() > 2.4) | (f[:, 2].abs() > CP_THETA)).all()
            assert (obs[done].abs() <= 0.05).all()
            assert (env.elapsed_steps[done] == 0).all()
            assert torch.equal(env.state[done].float(), obs[done])
            n_done += int(done.sum())
        assert (rew == 1.0).all()
    assert n_done > 50


def test_terminated_and_truncated_are_separate() -> None:
    # Pendulum never terminates: only the time limit ends it, on exactly that step.
    env = vecenvs.make("Pendulum-v1", 8, seed=0, max_episode_steps=5)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for t in range(1, 12):
        obs, _, term, trunc, info = env.step(_random_actions(env, gen))
        assert not term.any()
        assert bool(trunc.all()) == (t % 5 == 0) and bool(trunc.any()) == (t % 5 == 0)
        assert torch.equal(info["_final_obs"], trunc)
    # CartPole with a short limit: both kinds happen, never mixed up
    env = vecenvs.make("CartPole-v1", 512, seed=0, max_episode_steps=15)
    env.reset()
    seen_term = seen_trunc = 0
    for _ in range(40):
        elapsed_before = env.elapsed_steps.clone()
        _, _, term, trunc, info = env.step(_random_actions(env, gen))
        f = info["final_obs"]
        crossed = (f[:, 0].abs() > 2.4) | (f[:, 2].abs() > CP_THETA)
        assert torch.equal(term, crossed)
        assert torch.equal(trunc, elapsed_before + 1 >= 15)
        seen_term += int(term.sum())
        seen_trunc += int((trunc & ~term).sum())
    assert seen_term > 0 and seen_trunc > 0


# --- seeding and state ------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeding(env_id: str) -> None:
    a = vecenvs.make(env_id, 32, seed=123, max_episode_steps=20)
    b = vecenvs.make(env_id, 32, seed=123, max_episode_steps=20)
    c = vecenvs.make(env_id, 32, seed=124, max_episode_steps=20)
    oa, _ = a.reset()
    ob, _ = b.reset()
    oc, _ = c.reset()
    assert torch.equal(oa, ob) and not torch.equal(oa, oc)
    ra, rb, rc = _rollout(a, 45), _rollout(b, 45), _rollout(c, 45)  # crosses autoresets
    _assert_same(ra, rb)
    assert not torch.equal(ra[-1][0], rc[-1][0])
    # reset(seed=...) re-seeds: the same first obs and the same trajectory again
    o1, _ = a.reset(seed=7)
    r1 = _rollout(a, 30)
    o2, _ = a.reset(seed=7)
    r2 = _rollout(a, 30)
    assert torch.equal(o1, o2)
    _assert_same(r1, r2)
    o3, _ = a.reset()  # no seed: the generator continues, so a different draw
    assert not torch.equal(o1, o3)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_dict_continues_exactly(env_id: str) -> None:
    env = vecenvs.make(env_id, 64, seed=5, max_episode_steps=10)
    env.reset()
    _rollout(env, 7, action_seed=1)
    sd = env.state_dict()
    expected = _rollout(env, 25, action_seed=2)  # includes autoresets: the RNG state matters
    _rollout(env, 3, action_seed=3)  # move away
    env.load_state_dict(sd)
    _assert_same(_rollout(env, 25, action_seed=2), expected)
    # and into a fresh env object
    other = vecenvs.make(env_id, 64, seed=999, max_episode_steps=10)
    other.load_state_dict(sd)
    _assert_same(_rollout(other, 25, action_seed=2), expected)
    with pytest.raises(ValueError):
        vecenvs.make(env_id, 3).load_state_dict(sd)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_reset_mask(env_id: str) -> None:
    n = 64
    env = vecenvs.make(env_id, n, seed=0)
    env.reset()
    _rollout(env, 5)
    before_state, before_elapsed = env.state.clone(), env.elapsed_steps.clone()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[::3] = True
    obs, _ = env.reset(options={"reset_mask": mask})
    assert torch.equal(env.state[~mask], before_state[~mask])
    assert torch.equal(env.elapsed_steps[~mask], before_elapsed[~mask])
    assert (env.elapsed_steps[mask] == 0).all()
    assert not torch.isclose(env.state[mask], before_state[mask]).all(dim=1).any()
    assert torch.equal(obs, env._observe(env.state))
    with pytest.raises(ValueError):
        env.reset(options={"reset_mask": torch.ones(n - 1, dtype=torch.bool)})
    with pytest.raises(ValueError):
        env.reset(options={"reset_mask": torch.ones(n)})  # not bool


def test_step_before_reset_raises() -> None:
    with pytest.raises(RuntimeError):
        vecenvs.make("CartPole-v1", 2).step(torch.zeros(2, dtype=torch.int64))


def test_returned_tensors_are_not_aliased() -> None:
    """What the caller holds is never overwritten by a later step's in-place autoreset."""
    env = vecenvs.make("CartPole-v1", 128, seed=0, max_episode_steps=3)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    held = []
    for _ in range(7):
        out = env.step(_random_actions(env, gen))
        held.append((out, [t.clone() for t in out[:4]], out[4]["final_obs"].clone(), env.state.clone()))
    for (obs, rew, term, trunc, info), copies, final, _ in held:
        for t, c in zip((obs, rew, term, trunc), copies):
            assert torch.equal(t, c)
        assert torch.equal(info["final_obs"], final)
    assert (held[2][0][3]).all() and not torch.equal(held[2][0][0], held[2][2])  # truncation row: obs != final_obs


# --- compile ------------------------------------------------------------------------------
def test_compile_matches_eager() -> None:
    # one env only: compiling takes seconds (and is what dominates this file's runtime)
    env_id = "CartPole-v1"
    eager = vecenvs.make(env_id, 64, seed=3, dtype=torch.float64, max_episode_steps=25)
    compiled = vecenvs.make(env_id, 64, seed=3, dtype=torch.float64, max_episode_steps=25, compile=True)
    oe, _ = eager.reset()
    oc, _ = compiled.reset()
    assert torch.equal(oe, oc)
    re_, rc = _rollout(eager, 40), _rollout(compiled, 40)  # crosses truncation and termination
    for a, b in zip(re_, rc):
        for u, v in zip(a, b):
            if u.dtype == torch.bool:
                assert torch.equal(u, v)
            else:
                torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(eager.state, compiled.state, rtol=1e-9, atol=1e-9)


# --- spaces -------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_are_batched(env_id: str) -> None:
    n = 5
    env = vecenvs.make(env_id, n, seed=0)
    single = gym.make(env_id)
    obs_dim = single.observation_space.shape[0]
    assert env.num_envs == n
    assert env.observation_space.shape == (n, obs_dim)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    if isinstance(single.action_space, gym.spaces.Discrete):
        assert env.action_space == gym.spaces.MultiDiscrete([single.action_space.n] * n)
    else:
        assert env.action_space.shape == (n, *single.action_space.shape)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset()
    assert obs.shape == (n, obs_dim) and obs.dtype == torch.float32 and obs.device == env.device
    assert obs.is_contiguous()
    obs, rew, term, trunc, _ = env.step(_random_actions(env, torch.Generator().manual_seed(0)))
    assert obs.shape == (n, obs_dim) and obs.is_contiguous()
    assert rew.shape == term.shape == trunc.shape == (n,)
    assert term.dtype == trunc.dtype == torch.bool


# --- bad input ----------------------------------------------------------------------------
def _message_names_expectation(msg: str, shape: tuple[int, ...], dtype_word: str) -> None:
    assert str(shape) in msg, msg
    assert dtype_word in msg, msg
    assert "cpu" in msg, msg


def test_bad_discrete_actions() -> None:
    env = vecenvs.make("CartPole-v1", 4, seed=0)
    env.reset()
    state = env.state.clone()
    for bad in (
        torch.zeros(3, dtype=torch.int64),  # shape
        torch.zeros(4, 1, dtype=torch.int64),  # shape
        torch.zeros(4, dtype=torch.float32),  # float where int expected
        torch.zeros(4, dtype=torch.bool),
        torch.zeros(4, dtype=torch.int64, device="meta"),  # device
        np.zeros(3, dtype=np.int64),  # NumPy is converted, but its shape is still checked
        np.zeros(4, dtype=np.float32),  # NumPy floats where ints expected
        [0, 1, 1],  # a list of the wrong length
    ):
        with pytest.raises(ValueError) as e:
            env.step(bad)
        _message_names_expectation(str(e.value), (4,), "integer")
    for bad_value in (2, -1):
        with pytest.raises(ValueError, match="0..1"):
            env.step(torch.tensor([0, 1, bad_value, 0]))
    assert torch.equal(env.state, state)  # nothing was stepped
    with pytest.raises(ValueError, match="0..2"):
        acro = vecenvs.make("Acrobot-v1", 2)
        acro.reset()
        acro.step(torch.tensor([0, 3]))


def test_bad_continuous_actions() -> None:
    env = vecenvs.make("Pendulum-v1", 4, seed=0)
    env.reset()
    for bad in (
        torch.zeros(4),  # missing action dim
        torch.zeros(4, 2),
        torch.zeros(4, 1, dtype=torch.int64),  # int where float expected
        torch.zeros(4, 1, device="meta"),
    ):
        with pytest.raises(ValueError) as e:
            env.step(bad)
        _message_names_expectation(str(e.value), (4, 1), "floating")
    env.step(torch.full((4, 1), 10.0))  # out of bounds is the env's business: clipped as in gymnasium


def test_unknown_env_id() -> None:
    with pytest.raises(ValueError) as e:
        vecenvs.make("NoSuchEnv-v0")
    msg = str(e.value)
    for env_id in ENV_IDS:
        assert env_id in msg
    assert "adapter" in msg and "NoSuchEnv-v0" in msg


def test_registry_and_factory_kwargs() -> None:
    assert set(ENV_IDS + ["CartPole-v0"]) <= set(vecenvs.registered_ids())
    env = vecenvs.make("CartPole-v0", 3, seed=0, dtype=torch.float64, max_episode_steps=9)
    assert env.max_episode_steps == 9 and env.state.dtype == torch.float64
    assert vecenvs.make("CartPole-v0", 1).max_episode_steps == 200
    pend = vecenvs.make("Pendulum-v1", 2, g=9.81)
    assert pend.g == 9.81
    with pytest.raises(TypeError):
        vecenvs.make("Pendulum-v1", 2, no_such_kwarg=1)
    with pytest.raises(ValueError):
        vecenvs.make("CartPole-v1", 2, dtype=torch.float16)
