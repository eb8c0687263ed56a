"""MuJoCo locomotion tensor envs: exact parity with Gymnasium v5/v4 on the cpu backend,
reset statistics, bad input, checkpointing, and (slow, opt-in) Warp-on-CPU parity."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("mjbatch")
pytest.importorskip("imageio")  # gymnasium's MuJoCo envs (the reference) import it
gym = pytest.importorskip("gymnasium")

from policyopt import vecenvs  # noqa: E402
import policyopt.vecenvs.mujoco as vm  # noqa: E402
from policyopt.vecenvs.mujoco.base import MujocoVecEnv  # noqa: E402

TASKS = ["Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid"]


def _run_parity(
    env_id: str, steps: int, dtype: torch.dtype = torch.float64, backend: str = "cpu", seed: int = 0, compile: bool = False
):
    """Step our env and Gymnasium (with its TimeLimit) on the same actions from the same
    state; after every episode end re-inject Gymnasium's reset state. Returns max diffs."""
    ref = gym.make(env_id)
    env = vm.make_mujoco(env_id, 2, seed=seed, dtype=dtype, backend=backend, compile=compile)
    env.reset()
    o_ref, _ = ref.reset(seed=seed)
    data = ref.unwrapped.data
    obs = env.set_qpos_qvel(torch.as_tensor(data.qpos), torch.as_tensor(data.qvel))
    rng = np.random.default_rng(seed)
    low, high = ref.action_space.low, ref.action_space.high
    d_obs = d_rew = 0.0
    ends = truncs = 0
    assert np.abs(obs[0].double().numpy() - o_ref).max() < 1e-6
    for t in range(steps):
        a = rng.uniform(low, high).astype(np.float32)
        o_ref, r_ref, term_ref, trunc_ref, _ = ref.step(a)
        # env 1 gets other actions: the batch must not leak between envs
        acts = torch.from_numpy(np.stack([a, rng.uniform(low, high).astype(np.float32)]))
        obs, rew, term, trunc, info = env.step(acts)
        final = info["final_obs"][0] if bool(info["_final_obs"][0]) else obs[0]
        d_obs = max(d_obs, float(np.abs(final.double().numpy() - o_ref).max()))
        d_rew = max(d_rew, abs(float(rew[0]) - float(r_ref)))
        assert bool(term[0]) == bool(term_ref), f"terminated differs at step {t}"
        assert bool(trunc[0]) == bool(trunc_ref), f"truncated differs at step {t}"
        assert not bool(info["sim_error"].any())
        if term_ref or trunc_ref:
            ends += 1
            truncs += bool(trunc_ref)
            o_ref, _ = ref.reset()
            obs0 = env.set_qpos_qvel(torch.as_tensor(data.qpos), torch.as_tensor(data.qvel), torch.tensor([True, False]))
            d_obs = max(d_obs, float(np.abs(obs0[0].double().numpy() - o_ref).max()))
    ref.close()
    return d_obs, d_rew, ends, truncs


# Humanoid is 1000 steps too (about 3 s here); v4 variants get 300 steps to keep the file short.
@pytest.mark.parametrize("task", TASKS)
def test_cpu_parity_v5(task):
    d_obs, d_rew, ends, truncs = _run_parity(f"{task}-v5", 1000 + 10)
    assert d_obs <= 1e-6, d_obs
    assert d_rew <= 1e-6, d_rew  # reward is float32: ~1e-7 rounding
    if task == "HalfCheetah":
        assert truncs == 1  # the time limit ended its only episode at step 1000
    elif task != "Ant":
        assert ends >= 1  # the healthy checks ended episodes under random actions


@pytest.mark.parametrize("task", TASKS)
def test_cpu_parity_v4(task):
    d_obs, d_rew, _, _ = _run_parity(f"{task}-v4", 300)
    assert d_obs <= 1e-6 and d_rew <= 1e-6, (d_obs, d_rew)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Ant-v5"])  # terminations; contact forces
def test_compiled_task_logic_parity(env_id):
    d_obs, d_rew, ends, _ = _run_parity(env_id, 300, compile=True)
    assert d_obs <= 1e-6 and d_rew <= 1e-6, (d_obs, d_rew)
    assert ends >= 1 or env_id == "Ant-v5"


def test_float32_obs_parity():
    d_obs, d_rew, _, _ = _run_parity("Hopper-v5", 200, dtype=torch.float32)
    assert d_obs <= 1e-5 and d_rew <= 1e-6  # float32 rounding of |obs| <= 10


def test_spaces_match_gymnasium():
    for task in TASKS:
        for v in ("v5", "v4"):
            ref = gym.make(f"{task}-{v}")
            env = vm.make_mujoco(f"{task}-{v}", 3)
            assert env.single_observation_space.shape == ref.observation_space.shape
            assert env.single_action_space == ref.action_space
            assert env.observation_space.shape == (3, *ref.observation_space.shape)
            ref.close()


@pytest.mark.parametrize("task", ["Hopper", "HalfCheetah"])  # uniform / Gaussian qvel noise
def test_reset_distribution(task):
    n = 2000
    env = vm.make_mujoco(f"{task}-v5", n, seed=3, dtype=torch.float64)
    ours = env.reset()[0].numpy()
    ref = gym.make(f"{task}-v5")
    theirs = np.stack([ref.reset(seed=i)[0] for i in range(n)])
    se = np.sqrt(ours.var(0) / n + theirs.var(0) / n) + 1e-12
    assert (np.abs(ours.mean(0) - theirs.mean(0)) < 5 * se).all()
    ratio = ours.std(0) / theirs.std(0)
    assert ((ratio > 0.9) & (ratio < 1.1)).all(), ratio
    # different seeds draw different states, the same seed the same ones
    again = vm.make_mujoco(f"{task}-v5", n, seed=3, dtype=torch.float64).reset()[0].numpy()
    assert np.array_equal(ours, again) and not np.array_equal(ours[0], ours[1])


def test_registry_and_default_backend():
    env = vecenvs.make("HalfCheetah-v5", num_envs=4, seed=0)
    assert isinstance(env, MujocoVecEnv) and env.backend == "cpu"
    obs, _ = env.reset()
    assert obs.shape == (4, 17) and obs.dtype == torch.float32
    obs, rew, term, trunc, info = env.step(torch.zeros(4, 6))
    assert rew.dtype == torch.float32 and term.dtype == torch.bool and info["_final_obs"].dtype == torch.bool


def test_unknown_task_lists_tasks():
    with pytest.raises(ValueError, match="Hopper-v5.*Humanoid-v4"):
        vm.make_mujoco("Hoppr-v5")
    with pytest.raises(ValueError, match="available tasks: Hopper, HalfCheetah"):
        vm.make_task("Swimmer")
    with pytest.raises(TypeError, match="unknown arguments"):
        vm.make_mujoco("Hopper-v5", ctrl_cost=1.0)


def test_missing_backend_names_extra(monkeypatch):
    import importlib

    import policyopt.vecenvs.mujoco.base as base

    real = importlib.import_module

    def fake(name, *a, **k):
        if name in ("mjbatch", "mujoco_warp"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(base.importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"pip install 'policyopt\[mujoco\]'"):
        vm.make_mujoco("Hopper-v5", backend="cpu")
    with pytest.raises(ImportError, match=r"pip install 'policyopt\[warp\]'"):
        vm.make_mujoco("Hopper-v5", backend="warp")


def test_bad_actions_raise():
    env = vm.make_mujoco("Hopper-v5", 4)
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        env.step(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="floating"):
        env.step(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        env.step(np.zeros((4, 2), dtype=np.float32))  # NumPy is converted, its shape still checked
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            env.step(torch.zeros(4, 3, device="cuda"))


@pytest.mark.parametrize("compile", [False, True])
def test_nan_action_and_unstable_sim_reset_only_that_env(tmp_path, monkeypatch, compile):
    monkeypatch.chdir(tmp_path)  # MuJoCo's warning handler writes MUJOCO_LOG.TXT into the cwd
    a = vm.make_mujoco("Ant-v5", 3, seed=1, dtype=torch.float64, compile=compile)
    b = vm.make_mujoco("Ant-v5", 3, seed=1, dtype=torch.float64, compile=compile)
    a.reset(), b.reset()
    acts = torch.rand(10, 3, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for t in range(5):
        a.step(acts[t]), b.step(acts[t])
    bad = acts[5].clone()
    bad[1, 2] = float("nan")
    oa, ra, ta, tra, ia = a.step(bad)
    ob, rb, tb, trb, ib = b.step(acts[5])
    assert ia["sim_error"].tolist() == [False, True, False]
    assert bool(tra[1]) and bool(ia["_final_obs"][1]) and int(a.elapsed_steps[1]) == 0
    assert torch.isfinite(oa).all() and torch.isfinite(ra).all() and torch.isfinite(ia["final_obs"]).all()
    keep = torch.tensor([0, 2])
    assert torch.equal(oa[keep], ob[keep]) and torch.equal(ra[keep], rb[keep])
    # a diverging simulation (huge velocity) is caught the same way
    st = a.physics.get_state()
    q = a.model.nq + 1  # state row: time, qpos, qvel, ...
    st["state"][2, q : q + a.model.nv] = 1e30
    a.physics.set_state(st)
    _, r, _, tr, info = a.step(acts[6])
    assert info["sim_error"].tolist() == [False, False, True] and bool(tr[2]) and torch.isfinite(r).all()
    obs, *_ = a.step(acts[7])
    assert torch.isfinite(obs).all()


def test_state_dict_resumes_exactly():
    env = vm.make_mujoco("Walker2d-v5", 4, seed=5)
    env.reset()
    acts = torch.rand(60, 4, 6, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for t in range(20):
        env.step(acts[t])
    sd = env.state_dict()
    first = [env.step(acts[t]) for t in range(20, 60)]
    env.load_state_dict(sd)
    second = [env.step(acts[t]) for t in range(20, 60)]
    for x, y in zip(first, second):
        for u, v in zip(x[:4], y[:4]):
            assert torch.equal(u, v)
    assert any(bool((x[2] | x[3]).any()) for x in first)  # resets happened inside the window


def test_partial_reset_mask():
    env = vm.make_mujoco("HalfCheetah-v5", 3, seed=0)
    obs0, _ = env.reset()
    for _ in range(3):
        obs, *_ = env.step(torch.ones(3, 6))
    obs1, _ = env.reset(options={"reset_mask": torch.tensor([False, True, False])})
    assert env.elapsed_steps.tolist() == [3, 0, 3]
    assert torch.equal(obs1[0], obs[0]) and not torch.equal(obs1[1], obs[1])


_warp_cpu = pytest.mark.skipif(
    os.environ.get("POLICYOPT_SLOW") != "1", reason="Warp CPU kernels compile for ~30-60 s; set POLICYOPT_SLOW=1"
)


@pytest.mark.warp_cpu
@_warp_cpu
@pytest.mark.parametrize("task", ["Hopper", "HalfCheetah", "Walker2d"])
def test_warp_cpu_parity_short_horizon(task):
    pytest.importorskip("mujoco_warp")
    # Warp is float32 with its own contact/solver code: 8 steps agree to ~1e-3 (HalfCheetah,
    # the most contact-sensitive) and ~1e-5 (Hopper, Walker2d); they diverge afterwards.
    ref = gym.make(f"{task}-v5")
    env = vm.make_mujoco(f"{task}-v5", 2, seed=0, dtype=torch.float64, backend="warp")
    env.reset()
    o_ref, _ = ref.reset(seed=0)
    data = ref.unwrapped.data
    obs = env.set_qpos_qvel(torch.as_tensor(data.qpos), torch.as_tensor(data.qvel))
    assert np.abs(obs[0].numpy() - o_ref).max() < 1e-5
    rng = np.random.default_rng(0)
    for _ in range(8):
        a = rng.uniform(-1, 1, ref.action_space.shape).astype(np.float32)
        o_ref, r_ref, *_ = ref.step(a)
        obs, rew, _, _, info = env.step(torch.from_numpy(a).expand(2, -1).contiguous())
        np.testing.assert_allclose(
            info["final_obs"][0].numpy() if info["_final_obs"][0] else obs[0].numpy(), o_ref, atol=1e-2, rtol=1e-3
        )
        assert abs(float(rew[0]) - r_ref) < 1e-2
        assert torch.equal(obs[0], obs[1])  # identical worlds stay identical on CPU
