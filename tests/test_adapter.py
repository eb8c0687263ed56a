"""Tests of vecenvs.adapter.GymnasiumVecEnv against gymnasium's own vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from policyopt import vecenvs
from policyopt.vecenvs.adapter import GymnasiumVecEnv
from policyopt.vecenvs.wrappers import NormalizeObservation, RecordEpisodeStatistics

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_types_and_devices(device):
    env = GymnasiumVecEnv("CartPole-v1", num_envs=3, device=device, seed=0)
    try:
        assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert env.num_envs == 3 and env.device == torch.device(device)
        assert env.max_episode_steps == 500
        assert env.observation_space.shape == (3, 4) and env.action_space.shape == (3,)
        obs, info = env.reset()
        assert obs.dtype == torch.float32 and obs.shape == (3, 4) and obs.device.type == device
        obs, reward, terminated, truncated, info = env.step(torch.ones(3, dtype=torch.int64, device=device))
        for t, dtype, shape in (
            (obs, torch.float32, (3, 4)),
            (reward, torch.float32, (3,)),
            (terminated, torch.bool, (3,)),
            (truncated, torch.bool, (3,)),
            (info["final_obs"], torch.float32, (3, 4)),
            (info["_final_obs"], torch.bool, (3,)),
        ):
            assert t.dtype == dtype and tuple(t.shape) == shape and t.device.type == device
    finally:
        env.close()


def test_final_obs_dense_and_equal_to_gymnasium():
    n, seed = 4, 42
    env = GymnasiumVecEnv("CartPole-v1", num_envs=n, seed=seed)  # the seed applies to the first reset
    ref = gym.make_vec(
        "CartPole-v1", num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}
    )
    try:
        obs, _ = env.reset()
        ref_obs, _ = ref.reset(seed=seed)
        np.testing.assert_array_equal(obs.numpy(), ref_obs.astype(np.float32))
        rng = np.random.default_rng(0)
        finished = 0
        for _ in range(120):
            a = rng.integers(0, 2, size=n)
            obs, r, te, tr, info = env.step(torch.as_tensor(a))
            ref_obs, ref_r, ref_te, ref_tr, ref_info = ref.step(a)
            np.testing.assert_array_equal(obs.numpy(), ref_obs.astype(np.float32))
            np.testing.assert_array_equal(r.numpy(), ref_r.astype(np.float32))
            np.testing.assert_array_equal(te.numpy(), ref_te)
            np.testing.assert_array_equal(tr.numpy(), ref_tr)
            done = (te | tr).numpy()
            np.testing.assert_array_equal(info["_final_obs"].numpy(), done)
            for i in range(n):
                if done[i]:
                    finished += 1
                    np.testing.assert_array_equal(info["final_obs"][i].numpy(), ref_info["final_obs"][i].astype(np.float32))
                    assert not torch.equal(info["final_obs"][i], obs[i])  # obs is already the next episode's
                else:
                    assert torch.equal(info["final_obs"][i], obs[i])
        assert finished >= n
    finally:
        env.close()
        ref.close()


def test_pendulum_truncates_at_time_limit():
    env = GymnasiumVecEnv("Pendulum-v1", num_envs=2, seed=1)
    try:
        assert env.max_episode_steps == 200
        assert env.single_action_space.shape == (1,)
        obs, _ = env.reset()
        for t in range(1, 201):
            obs, r, te, tr, info = env.step(torch.zeros(2, 1))
            assert not te.any()
            assert bool(tr.all()) == (t == 200) and bool(tr.any()) == (t == 200)
            assert torch.equal(info["_final_obs"], tr)
        assert not torch.equal(info["final_obs"], obs)
        # the final observation is a valid Pendulum observation: (cos, sin) on the unit circle
        torch.testing.assert_close(info["final_obs"][:, 0] ** 2 + info["final_obs"][:, 1] ** 2, torch.ones(2))
    finally:
        env.close()


def test_bad_actions_raise():
    env = GymnasiumVecEnv("CartPole-v1", num_envs=2, seed=0)
    try:
        env.reset()
        with pytest.raises(ValueError, match="shape"):
            env.step(torch.zeros(3, dtype=torch.int64))
        with pytest.raises(ValueError, match="dtype"):
            env.step(torch.zeros(2))
        with pytest.raises(ValueError, match="device"):
            env.step(torch.zeros(2, dtype=torch.int64, device="meta"))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3, dtype=np.int64))  # NumPy is converted, its shape still checked
        with pytest.raises(ValueError, match="invalid discrete"):
            env.step(torch.tensor([0, 2]))
    finally:
        env.close()
    cont = GymnasiumVecEnv("Pendulum-v1", num_envs=2)
    try:
        cont.reset(seed=0)
        with pytest.raises(ValueError, match="dtype"):
            cont.step(torch.zeros(2, 1, dtype=torch.int64))
    finally:
        cont.close()


def test_seeding_and_state_dict():
    a = GymnasiumVecEnv("Pendulum-v1", num_envs=3)
    b = GymnasiumVecEnv("Pendulum-v1", num_envs=3)
    try:
        obs_a, _ = a.reset(seed=7)
        obs_b, _ = b.reset(seed=7)
        assert torch.equal(obs_a, obs_b)
        single = gym.make("Pendulum-v1")
        for i in range(3):  # sub-env i is seeded with seed + i, as gymnasium does
            np.testing.assert_array_equal(obs_a[i].numpy(), single.reset(seed=7 + i)[0].astype(np.float32))
        assert a.state_dict() == {}
        with pytest.warns(RuntimeWarning, match="cannot restore"):
            a.load_state_dict({})
    finally:
        a.close()
        b.close()


def test_make_routes_to_adapter_and_wrappers_compose():
    env = vecenvs.make("CartPole-v1", num_envs=2, seed=3, backend="gymnasium")
    assert isinstance(env, GymnasiumVecEnv)
    env = NormalizeObservation(RecordEpisodeStatistics(env))
    try:
        env.reset()
        ended = False
        for _ in range(60):
            _, _, te, tr, info = env.step(torch.zeros(2, dtype=torch.int64))  # always left: falls fast
            if info["_episode"].any():
                ended = True
                assert torch.all(info["episode"]["l"][info["_episode"]] > 0)
        assert ended
    finally:
        env.close()


def test_mujoco_smoke():
    pytest.importorskip("mujoco")
    env = GymnasiumVecEnv("HalfCheetah-v5", num_envs=2, seed=0)
    try:
        assert env.max_episode_steps == 1000
        assert env.single_observation_space.dtype == np.float32  # MuJoCo's float64 obs arrive as float32
        obs, _ = env.reset()
        assert obs.shape == (2, 17) and obs.dtype == torch.float32
        for _ in range(3):
            obs, r, te, tr, info = env.step(torch.rand(2, 6) * 2 - 1)
        assert r.dtype == torch.float32 and torch.isfinite(obs).all()
        assert info["x_position"].shape == (2,)  # gymnasium's numeric info entries become tensors
    finally:
        env.close()
