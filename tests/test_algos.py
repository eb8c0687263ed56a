"""PPO, TRPO and SPO: learning, the losses' defining properties, checkpoints, bad input."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, SPO, TRPO, PPOConfig, TRPOConfig, TrainingDivergedError
from policyopt.algos.onpolicy.spo import spo_loss
from policyopt.algos.onpolicy.ppo import clipped_surrogate_loss
from policyopt.algos.onpolicy.trpo import conjugate_gradient
from policyopt.algos.core.checkpoint import atomic_save
from policyopt.algos.core.presets import RECOMMENDED_NUM_ENVS
from torch.distributions import kl_divergence

ALGOS = {"ppo": PPO, "spo": SPO, "trpo": TRPO}


def learn_until(agent, eval_env, threshold: float, budget: int, eval_every: int) -> float:
    """One learn() call with a generous budget that stops once the deterministic eval return
    reaches ``threshold`` (no time limit); returns the best evaluation seen."""
    best = -math.inf

    def stop_when_reached(_agent, record):
        nonlocal best
        if "eval/return" in record:
            best = max(best, record["eval/return"])
            return best < threshold

    agent.learn(budget, eval_env=eval_env, eval_every=eval_every, callback=stop_when_reached, progress=False)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "spo", "trpo"])
def test_learns_cartpole(name):
    cls = ALGOS[name]
    env = vecenvs.make("CartPole-v1", num_envs=RECOMMENDED_NUM_ENVS[(cls.__name__, "CartPole-v1")], seed=0)
    agent = cls(env, cls.config_class.preset("cartpole"))
    ret = learn_until(agent, vecenvs.make("CartPole-v1", num_envs=10, seed=123), 475, budget=300_000, eval_every=8192)
    assert ret >= 475, f"{name} reached only {ret} on CartPole-v1"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "spo", "trpo"])
def test_learns_pendulum(name):
    cls = ALGOS[name]
    env = vecenvs.make("Pendulum-v1", num_envs=RECOMMENDED_NUM_ENVS[(cls.__name__, "Pendulum-v1")], seed=0)
    agent = cls(env, cls.config_class.preset("pendulum"))
    ret = learn_until(agent, vecenvs.make("Pendulum-v1", num_envs=10, seed=123), -250, budget=500_000, eval_every=16384)
    assert ret >= -250, f"{name} reached only {ret} on Pendulum-v1"


# --- the losses -------------------------------------------------------------------------


def _grad_wrt_ratio(loss_fn, r: float, a: float, eps: float = 0.2) -> float:
    log_ratio = torch.tensor([math.log(r)], dtype=torch.float64, requires_grad=True)
    loss = loss_fn(log_ratio, torch.tensor([a], dtype=torch.float64), eps)
    (g,) = torch.autograd.grad(loss, log_ratio)
    return -g.item() / r  # d(-loss)/dr = d(-loss)/dlog r / r


@pytest.mark.parametrize("a", [1.7, -0.6])
def test_spo_gradient_equals_advantage_at_ratio_one(a):
    assert _grad_wrt_ratio(spo_loss, 1.0, a) == pytest.approx(a, rel=1e-9)
    assert _grad_wrt_ratio(clipped_surrogate_loss, 1.0, a) == pytest.approx(a, rel=1e-9)


def test_spo_gradient_points_back_beyond_the_trust_region():
    eps = 0.2
    # A > 0: the objective's maximum is at r = 1 + eps; beyond it the ascent direction lowers r.
    assert _grad_wrt_ratio(spo_loss, 1 + eps + 0.1, 1.0, eps) < 0
    assert _grad_wrt_ratio(spo_loss, 1 + eps, 1.0, eps) == pytest.approx(0.0, abs=1e-9)
    assert _grad_wrt_ratio(spo_loss, 1 + eps - 0.1, 1.0, eps) > 0
    # A < 0: the maximum is at r = 1 - eps; below it the ascent direction raises r.
    assert _grad_wrt_ratio(spo_loss, 1 - eps - 0.1, -1.0, eps) > 0
    assert _grad_wrt_ratio(spo_loss, 1 - eps + 0.1, -1.0, eps) < 0
    # PPO's clip gives no gradient there at all: the contrast SPO is built on.
    assert _grad_wrt_ratio(clipped_surrogate_loss, 1 + eps + 0.1, 1.0, eps) == 0.0


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    F = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: F @ v, b, iters=20)
    torch.testing.assert_close(F @ x, b, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_trpo_update_respects_trust_region_and_improves_surrogate(env_id):
    env = vecenvs.make(env_id, num_envs=8, seed=1)
    cfg = TRPOConfig(num_steps=128, max_kl=0.01)
    agent = TRPO(env, cfg)
    for _ in range(3):
        agent.collect()
        data = agent.buffer.flat()
        obs, actions, stored = data["obs"], data["actions"], agent.buffer.stored_of(data)
        adv = data["advantages"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        with torch.no_grad():
            surr_before = (agent.policy.log_ratio(obs, actions, stored).exp() * adv).mean()
            old_params = [p.clone() for p in agent.policy.parameters()]
        metrics = agent.update(agent.buffer, progress=0.0)
        with torch.no_grad():
            new_dist = agent.policy.distribution(obs)
            # rebuild the old distribution from the saved parameters
            new_params = [p.clone() for p in agent.policy.parameters()]
            for p, q in zip(agent.policy.parameters(), old_params):
                p.copy_(q)
            old_dist = agent.policy.distribution(obs)
            for p, q in zip(agent.policy.parameters(), new_params):
                p.copy_(q)
            kl = kl_divergence(old_dist, new_dist).mean().item()
            surr_after = (agent.policy.log_ratio(obs, actions, stored).exp() * adv).mean()
        assert kl <= 1.5 * cfg.max_kl
        assert surr_after >= surr_before - 1e-7
        assert metrics["kl"].item() == pytest.approx(kl, rel=1e-4, abs=1e-8)


# --- checkpoints ------------------------------------------------------------------------


def _small(cls):
    cfg = cls.config_class(
        num_steps=32, seed=3, **({"num_minibatches": 4, "update_epochs": 2} if cls is not TRPO else {"critic_epochs": 2})
    )
    return cfg


class _CrashAt:
    """A logger that kills the run when it reaches ``step`` (after the earlier checkpoints)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def log(self, step: int, metrics: dict) -> None:
        if step >= self.step:
            raise KeyboardInterrupt("simulated crash")


@pytest.mark.parametrize("name", ["ppo", "spo", "trpo"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_exact_resume(name, env_id, tmp_path):
    """2 updates, save, load, 2 more == 4 straight updates (same total, so the same lr schedule)."""
    _check_exact_resume(ALGOS[name], env_id, _small(ALGOS[name]), tmp_path)


@pytest.mark.parametrize("name", ["ppo", "trpo"])
def test_exact_resume_with_gsde(name, tmp_path):
    cfg = dataclasses.replace(_small(ALGOS[name]), use_sde=True, sde_sample_freq=3)
    _check_exact_resume(ALGOS[name], "Pendulum-v1", cfg, tmp_path)


def _check_exact_resume(cls, env_id, cfg, tmp_path):
    per_update = 32 * 4
    total = 4 * per_update
    straight = cls(vecenvs.make(env_id, num_envs=4, seed=5), cfg)
    straight.learn(total, progress=False)

    crashed = cls(vecenvs.make(env_id, num_envs=4, seed=5), cfg)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        crashed.learn(
            total, logger=_CrashAt(3 * per_update), checkpoint_path=ckpt, checkpoint_every=2 * per_update, progress=False
        )
    torch.manual_seed(999)  # disturb the global RNG: load must restore it
    resumed = cls.load(ckpt, env=vecenvs.make(env_id, num_envs=4, seed=77))
    assert resumed.global_step == 2 * per_update
    resumed.learn(total, progress=False)

    assert resumed.global_step == straight.global_step
    for m in ("policy", "critic"):
        for (k, a), b in zip(straight.modules()[m].state_dict().items(), resumed.modules()[m].state_dict().values()):
            assert torch.equal(a, b), f"{m}.{k} differs after resume"
    torch.testing.assert_close(straight.obs_rms.mean, resumed.obs_rms.mean, rtol=0, atol=0)


def test_checkpoint_reloads_for_evaluation_with_same_return(tmp_path):
    env = vecenvs.make("Pendulum-v1", num_envs=8, seed=0)
    agent = PPO(env, PPOConfig(num_steps=64, num_minibatches=4, update_epochs=2))
    agent.learn(3 * 64 * 8, progress=False)
    path = agent.save(tmp_path / "agent.pt")
    loaded = PPO.load(path)  # no env: ready to act
    eval_env = vecenvs.make("Pendulum-v1", num_envs=5, seed=42)
    a = agent.evaluate(eval_env, seed=7)["return_mean"]
    b = loaded.evaluate(eval_env, seed=7)["return_mean"]
    assert a == b
    obs = torch.randn(6, 3)
    torch.testing.assert_close(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))
    # the normaliser is part of the checkpoint: without it the actions would differ
    assert not torch.equal(loaded.obs_rms.mean, torch.zeros(3, dtype=torch.float64))


def test_load_into_mismatched_env_names_both_shapes(tmp_path):
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1, update_epochs=1))
    agent.save(tmp_path / "p.pt")
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)|\(4,\).*\(3,\)"):
        PPO.load(tmp_path / "p.pt", env=vecenvs.make("CartPole-v1", num_envs=2))
    with pytest.raises(ValueError, match="PPO"):
        TRPO.load(tmp_path / "p.pt")


@pytest.mark.parametrize("cls", [PPO, SPO])
def test_minibatches_too_small_for_advantage_normalization_is_a_clear_error(cls):
    env = vecenvs.make("CartPole-v1", num_envs=2)
    with pytest.raises(ValueError, match=r"16 \* 2 = 32 samples.*num_minibatches=32.*num_minibatches <= 16"):
        cls(env, cls.config_class(num_steps=16))  # the default 32 minibatches would hold 1 sample each
    cls(env, cls.config_class(num_steps=16, num_minibatches=16))


def test_unsupported_action_space_fails_at_construction():
    class MultiDiscreteEnv(gym.vector.VectorEnv):
        def __init__(self):
            self.num_envs = 2
            self.device = torch.device("cpu")
            self.single_observation_space = gym.spaces.Box(-1, 1, (3,))
            self.single_action_space = gym.spaces.MultiDiscrete([2, 3])

    with pytest.raises(ValueError, match="MultiDiscrete"):
        PPO(MultiDiscreteEnv(), PPOConfig())


def test_nan_stops_training_and_keeps_last_checkpoint(tmp_path):
    env = vecenvs.make("Pendulum-v1", num_envs=4, seed=0)
    agent = PPO(env, PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1))
    ckpt = tmp_path / "last.pt"
    agent.learn(2 * 64, checkpoint_path=ckpt, checkpoint_every=64, progress=False)
    before = ckpt.read_bytes()
    with torch.no_grad():
        next(agent.critic.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="update 3"):
        agent.learn(10 * 64, checkpoint_path=ckpt, checkpoint_every=64, progress=False)
    assert ckpt.read_bytes() == before
    PPO.load(ckpt)  # still a valid checkpoint


def test_atomic_save_keeps_previous_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"algo": "X", "v": 1}, path)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"algo": "X", "v": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


def test_act_rejects_wrong_observation_shape():
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        agent.act(torch.zeros(2, 4))


def test_config_type_is_checked():
    with pytest.raises(TypeError, match="PPOConfig"):
        PPO(vecenvs.make("CartPole-v1", num_envs=2), TRPOConfig())


def test_reward_normalizer_survives_resume_on_the_gymnasium_adapter(tmp_path):
    """Exact resume needs a native env; on the adapter the running statistics must still carry over."""
    env = vecenvs.make("Pendulum-v1", num_envs=2, seed=0, backend="gymnasium")
    agent = PPO(env, PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1))
    agent.learn(64, progress=False)
    agent.save(tmp_path / "a.pt")
    loaded = PPO.load(tmp_path / "a.pt", env=vecenvs.make("Pendulum-v1", num_envs=3, seed=1, backend="gymnasium"))

    def reward_rms(a):
        e = a.env
        while not isinstance(e, vecenvs.NormalizeReward):
            e = e.env
        return e.rms

    torch.testing.assert_close(reward_rms(loaded).var, reward_rms(agent).var)
    torch.testing.assert_close(loaded.obs_rms.mean, agent.obs_rms.mean)
    loaded.learn(128, progress=False)  # resets the new env and keeps training


# --- seeds, interop, checkpoints as a new user meets them ----------------------------------


def _params(agent):
    return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])


def test_env_seed_is_respected():
    """config.seed seeds torch; the env's randomness is the env's own seed, not overridden by learn()."""
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1, seed=0)
    runs = {}
    for env_seed in (5, 6, 5):
        agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=env_seed), cfg)
        agent.learn(64, progress=False)
        runs.setdefault(env_seed, []).append(_params(agent))
    assert torch.equal(runs[5][0], runs[5][1])
    assert not torch.equal(runs[5][0], runs[6][0])


def test_evaluate_respects_the_env_seed_unless_given_one():
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), PPOConfig(num_steps=8, num_minibatches=1))
    a = agent.evaluate(vecenvs.make("Pendulum-v1", num_envs=3, seed=1))
    b = agent.evaluate(vecenvs.make("Pendulum-v1", num_envs=3, seed=1))
    c = agent.evaluate(vecenvs.make("Pendulum-v1", num_envs=3, seed=2))
    d = agent.evaluate(vecenvs.make("Pendulum-v1", num_envs=3, seed=2), seed=1)  # an explicit seed reseeds
    assert a == b and a != c and d == a


def test_load_checks_spaces_before_building(tmp_path):
    """A gSDE Pendulum checkpoint into a CartPole env: the space mismatch, not a gSDE error."""
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2), PPOConfig.preset("pendulum"))
    agent.save(tmp_path / "p.pt")
    with pytest.raises(ValueError, match=r"observation space .*\(3,\).*CartPole.*\(4,\)"):
        PPO.load(tmp_path / "p.pt", env=vecenvs.make("CartPole-v1", num_envs=2))
    with pytest.raises(ValueError, match=r"trained on observation space .*\(3,\).*\(4,\)"):
        agent.evaluate(vecenvs.make("CartPole-v1", num_envs=2))


def test_act_takes_numpy_and_single_observations():
    import numpy as np

    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1))
    batch = torch.randn(4, 3)
    expected = agent.act(batch, deterministic=True)
    out = agent.act(batch.numpy(), deterministic=True)
    assert isinstance(out, np.ndarray) and out.shape == (4, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected.numpy())
    one = agent.act(batch[0].numpy().astype(np.float64), deterministic=True)
    assert one.shape == (1,)
    np.testing.assert_allclose(one, expected[0].numpy(), rtol=1e-5, atol=1e-7)  # a batch of 1 may round differently
    assert agent.act(batch[0], deterministic=True).shape == (1,)
    discrete = PPO(vecenvs.make("CartPole-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1))
    a = discrete.act(np.zeros(4, dtype=np.float32), deterministic=True)
    assert a.shape == () and gym.spaces.Discrete(2).contains(a)
    with pytest.raises(ValueError, match=r"\[B, 3\] or \[3\]"):
        agent.act(np.zeros((2, 3, 1)))


def test_checkpoint_has_the_mode_of_the_other_run_files(tmp_path):
    import os

    agent = PPO(vecenvs.make("CartPole-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1))
    path = agent.save(tmp_path / "c.pt")
    (tmp_path / "other.json").write_text("{}")
    assert os.stat(path).st_mode & 0o777 == os.stat(tmp_path / "other.json").st_mode & 0o777


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    agent = PPO(vecenvs.make("CartPole-v1", num_envs=2), PPOConfig(num_steps=8, num_minibatches=1))
    agent.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but CUDA is not available"):
        PPO.load(tmp_path / "c.pt", device="cuda")


def test_learn_rounds_up_to_whole_rollouts_and_says_so(capsys):
    agent = PPO(vecenvs.make("CartPole-v1", num_envs=4, seed=0), PPOConfig(num_steps=64, num_minibatches=2, update_epochs=1))
    agent.learn(1000)  # batches of 256
    assert agent.global_step == 1024
    assert "training to 1,024 env steps: total_steps=1,000 rounded up to whole rollouts" in capsys.readouterr().out
    agent.learn(1100, progress=False)  # said without the progress bar too (DPPO ran 16,384 steps for 4,096 unsaid)
    assert "training to 1,280 env steps: total_steps=1,100 rounded up to whole rollouts" in capsys.readouterr().out
    with pytest.raises(ValueError, match="total_steps must be a non-negative int"):
        agent.learn(-100)


def test_trpo_kl_is_averaged_over_action_dimensions_by_default():
    from torch.distributions import Independent, Normal

    from policyopt.algos.onpolicy.trpo import mean_kl

    old = Independent(Normal(torch.zeros(5, 3), torch.ones(5, 3)), 1)
    new = Independent(Normal(torch.full((5, 3), 0.1), torch.full((5, 3), 1.2)), 1)
    torch.testing.assert_close(mean_kl(old, new, "sum"), 3 * mean_kl(old, new, "mean"))
    torch.testing.assert_close(mean_kl(old, new, "sum"), kl_divergence(old, new).mean())
    assert TRPOConfig().kl_reduction == "mean"
    with pytest.raises(ValueError, match="kl_reduction"):
        TRPOConfig(kl_reduction="max")


def test_mujoco_presets_match_their_references():
    trpo = TRPOConfig.preset("mujoco")  # rl-zoo hyperparams/trpo.yml, MuJoCo defaults
    assert (trpo.num_steps, trpo.cg_iters, trpo.critic_epochs, trpo.critic_batch_size, trpo.critic_learning_rate) == (
        1024,
        25,
        20,
        128,
        1e-3,
    )
    assert trpo.kl_reduction == "mean" and trpo.max_kl == 0.01 and trpo.normalize_obs and trpo.normalize_reward
    spo = SPO.config_class.preset("mujoco")  # the SPO repository's mujoco/main.py
    assert spo.actor_hidden == (256, 256, 128, 128, 64, 64) and spo.critic_hidden == (64, 64)
    assert (spo.num_steps, spo.num_minibatches, spo.update_epochs, spo.adam_eps, spo.anneal_lr_steps) == (
        256,
        4,
        10,
        1e-8,
        10_000_000,
    )
    assert SPO.config_class.preset("mujoco-ppo") == SPO.config_class()


def test_anneal_lr_steps_sets_the_schedule_horizon():
    env = vecenvs.make("CartPole-v1", num_envs=2, seed=0)
    agent = PPO(env, PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1, anneal_lr_steps=320))
    lrs = []
    agent.learn(96, progress=False, callback=lambda a, r: lrs.append(r["train/learning_rate"]))
    assert lrs == pytest.approx([3e-4 * (1 - s / 320) for s in (0, 32, 64)])


def test_trpo_anneal_max_kl_shrinks_the_trust_region():
    agent = TRPO(vecenvs.make("Pendulum-v1", num_envs=4, seed=0), TRPOConfig(num_steps=32, anneal_max_kl=True, critic_epochs=1))
    records = []
    agent.learn(512, progress=False, callback=lambda a, r: records.append(r))
    assert [r["train/max_kl"] for r in records] == pytest.approx([0.01, 0.0075, 0.005, 0.0025])
    assert all(r["train/kl"] <= r["train/max_kl"] for r in records)


@pytest.mark.parametrize("loss_name", ["ppo", "spo"])
def test_policy_losses_broadcast_advantages_over_extra_ratio_dims(loss_name):
    """The DPPO seam: a log-ratio [B, K] (one per denoising step) gets each sample's advantage on all K."""
    from policyopt.algos.onpolicy.ppo import clipped_surrogate_loss
    from policyopt.algos.onpolicy.spo import spo_loss

    loss = {"ppo": lambda lr, a: clipped_surrogate_loss(lr, a, 0.2), "spo": lambda lr, a: spo_loss(lr, a, 0.2)}[loss_name]
    torch.manual_seed(0)
    log_ratio, adv = torch.randn(8, 5) * 0.3, torch.randn(8)
    per_step = torch.stack([loss(log_ratio[:, k], adv) for k in range(5)])
    torch.testing.assert_close(loss(log_ratio, adv), per_step.mean())
    three_d = torch.randn(8, 2, 3) * 0.3  # any number of extra dims
    torch.testing.assert_close(loss(three_d, adv), loss(three_d.reshape(8, 6), adv))
    with pytest.raises(ValueError, match=r"advantages must be \[B\]"):
        loss(log_ratio, torch.randn(5))
