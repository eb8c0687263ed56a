"""NumPy in and out: NumPy/Python actions, ``vecenvs.NumpyVecEnv`` under gymnasium's own
vector wrappers, and ``vecenvs.SB3VecEnv`` under Stable-Baselines3."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as gv

from policyopt import vecenvs
from policyopt.vecenvs.adapter import GymnasiumVecEnv


def _has(*modules: str) -> bool:
    try:
        for m in modules:
            __import__(m)
    except ImportError:
        return False
    return True


# --- NumPy / Python actions ---------------------------------------------------------------
SAMPLE_IDS = ["CartPole-v1", "Pendulum-v1"] + (["HalfCheetah-v5"] if _has("mujoco", "mjbatch") else [])


@pytest.mark.parametrize("env_id", SAMPLE_IDS)
def test_step_accepts_action_space_sample(env_id: str) -> None:
    a = vecenvs.make(env_id, 3, seed=0)
    b = vecenvs.make(env_id, 3, seed=0)
    a.reset(), b.reset()
    a.action_space.seed(0)
    for _ in range(3):
        sample = a.action_space.sample()  # NumPy: int64 [3] (MultiDiscrete) or float32 [3, d]
        assert isinstance(sample, np.ndarray)
        out_a = a.step(sample)
        dtype = torch.int64 if isinstance(a.single_action_space, gym.spaces.Discrete) else torch.float32
        out_b = b.step(torch.as_tensor(sample, dtype=dtype))
        for x, y in zip(out_a[:4], out_b[:4]):
            assert torch.equal(x, y)
    with pytest.raises(ValueError, match="shape"):
        a.step(np.zeros((4, *a.single_action_space.shape)))  # one env too many


def test_python_and_numpy_integer_actions_for_discrete() -> None:
    env = vecenvs.make("CartPole-v1", 3, seed=0)
    env.reset()
    env.step([0, 1, 1])
    env.step(np.array([1, 0, 1], dtype=np.int32))
    env.step(np.array([1, 0, 1], dtype=np.uint8))
    one = vecenvs.make("CartPole-v1", 1, seed=0)
    one.reset()
    one.step(1)  # a bare int for a single env
    one.step(np.int64(0))
    for bad in ([0, 1], np.array([0.0, 1.0, 1.0]), [0, 1, 2], [[0], [1], [1]], "01"):
        with pytest.raises(ValueError):
            env.step(bad)
    with pytest.raises(ValueError, match="shape"):
        env.step(1)  # a bare int is only unambiguous for one env


def test_float64_and_list_actions_for_box() -> None:
    a = vecenvs.make("Pendulum-v1", 2, seed=0, dtype=torch.float64)
    b = vecenvs.make("Pendulum-v1", 2, seed=0, dtype=torch.float64)
    a.reset(), b.reset()
    acts = np.array([[0.3], [-1.7]], dtype=np.float64)
    out_a = a.step(acts.tolist())
    out_b = b.step(torch.tensor(acts, dtype=torch.float32))  # converted to float32, like a Box sample
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])


def test_adapter_accepts_numpy_actions() -> None:
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        env = GymnasiumVecEnv(env_id, num_envs=2, seed=0)
        try:
            env.reset()
            env.action_space.seed(0)
            for _ in range(3):
                obs, *_ = env.step(env.action_space.sample())
                assert isinstance(obs, torch.Tensor)
            with pytest.raises(ValueError, match="shape"):
                env.step(np.zeros((3, *env.single_action_space.shape), dtype=env.single_action_space.dtype))
        finally:
            env.close()


def test_wrappers_accept_numpy_actions() -> None:
    env = vecenvs.NormalizeObservation(vecenvs.ClipAction(vecenvs.make("Pendulum-v1", 4, seed=0)))
    env.reset()
    env.action_space.seed(0)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())  # ClipAction's unbounded Box samples
        assert torch.isfinite(obs).all()
    resc = vecenvs.RescaleAction(vecenvs.make("Pendulum-v1", 4, seed=0))
    resc.reset()
    resc.step(resc.action_space.sample())
    for wrapped in (env, resc):
        with pytest.raises(ValueError, match=r"shape \(4, 1\)"):
            wrapped.step(np.zeros((4, 2), dtype=np.float32))


# --- NumpyVecEnv under gymnasium's wrappers -------------------------------------------------
def test_numpy_vec_env_matches_tensor_env() -> None:
    ref = vecenvs.make("Pendulum-v1", 4, seed=0, max_episode_steps=5)
    env = vecenvs.NumpyVecEnv(vecenvs.make("Pendulum-v1", 4, seed=0, max_episode_steps=5))
    assert isinstance(env, gym.vector.VectorEnv) and env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_action_space == ref.single_action_space and env.max_episode_steps == 5
    obs, info = env.reset()
    assert isinstance(obs, np.ndarray) and np.array_equal(obs, ref.reset()[0].numpy())
    acts = np.linspace(-2, 2, 4 * 5, dtype=np.float32).reshape(5, 4, 1)
    for a in acts:
        out, expect = env.step(a), ref.step(torch.from_numpy(a))
        for x, y in zip(out[:4], expect[:4]):
            assert isinstance(x, np.ndarray) and np.array_equal(x, y.numpy())
        assert set(out[4]) == {"final_obs", "_final_obs", "sim_error"}
        assert all(isinstance(v, np.ndarray) for v in out[4].values())
        assert np.array_equal(out[4]["final_obs"], expect[4]["final_obs"].numpy())
    assert out[3].all() and out[4]["_final_obs"].all()  # truncated at step 5 ...
    assert not np.array_equal(out[0], out[4]["final_obs"])  # ... and already reset in the same step
    env.reset(options={"reset_mask": np.array([True, False, False, False])})


def test_gymnasium_wrappers_on_numpy_vec_env() -> None:
    env = vecenvs.NumpyVecEnv(vecenvs.make("Pendulum-v1", num_envs=4, seed=0))
    stats = env = gv.RecordEpisodeStatistics(env)
    env = gv.ClipAction(env)
    env = gv.DictInfoToList(env)
    env.reset(seed=0)
    env.action_space.seed(0)
    for t in range(200):
        obs, reward, terminated, truncated, infos = env.step(env.action_space.sample())
    assert isinstance(obs, np.ndarray) and truncated.all() and not terminated.any()
    assert [info["episode"]["l"] for info in infos] == [200] * 4
    assert all(info["final_obs"].shape == (3,) for info in infos)
    assert list(stats.length_queue) == [200] * 4 and stats.episode_count == 4
    # gymnasium's observation wrappers accept only next-step autoreset (they cannot transform
    # info["final_obs"]): the NEXT_STEP view serves them, with the same episodes
    with pytest.raises(ValueError, match="NEXT_STEP"):
        gv.NormalizeObservation(vecenvs.NumpyVecEnv(vecenvs.make("Pendulum-v1", num_envs=4, seed=0)))
    env = vecenvs.NumpyVecEnv(vecenvs.make("Pendulum-v1", num_envs=4, seed=0), autoreset_mode=AutoresetMode.NEXT_STEP)
    stats = env = gv.RecordEpisodeStatistics(env)
    norm = env = gv.NormalizeObservation(env)
    env = gv.ClipAction(env)
    env = gv.DictInfoToList(env)
    env.reset(seed=0)
    for t in range(201):
        obs, reward, terminated, truncated, infos = env.step(env.action_space.sample())
        assert np.isfinite(obs).all()
    assert list(stats.length_queue) == [200] * 4 and not truncated.any() and (reward == 0).all()  # the reset step
    assert norm.obs_rms.count > 200 * 4


def test_numpy_vec_env_next_step_semantics() -> None:
    env = vecenvs.NumpyVecEnv(vecenvs.make("MountainCarContinuous-v0", 2, seed=0, max_episode_steps=3), autoreset_mode="NextStep")
    env.reset()
    a = np.zeros((2, 1), dtype=np.float32)
    for _ in range(2):
        obs, r, term, trunc, info = env.step(a)
    last = obs
    obs, r, term, trunc, info = env.step(a)
    assert trunc.all() and "final_obs" not in info
    assert np.all(np.abs(obs[:, 0] - last[:, 0]) < 0.01)  # the last observation, not a reset one
    obs, r, term, trunc, info = env.step(np.full((2, 1), np.nan, dtype=np.float32))  # ignored: the reset step
    assert (r == 0).all() and not (term | trunc).any() and not info["sim_error"].any()
    assert np.all((obs[:, 0] >= -0.6) & (obs[:, 0] <= -0.4) & (obs[:, 1] == 0))  # a fresh initial state
    obs2, r, *_ = env.step(np.full((2, 1), 0.5, dtype=np.float32))
    assert (r != 0).all() and not np.array_equal(obs2, obs)  # the new episode runs


# --- Stable-Baselines3 -----------------------------------------------------------------------
def test_import_vecenvs_does_not_import_sb3() -> None:
    code = "import sys; from policyopt import vecenvs; assert 'stable_baselines3' not in sys.modules; assert 'SB3VecEnv' in dir(vecenvs)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_sb3_vec_env_equals_dummy_vec_env(env_id: str) -> None:
    """Through the adapter (gymnasium's envs, seeded s + i as SB3 does), SB3VecEnv's outputs
    are DummyVecEnv's bit for bit: obs, rewards, dones, infos with terminal_observation and
    TimeLimit.truncated (CartPole covers termination, Pendulum truncation)."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import DummyVecEnv

    ours = vecenvs.SB3VecEnv(vecenvs.make(env_id, 4, backend="gymnasium"))
    ref = DummyVecEnv([lambda: gym.make(env_id) for _ in range(4)])
    assert ours.observation_space == ref.observation_space and ours.action_space == ref.action_space
    ours.seed(7), ref.seed(7)
    o1, o2 = ours.reset(), ref.reset()
    assert np.array_equal(o1, o2) and o1.dtype == o2.dtype
    space = ref.action_space
    space.seed(0)
    finished = truncated = 0
    for _ in range(210):
        actions = np.stack([space.sample() for _ in range(4)])
        s1, s2 = ours.step(actions), ref.step(actions)
        for x, y in zip(s1[:3], s2[:3]):
            assert np.array_equal(x, y) and x.dtype == y.dtype
        for i1, i2 in zip(s1[3], s2[3]):
            assert i1.keys() == i2.keys()
            assert all(np.array_equal(i1[k], i2[k]) for k in i1)
        finished += int(s1[2].sum())
        truncated += sum(i["TimeLimit.truncated"] for i in s1[3])
    assert finished >= 4 and (truncated == 4) == (env_id == "Pendulum-v1")
    ours.close(), ref.close()


def test_sb3_vec_env_api_on_native_env() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import VecCheckNan, VecEnv

    plain = vecenvs.SB3VecEnv(vecenvs.make("Pendulum-v1", 4))
    assert plain.seed(3) == [3, 4, 5, 6]
    obs = plain.reset()
    assert obs.shape == (4, 3) and obs.dtype == np.float32
    plain.seed(3)
    assert np.array_equal(plain.reset(), obs)  # the seed applies to the next reset
    assert not np.array_equal(plain.reset(), obs)  # ... and only to that one
    inner = vecenvs.make("Pendulum-v1", 4, seed=0, max_episode_steps=5)
    env = vecenvs.SB3VecEnv(vecenvs.NormalizeObservation(inner))
    assert isinstance(env, VecEnv) and env.num_envs == 4
    assert env.observation_space.shape == (3,) and env.action_space == inner.single_action_space
    env.reset()
    env = VecCheckNan(env, raise_exception=True)
    for t in range(5):
        obs, rewards, dones, infos = env.step(np.zeros((4, 1), dtype=np.float32))
    assert rewards.dtype == np.float32 and dones.dtype == bool and dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True and info["terminal_observation"].shape == (3,)
        assert not np.array_equal(info["terminal_observation"], obs[0]) and info["sim_error"] == False  # noqa: E712
    env = env.venv
    assert env.get_attr("max_episode_steps") == [5] * 4 and env.get_attr("num_envs", [1, 2]) == [4, 4]
    assert env.has_attr("state_dict") and not env.has_attr("no_such_attr")
    env.set_attr("max_episode_steps", 7)
    assert inner.max_episode_steps == 7  # set where it lives, under the wrapper
    assert len(env.env_method("state_dict")) == 4
    with pytest.raises(ValueError, match="whole batch"):
        env.env_method("state_dict", indices=[0])
    with pytest.raises(ValueError, match="whole batch"):
        env.set_attr("max_episode_steps", 3, indices=[1])
    assert env.env_is_wrapped(vecenvs.NormalizeObservation) == [True] * 4
    assert env.env_is_wrapped(vecenvs.ClipAction) == [False] * 4
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert env.render() is None  # no render_mode: SB3 warns and returns None
    env.close()


def test_sb3_ppo_trains_on_native_envs() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    env = VecMonitor(vecenvs.SB3VecEnv(vecenvs.make("Pendulum-v1", num_envs=4, seed=0, max_episode_steps=50)))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0).learn(512)
    assert [ep["l"] for ep in model.ep_info_buffer] == [50] * 8  # episodes seen through VecMonitor
    env = VecNormalize(vecenvs.SB3VecEnv(vecenvs.RecordEpisodeStatistics(vecenvs.make("CartPole-v1", num_envs=4, seed=0))))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0).learn(512)
    assert len(model.ep_info_buffer) > 0  # our RecordEpisodeStatistics feeds SB3's episode log
    assert all(ep["l"] >= 8 for ep in model.ep_info_buffer)
