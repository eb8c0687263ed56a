"""DPPO and FPO: the diffusion and flow policies behind the on-policy seam (nets.generative.onpolicy), their
log-ratios (0 at unchanged parameters, finite-difference gradients), DPPO's denoising discount and clip
schedule, FPO++'s asymmetric loss, checkpoints, fine-tuning a Diffusion-BC checkpoint, bad input, the
CLI, and learning on Pendulum-v1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, DiffusionBC, DiffusionBCConfig, PPOConfig
from policyopt.algos.onpolicy.dppo import DPPO, DPPOConfig, clip_schedule, denoising_discounts, dppo_policy_loss
from policyopt.algos.onpolicy.fpo import FPO, FPOConfig, fpo_plus_loss
from policyopt.algos.onpolicy.ppo import clipped_surrogate_loss
from policyopt.algos.onpolicy.spo import spo_loss
from policyopt.algos.run.train import main
from policyopt.buffers import OfflineDataset
from policyopt.nets.generative import DiffusionPPOPolicy, FlowPPOPolicy
from test_evaluate_cli import load_evaluate_module

OBS, ACT = 3, 2
LOW, HIGH = [-2.0, -1.0], [2.0, 3.0]
TINY = dict(hidden=(8, 8), time_dim=4)
# small and fast on-policy runs (tests/conftest.py runs them eagerly)
SMALL = dict(num_steps=16, num_minibatches=2, update_epochs=1, actor_hidden=(16, 16), critic_hidden=(16, 16))


def dppo_policy(**kw) -> DiffusionPPOPolicy:
    kw = {"ft_denoising_steps": 3, **kw}
    return DiffusionPPOPolicy(OBS, ACT, LOW, HIGH, diffusion_kwargs=dict(num_timesteps=5, **TINY), **kw)


def fpo_policy(**kw) -> FlowPPOPolicy:
    return FlowPPOPolicy(OBS, ACT, LOW, HIGH, num_mc_samples=4, flow_kwargs=TINY, **kw)


POLICIES = {"dppo": dppo_policy, "fpo": fpo_policy, "fpo_per_pair": lambda: fpo_policy(per_pair_ratio=True)}


# ---- the log-ratios ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_log_ratio_is_exactly_zero_at_unchanged_parameters(name):
    torch.manual_seed(0)
    policy = POLICIES[name]()
    obs = torch.randn(32, OBS)
    actions, stored = policy.explore(obs)
    assert actions.shape == (32, ACT)
    if name == "dppo":  # the env's bounds, not [-1, 1] (FPO's are the ODE's unclipped end points; the env clips)
        assert ((actions >= torch.tensor(LOW)) & (actions <= torch.tensor(HIGH))).all()
    log_ratio = policy.log_ratio(obs, actions, stored)
    expected = {"dppo": (32, 3), "fpo": (32,), "fpo_per_pair": (32, 4)}[name]
    assert log_ratio.shape == expected and torch.equal(log_ratio, torch.zeros(expected))
    # one gradient step moves it
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    log_ratio.sum().backward()
    opt.step()
    assert policy.log_ratio(obs, actions, stored).abs().max() > 0


def test_dppo_scores_the_fine_tuned_steps_of_the_chain_and_freezes_the_rest():
    torch.manual_seed(0)
    policy = dppo_policy()  # K = 5 steps, K' = 3 fine-tuned
    obs, x = torch.randn(16, OBS), torch.randn(16, ACT)
    _, chain = policy._chain(obs, x, policy.eta, policy.min_sampling_std)
    assert chain.shape == (16, 6, ACT)
    # the per-step log-probs are DiffusionPolicy.chain_log_prob's (DDIM with eta) on the last K' steps
    ref = policy.diffusion.chain_log_prob(obs, chain, sampler="ddim", eta=1.0, min_std=0.1)[:, -3:]
    torch.testing.assert_close(policy.step_log_prob(obs, chain[:, -4:]), ref)
    # only the fine-tuned denoiser trains; the early steps run the frozen copy
    assert all(not p.requires_grad for p in policy.frozen.parameters())
    before = policy._chain(obs, x, 0.0, 0.0)[1]
    with torch.no_grad():
        for p in policy.diffusion.parameters():
            p.add_(0.5 * torch.randn_like(p))
    after = policy._chain(obs, x, 0.0, 0.0)[1]
    assert torch.equal(after[:, :3], before[:, :3])  # x_K and the 2 frozen steps
    assert not torch.allclose(after[:, 3:], before[:, 3:])
    # K' = K: no frozen copy at all
    assert dppo_policy(ft_denoising_steps=5).frozen is None


@pytest.mark.parametrize("name", list(POLICIES))
def test_log_ratio_gradient_matches_finite_differences(name):
    torch.manual_seed(1)
    policy = POLICIES[name]().double()
    obs = torch.randn(4, OBS, dtype=torch.float64)
    actions, stored = policy.explore(obs)
    with torch.no_grad():  # move away from the old parameters, where every ratio is 1
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    weights = torch.randn_like(policy.log_ratio(obs, actions, stored))

    def f() -> torch.Tensor:
        return (weights * policy.log_ratio(obs, actions, stored)).sum()

    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(f(), params)
    h = 1e-6
    for p, g in zip(params, grads):  # a few entries of every weight and bias
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(min(flat.numel(), 4)):
            orig = flat[i].item()
            with torch.no_grad():
                flat[i] = orig + h
                up = f()
                flat[i] = orig - h
                down = f()
                flat[i] = orig
            torch.testing.assert_close(gflat[i], (up - down) / (2 * h), rtol=1e-5, atol=1e-7)


# ---- DPPO's loss: the denoising discount and the per-step clip schedule ------------------------------


def test_dppo_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    B, K, gamma, final, base, rate = 5, 4, 0.9, 0.2, 0.02, 3.0
    log_ratio = 0.3 * torch.randn(B, K, dtype=torch.float64)
    adv = torch.randn(B, dtype=torch.float64)
    clips = clip_schedule(K, final, base, rate, log_ratio)
    assert clips[0].item() == pytest.approx(base) and clips[-1].item() == pytest.approx(final)
    torch.testing.assert_close(
        denoising_discounts(K, gamma, log_ratio), torch.tensor([0.729, 0.81, 0.9, 1.0], dtype=torch.float64)
    )
    total = 0.0
    for b in range(B):
        for k in range(K):  # k in chain order: k = K - 1 is the last (clean) step, discount 1
            a = adv[b].item() * gamma ** (K - 1 - k)
            eps = base + (final - base) * (math.exp(rate * k / (K - 1)) - 1) / (math.exp(rate) - 1)
            r = math.exp(log_ratio[b, k].item())
            total += min(r * a, min(max(r, 1 - eps), 1 + eps) * a)
    expected = -total / (B * K)
    loss = dppo_policy_loss(log_ratio, adv, denoising_discounts(K, gamma, log_ratio), clips)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # the algorithm's policy_loss is this loss with the config's values
    agent = DPPO(
        vecenvs.make("Pendulum-v1", num_envs=2),
        DPPOConfig(**SMALL, num_timesteps=4, gamma_denoise=gamma, clip_coef=final, clip_coef_base=base, clip_coef_rate=rate),
    )
    assert agent.policy_loss(log_ratio, adv).item() == pytest.approx(expected, rel=1e-12)
    # without discount and with one clip range it is PPO's clipped surrogate over [B, K'] ratios
    ones, same = torch.ones(K, dtype=torch.float64), torch.full((K,), 0.2, dtype=torch.float64)
    torch.testing.assert_close(dppo_policy_loss(log_ratio, adv, ones, same), clipped_surrogate_loss(log_ratio, adv, 0.2))


def test_fpo_plus_loss_is_ppo_clip_for_positive_and_spo_for_negative_advantages():
    torch.manual_seed(0)
    log_ratio, adv, eps = 0.2 * torch.randn(6, 4, dtype=torch.float64), torch.randn(6, dtype=torch.float64), 0.05
    r, a = log_ratio.exp(), adv[:, None].expand(6, 4)
    per_entry = torch.where(a > 0, torch.min(r * a, r.clamp(1 - eps, 1 + eps) * a), r * a - a.abs() / (2 * eps) * (r - 1) ** 2)
    torch.testing.assert_close(fpo_plus_loss(log_ratio, adv, eps), -per_entry.mean())
    pos, neg = adv.abs(), -adv.abs()
    torch.testing.assert_close(fpo_plus_loss(log_ratio, pos, eps), clipped_surrogate_loss(log_ratio, pos, eps))
    torch.testing.assert_close(fpo_plus_loss(log_ratio, neg, eps), spo_loss(log_ratio, neg, eps))


# ---- checkpoints --------------------------------------------------------------------------------------


def _assert_reloads_and_acts_the_same(agent, cls, path):
    agent.learn(agent.steps_per_iteration, progress=False)
    agent.save(path)
    loaded = cls.load(path)
    assert type(loaded.policy) is type(agent.policy)
    obs = torch.randn(8, 3) * torch.tensor([1.0, 1.0, 8.0])
    torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    torch.manual_seed(3)
    a = agent.act(obs)
    torch.manual_seed(3)
    torch.testing.assert_close(loaded.act(obs), a, rtol=0, atol=0)
    return loaded


@pytest.mark.parametrize(
    "cls, config",
    [
        (DPPO, DPPOConfig(**SMALL, num_timesteps=4, ft_denoising_steps=2)),
        (FPO, FPOConfig(**SMALL, num_mc_samples=2, flow_steps=3)),
        (FPO, FPOConfig(**SMALL, num_mc_samples=2, flow_steps=3, fpo_plus=True)),
    ],
)
def test_checkpoints_reload_and_act_the_same(cls, config, tmp_path):
    agent = cls(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), config)
    frozen = {k: v.clone() for k, v in agent.policy.frozen.state_dict().items()} if cls is DPPO else {}
    loaded = _assert_reloads_and_acts_the_same(agent, cls, tmp_path / "a.pt")
    for k, v in frozen.items():  # the frozen early steps stayed the initial denoiser's, and reload as such
        assert torch.equal(agent.policy.frozen.state_dict()[k], v) and torch.equal(loaded.policy.frozen.state_dict()[k], v)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DiffusionPPOPolicy(3, 1, [-2.0], [2.0], diffusion_kwargs=dict(num_timesteps=4, **TINY)),
        lambda: FlowPPOPolicy(3, 1, [-2.0], [2.0], num_mc_samples=2, flow_kwargs=TINY),
    ],
)
def test_plain_ppo_trains_and_reloads_the_generative_policies(make, tmp_path):
    agent = PPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), PPOConfig(**SMALL), policy=make())
    _assert_reloads_and_acts_the_same(agent, PPO, tmp_path / "a.pt")


# ---- fine-tuning an offline Diffusion-BC checkpoint --------------------------------------------------


def _pendulum_bc_checkpoint(path):
    env = vecenvs.make("Pendulum-v1", num_envs=1)
    rng = np.random.default_rng(0)
    n = 200
    obs = (rng.normal(size=(n, 3)) * [0.5, 0.5, 3.0] + [0.2, 0.0, 1.0]).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    timeouts[99] = timeouts[199] = True
    data = OfflineDataset(
        obs,
        rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        terminals,
        timeouts,
        np.roll(obs, -1, 0),
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
    )
    bc = DiffusionBC(data, DiffusionBCConfig(actor_hidden=(16, 16), batch_size=32)).learn(20, progress=False)
    bc.save(path)
    return bc


def test_dppo_fine_tunes_a_diffusion_bc_checkpoint(tmp_path):
    bc = _pendulum_bc_checkpoint(tmp_path / "bc.pt")
    cfg = DPPOConfig(**SMALL, pretrained=str(tmp_path / "bc.pt"), ft_denoising_steps=3)  # of the checkpoint's K = 5
    agent = DPPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), cfg)
    assert agent.policy.denoising_steps == 5
    for copy in (agent.policy.diffusion, agent.policy.frozen):
        for k, v in bc.policy.state_dict().items():
            assert torch.equal(copy.state_dict()[k], v)
    # it starts as the pretrained policy acts: the same normalisation of raw observations, the same actions
    obs = torch.randn(16, 3) * torch.tensor([0.5, 0.5, 3.0])
    torch.testing.assert_close(agent.act(obs, deterministic=True), bc.act(obs, deterministic=True), atol=1e-4, rtol=0)
    stats = agent.obs_rms.state_dict()
    agent.learn(agent.steps_per_iteration, progress=False)
    assert torch.equal(agent.obs_rms.mean, stats["mean"]) and torch.equal(agent.obs_rms.var, stats["var"])  # frozen
    agent.save(tmp_path / "dppo.pt")
    (tmp_path / "bc.pt").unlink()  # a reload must not need the pretrained file
    loaded = DPPO.load(tmp_path / "dppo.pt", env=vecenvs.make("Pendulum-v1", num_envs=2, seed=1))
    torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    loaded.learn(loaded.global_step + loaded.steps_per_iteration, progress=False)
    assert torch.equal(loaded.obs_rms.mean, stats["mean"])  # still frozen after the reload


def test_dppo_pretrained_errors(tmp_path):
    _pendulum_bc_checkpoint(tmp_path / "bc.pt")
    env = vecenvs.make("Pendulum-v1", num_envs=2)
    with pytest.raises(ValueError, match=r"ft_denoising_steps \(K'\) must be an int in 1..K = 5"):
        DPPO(env, DPPOConfig(**SMALL, pretrained=str(tmp_path / "bc.pt"), ft_denoising_steps=10))
    with pytest.raises(ValueError, match="pretrained needs normalize_obs=True"):
        DPPOConfig(pretrained=str(tmp_path / "bc.pt"), normalize_obs=False)
    PPO(env, PPOConfig(**SMALL)).save(tmp_path / "ppo.pt")
    with pytest.raises(
        ValueError, match="DPPO's pretrained .*PPO checkpoint.*expected a policyopt.nets.generative.diffusion.DiffusionPolicy"
    ):
        DPPO(env, DPPOConfig(**SMALL, pretrained=str(tmp_path / "ppo.pt")))
    with pytest.raises(FileNotFoundError):
        DPPO(env, DPPOConfig(**SMALL, pretrained=str(tmp_path / "missing.pt")))


# ---- bad input ----------------------------------------------------------------------------------------


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"ft_denoising_steps \(K'\) must be an int in 1..K = 5"):
        dppo_policy(ft_denoising_steps=6)
    with pytest.raises(ValueError, match="eta must be > 0 for training"):
        dppo_policy(eta=0.0)
    with pytest.raises(ValueError, match="min_logprob_std"):
        dppo_policy(min_logprob_std=0.0)
    with pytest.raises(ValueError, match="exceeds"):
        dppo_policy(denoising_steps=6)
    with pytest.raises(ValueError, match=r"num_mc_samples \(N, the \(tau, eps\) pairs per action\) must be an int >= 1"):
        FlowPPOPolicy(OBS, ACT, LOW, HIGH, num_mc_samples=0)
    with pytest.raises(ValueError, match="supervise"):
        fpo_policy(supervise="x0")
    with pytest.raises(ValueError, match="finite Box bounds"):
        FlowPPOPolicy(OBS, 1, [-np.inf], [np.inf])
    with pytest.raises(ValueError, match="act_dim=2 bounds"):
        DiffusionPPOPolicy(OBS, ACT, [-1.0], [1.0])
    with pytest.raises(ValueError, match="num_mc_samples"):
        FPOConfig(num_mc_samples=0)
    with pytest.raises(ValueError, match="gamma_denoise"):
        DPPOConfig(gamma_denoise=0.0)
    with pytest.raises(ValueError, match="1-D Box action space"):
        FPO(vecenvs.make("CartPole-v1", num_envs=2), FPOConfig(**SMALL))
    with pytest.raises(KeyError, match="'chain'"):
        dppo_policy().log_ratio(torch.zeros(2, OBS), torch.zeros(2, ACT), {})
    with pytest.raises(ValueError, match="obs must have shape"):
        dppo_policy().explore(torch.zeros(2, OBS + 1))


# ---- the command line -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, own", [(FPO, []), (DPPO, ["--algo.num-timesteps", "3", "--algo.actor-hidden", "16", "16"])])
def test_train_cli_writes_a_checkpoint_that_evaluate_py_evaluates(cls, own, tmp_path):
    run = tmp_path / "run"
    agent = main(
        cls,
        [
            "--env-id",
            "Pendulum-v1",
            "--num-envs",
            "2",
            "--run-dir",
            str(run),
            "--no-progress",
            "--total-steps",
            "64",
            "--eval-every",
            "0",
            "--algo.num-steps",
            "32",
            "--algo.num-minibatches",
            "2",
            "--algo.update-epochs",
            "1",
            "--algo.critic-hidden",
            "16",
            "16",
            *own,
        ],
    )
    assert agent.global_step == 64 and (run / "checkpoint.pt").is_file()
    # scripts/evaluate.py, from the run directory alone: the class from the checkpoint, the env from config.json
    result = load_evaluate_module().cli([str(run), "--episodes", "2", "--seed", "5"])
    assert result["algo"] == cls.__name__ and result["env_id"] == "Pendulum-v1" and result["episodes"] == 2
    expected = agent.evaluate(vecenvs.make("Pendulum-v1", num_envs=2, seed=5), seed=5)["return_mean"]
    assert result["return_mean"] == pytest.approx(expected, rel=1e-5)


# ---- learning ------------------------------------------------------------------------------------------

# Pendulum-v1 from scratch, 8 envs x 128 steps, minibatches of 32. Measured on 2 shared cores (seeds 0, 1, 2):
# FPO gains 500 within 12k-16k steps (~10 s), FPO++ within 25k-29k (~20-27 s), DPPO within 8k-20k (~10-25 s).
PENDULUM = dict(
    num_steps=128,
    num_minibatches=32,
    update_epochs=10,
    gamma=0.9,
    learning_rate=1e-3,
    actor_hidden=(64, 64),
    critic_hidden=(64, 64),
)


def _learn_until_gain(agent, gain: float, budget: int) -> tuple[float, float]:
    """The deterministic eval return before training and at its end, training stopping once it gained ``gain``."""
    eval_env = vecenvs.make("Pendulum-v1", num_envs=10, seed=123)
    before = agent.evaluate(eval_env, seed=123)["return_mean"]
    last = before

    def stop_once_gained(_agent, record):
        nonlocal last
        if "eval/return" in record:
            last = record["eval/return"]
            return last < before + gain

    agent.learn(budget, eval_env=eval_env, eval_every=4096, eval_seed=123, callback=stop_once_gained, progress=False)
    return before, last


@pytest.mark.slow
@pytest.mark.parametrize("fpo_plus", [False, True])
def test_fpo_improves_pendulum(fpo_plus):
    agent = FPO(vecenvs.make("Pendulum-v1", num_envs=8, seed=0), FPOConfig(**PENDULUM, fpo_plus=fpo_plus))
    before, after = _learn_until_gain(agent, 500, budget=49_152)
    assert after > before + 400, (
        f"FPO (fpo_plus={fpo_plus}): deterministic eval return {before:.0f} -> {after:.0f} on Pendulum-v1"
    )


@pytest.mark.slow
def test_dppo_improves_pendulum():
    # DPPO's from-scratch setting (K = K'; here 5 steps, one clip range 0.2 at every step)
    cfg = DPPOConfig(**PENDULUM, num_timesteps=5, clip_coef=0.2, clip_coef_base=0.2)
    agent = DPPO(vecenvs.make("Pendulum-v1", num_envs=8, seed=0), cfg)
    before, after = _learn_until_gain(agent, 500, budget=40_960)
    assert after > before + 400, f"DPPO: deterministic eval return {before:.0f} -> {after:.0f} on Pendulum-v1"
