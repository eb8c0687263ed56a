"""Errors in and around the envs: non-finite actions and states (``info["sim_error"]``, the
same for every native env) and the clear errors of ``vecenvs.make`` and the constructors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.vecenvs import classic
from policyopt.vecenvs.adapter import GymnasiumVecEnv

NAN, INF = float("nan"), float("inf")


def _has_mujoco() -> bool:
    try:
        import mjbatch  # noqa: F401
        import mujoco  # noqa: F401
    except ImportError:
        return False
    return True


# --- sim_error ------------------------------------------------------------------------------
def _check_bad_row_reset(env, ref, bad_actions: torch.Tensor, good_actions: torch.Tensor, row: int) -> None:
    """``env`` steps ``bad_actions`` (non-finite in ``row``), ``ref`` the finite ones: ``row`` is
    flagged, reset and finite; the other rows are exactly ``ref``'s, now and later."""
    obs, rew, term, trunc, info = env.step(bad_actions)
    r_obs, r_rew, r_term, r_trunc, r_info = ref.step(good_actions)
    n = env.num_envs
    expect = [i == row for i in range(n)]
    assert info["sim_error"].tolist() == expect and not r_info["sim_error"].any()
    assert trunc.tolist() == expect and not term[row] and info["_final_obs"][row]
    assert rew[row] == 0 and int(env.elapsed_steps[row]) == 0
    for t in (obs, rew, info["final_obs"]):
        assert torch.isfinite(t).all()
    keep = torch.tensor([i for i in range(n) if i != row])
    for a, b in ((obs, r_obs), (rew, r_rew), (term, r_term), (trunc, r_trunc), (info["final_obs"], r_info["final_obs"])):
        assert torch.equal(a[keep], b[keep])
    for _ in range(3):  # the flagged row runs on from its fresh state; the others are untouched
        obs, rew, _, _, info = env.step(good_actions)
        r_obs, r_rew, *_ = ref.step(good_actions)
        assert not info["sim_error"].any() and torch.isfinite(obs).all()
        assert torch.equal(obs[keep], r_obs[keep]) and torch.equal(rew[keep], r_rew[keep])


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_non_finite_action_classic(env_id: str, bad: float) -> None:
    env, ref = vecenvs.make(env_id, 3, seed=0), vecenvs.make(env_id, 3, seed=0)
    env.reset(), ref.reset()
    good = torch.tensor([[0.5], [-0.3], [0.9]])
    for _ in range(2):
        env.step(good), ref.step(good)
    bad_actions = good.clone()
    bad_actions[1, 0] = bad
    _check_bad_row_reset(env, ref, bad_actions, good, row=1)


def test_sim_error_on_every_step_and_discrete() -> None:
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"):
        env = vecenvs.make(env_id, 2, seed=0)
        env.reset()
        env.action_space.seed(0)
        for _ in range(3):
            *_, info = env.step(env.action_space.sample())
            assert info["sim_error"].dtype == torch.bool and info["sim_error"].tolist() == [False, False]


def test_non_finite_state_is_caught() -> None:
    """A state that became non-finite (here: set by hand) is flagged like a bad action."""
    env = vecenvs.make("CartPole-v1", 3, seed=0, dtype=torch.float64)
    env.reset()
    env.state[2, 1] = INF
    obs, rew, term, trunc, info = env.step(torch.tensor([0, 1, 0]))
    assert info["sim_error"].tolist() == [False, False, True] and trunc[2] and not term[2]
    assert torch.isfinite(env.state).all() and torch.isfinite(info["final_obs"]).all() and rew[2] == 0


def test_non_finite_action_compiled() -> None:
    # compile=True fuses the checks into the step kernel: same results as eager
    eager = vecenvs.make("Pendulum-v1", 3, seed=0)
    compiled = vecenvs.make("Pendulum-v1", 3, seed=0, compile=True)
    eager.reset(), compiled.reset()
    acts = torch.tensor([[0.5], [NAN], [INF]])
    for _ in range(2):
        out_e, out_c = eager.step(acts), compiled.step(acts)
        for a, b in zip(out_e[:4], out_c[:4]):
            torch.testing.assert_close(a, b)
        assert out_c[4]["sim_error"].tolist() == [False, True, True]
        assert torch.isfinite(out_c[4]["final_obs"]).all()


@pytest.mark.skipif(not _has_mujoco(), reason="needs mujoco and mjbatch")
def test_absurd_finite_action_mujoco() -> None:
    """1e30 is finite, but its control cost is -inf as a float32 reward: a sim_error too."""
    env, ref = vecenvs.make("Hopper-v5", 3, seed=0), vecenvs.make("Hopper-v5", 3, seed=0)
    env.reset(), ref.reset()
    good = torch.full((3, 3), 0.1)
    bad = good.clone()
    bad[0, 1] = 1e30
    _check_bad_row_reset(env, ref, bad, good, row=0)
    env, ref = vecenvs.make("Hopper-v5", 3, seed=0), vecenvs.make("Hopper-v5", 3, seed=0)
    env.reset(), ref.reset()
    bad = good.clone()
    bad[2, 0] = NAN
    _check_bad_row_reset(env, ref, bad, good, row=2)


# --- make() and constructor errors ------------------------------------------------------------
def test_unknown_id_examples_and_suggestions() -> None:
    with pytest.raises(ValueError) as e:
        vecenvs.make("CartPol-v1")
    msg = str(e.value)
    assert "Did you mean 'CartPole-v1'" in msg
    examples = msg.split("(e.g. ")[1].split(")")[0]
    for ex in (s.strip(" '") for s in examples.split(",")):
        assert ex in gym.registry and ex not in vecenvs.registered_ids()  # adapter examples really are adapter ids
    with pytest.raises(ValueError, match="Did you mean 'LunarLander-v3'"):
        vecenvs.make("lunarlander")
    with pytest.raises(ValueError) as e:
        vecenvs.make("NoSuchEnv-v0")
    assert "Did you mean" not in str(e.value)


@pytest.mark.parametrize("num_envs", [0, -2, 1.5, True, "4"])
def test_bad_num_envs(num_envs) -> None:
    match = r"num_envs must be a positive int \(1, 2, \.\.\.\)"
    makers = [
        lambda: vecenvs.make("Pendulum-v1", num_envs),
        lambda: vecenvs.make("Pendulum-v1", num_envs, backend="gymnasium"),
        lambda: vecenvs.make("Acrobot-v1", num_envs=num_envs, backend="gymnasium"),
        lambda: classic.Pendulum(num_envs),
        lambda: GymnasiumVecEnv("CartPole-v1", num_envs),
    ]
    if _has_mujoco():
        import policyopt.vecenvs.mujoco as vm

        makers += [lambda: vecenvs.make("Hopper-v5", num_envs), lambda: vm.make_mujoco("Hopper-v5", num_envs)]
    for make in makers:
        with pytest.raises(ValueError, match=match):
            make()
    assert vecenvs.make("Pendulum-v1", np.int64(2)).num_envs == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    makers = [
        lambda: vecenvs.make("CartPole-v1", 2, device="cuda"),
        lambda: vecenvs.make("Pendulum-v1", 2, device="cuda", backend="gymnasium"),
        lambda: classic.CartPole(2, device="cuda"),
        lambda: GymnasiumVecEnv("CartPole-v1", 2, device="cuda:1"),
    ]
    if _has_mujoco():
        import policyopt.vecenvs.mujoco as vm

        makers += [lambda: vecenvs.make("Hopper-v5", 2, device="cuda"), lambda: vm.make_mujoco("Hopper-v5", 2, device="cuda")]
    for make in makers:
        with pytest.raises(ValueError, match=r"device 'cuda(:1)?' was asked for, but CUDA is not available"):
            make()
    with pytest.raises(ValueError, match="invalid device 'gpu'"):
        vecenvs.make("CartPole-v1", 2, device="gpu")
