"""nets: MLP init, heads, critics, the critic ensemble and the on-policy policies."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.distributions import Categorical, Normal

from policyopt.nets import (
    CategoricalHead,
    CategoricalPolicy,
    CriticEnsemble,
    DiagGaussianHead,
    GaussianPolicy,
    GSDEPolicy,
    QCritic,
    StochasticPolicy,
    ValueCritic,
    make_policy,
    mlp,
)

B = 7


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _linears(m: nn.Module) -> list[nn.Linear]:
    return [x for x in m.modules() if isinstance(x, nn.Linear)]


# --- mlp ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_gain", [0.01, 1.0])
def test_mlp_orthogonal_init_gains_and_zero_bias(out_gain):
    net = mlp(5, 3, hidden=(16, 8), out_gain=out_gain)
    lin = _linears(net)
    assert [(l.in_features, l.out_features) for l in lin] == [(5, 16), (16, 8), (8, 3)]
    for l, gain in zip(lin, [math.sqrt(2), math.sqrt(2), out_gain]):
        # an orthogonal matrix times `gain` has all singular values equal to `gain`
        torch.testing.assert_close(torch.linalg.svdvals(l.weight), torch.full((min(l.weight.shape),), gain))
        assert torch.count_nonzero(l.bias) == 0
    # so the output layer's Frobenius norm is out_gain * sqrt(out_dim)
    torch.testing.assert_close(lin[-1].weight.norm(), torch.tensor(out_gain * math.sqrt(3)))
    assert net(torch.randn(B, 5)).shape == (B, 3)


@pytest.mark.parametrize("act", ["tanh", "relu", "elu", "gelu", "silu", "mish", nn.Softplus])
def test_mlp_activations_and_layer_norm(act):
    net = mlp(4, 2, hidden=(8,), activation=act, layer_norm=True)
    assert any(isinstance(m, nn.LayerNorm) for m in net)
    assert net(torch.randn(B, 4)).shape == (B, 2)


def test_mlp_rejects_unknown_activation_and_allows_no_hidden():
    with pytest.raises(ValueError, match="swish.*tanh"):
        mlp(4, 2, activation="swish")
    assert len(mlp(4, 2, hidden=())) == 1


# --- heads / critics ----------------------------------------------------------------------------
@pytest.mark.parametrize("state_dependent", [False, True])
def test_diag_gaussian_head(state_dependent):
    head = DiagGaussianHead(6, 3, state_dependent_std=state_dependent, log_std_init=-0.5)
    x = torch.randn(B, 6)
    mean, log_std = head(x)
    assert mean.shape == log_std.shape == (B, 3)
    if state_dependent:
        assert not torch.allclose(log_std[0], log_std[1])
        assert (log_std - (-0.5)).abs().max() < 0.2  # starts near log_std_init (small output gain)
    else:
        torch.testing.assert_close(log_std, torch.full((B, 3), -0.5))
    big = DiagGaussianHead(6, 3, state_dependent_std=True, log_std_bounds=(-1.0, 1.0))
    with torch.no_grad():
        big.log_std.bias.fill_(50.0)
    assert big(x)[1].max() == 1.0


def test_categorical_head_and_critics_shapes():
    assert CategoricalHead(6, 4)(torch.randn(B, 6)).shape == (B, 4)
    assert ValueCritic(5)(torch.randn(B, 5)).shape == (B,)
    assert QCritic(5, 2, hidden=(32, 32))(torch.randn(B, 5), torch.randn(B, 2)).shape == (B,)
    assert ValueCritic(5, layer_norm=True, activation="relu")(torch.randn(B, 5)).shape == (B,)


def test_critic_ensemble_outputs_gradients_and_matches_members():
    ens = CriticEnsemble(4, lambda: QCritic(5, 2, hidden=(32, 32)))
    obs, act = torch.randn(B, 5), torch.randn(B, 2)
    q = ens(obs, act)
    assert q.shape == (4, B)
    for i, m in enumerate(ens.members):  # vectorised call == calling each member
        torch.testing.assert_close(q[i], m(obs, act))
    assert not torch.allclose(q[0], q[1])  # independently initialised
    q.sum().backward()
    for m in ens.members:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    assert len(list(ens.parameters())) == 4 * len(list(ens.members[0].parameters()))
    assert "members.3.net.0.weight" in ens.state_dict()
    # per-member inputs, and deepcopy (target networks) keeps working
    q_split = ens(obs.expand(4, B, 5), act.expand(4, B, 2), split_inputs=True)
    torch.testing.assert_close(q_split, q.detach())
    target = copy.deepcopy(ens)
    torch.testing.assert_close(target(obs, act), q.detach())
    assert CriticEnsemble(2, lambda: ValueCritic(5))(obs).shape == (2, B)


# --- policies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("state_dependent", [False, True])
def test_gaussian_policy_log_prob_and_entropy_match_torch_reference(state_dependent):
    pol = GaussianPolicy(5, 3, state_dependent_std=state_dependent, log_std_init=-0.3)
    obs = torch.randn(B, 5)
    actions, stored = pol.explore(obs)
    assert actions.shape == (B, 3) and actions.dtype == torch.float32
    assert set(stored) == {"log_prob"} and stored["log_prob"].shape == (B,)
    mean, log_std = pol.head(pol.body(obs))
    ref = Normal(mean, log_std.exp())
    torch.testing.assert_close(stored["log_prob"], ref.log_prob(actions).sum(-1))  # sums over action dims
    torch.testing.assert_close(pol.distribution(obs).log_prob(actions), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(pol.entropy(obs), ref.entropy().sum(-1))
    torch.testing.assert_close(pol.act(obs, deterministic=True), mean)
    assert pol.act(obs).shape == (B, 3)
    assert not actions.requires_grad and not stored["log_prob"].requires_grad


def _check_log_ratio(pol: StochasticPolicy, obs: torch.Tensor):
    actions, stored = pol.explore(obs)
    lr = pol.log_ratio(obs, actions, stored)
    assert lr.shape == (B,)
    torch.testing.assert_close(lr, torch.zeros(B), atol=1e-6, rtol=0)  # unchanged params -> ratio 1
    assert lr.requires_grad
    lr.sum().backward()
    grads = [p.grad for p in pol.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():  # after a parameter change the ratio moves
        for p in pol.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert pol.log_ratio(obs, actions, stored).abs().max() > 1e-3
    both = pol.log_ratio_and_entropy(obs, actions, stored)  # the one-pass form PPO uses
    torch.testing.assert_close(both[0], pol.log_ratio(obs, actions, stored))
    torch.testing.assert_close(both[1], pol.entropy(obs))


def test_gaussian_policy_log_ratio():
    _check_log_ratio(GaussianPolicy(5, 3), torch.randn(B, 5))
    _check_log_ratio(GaussianPolicy(5, 3, state_dependent_std=True), torch.randn(B, 5))


def test_categorical_policy():
    pol = CategoricalPolicy(5, 4)
    obs = torch.randn(B, 5)
    actions, stored = pol.explore(obs)
    assert actions.shape == (B,) and actions.dtype == torch.int64
    logits = pol.head(pol.body(obs))
    ref = Categorical(logits=logits)
    torch.testing.assert_close(stored["log_prob"], ref.log_prob(actions))
    torch.testing.assert_close(pol.entropy(obs), ref.entropy())
    assert torch.equal(pol.act(obs, deterministic=True), logits.argmax(-1))
    assert isinstance(pol.distribution(obs), Categorical)
    # float-stored actions (e.g. a float32 buffer) still index correctly
    torch.testing.assert_close(pol.log_ratio(obs, actions.float(), stored), torch.zeros(B), atol=1e-6, rtol=0)
    _check_log_ratio(pol, obs)


def test_policy_initial_outputs_are_near_uniform():
    # small output gain: near-zero means / near-uniform logits at init (Andrychowicz et al. 2021)
    obs = torch.randn(B, 5)
    assert GaussianPolicy(5, 3).act(obs, deterministic=True).abs().max() < 0.1
    probs = CategoricalPolicy(5, 4).distribution(obs).probs
    assert (probs - 0.25).abs().max() < 0.02


def test_stochastic_policy_is_abstract():
    with pytest.raises(TypeError):
        StochasticPolicy()


def test_make_policy_picks_class_and_rejects_unsupported_spaces():
    box = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    pol = make_policy(box, gym.spaces.Box(-2.0, 2.0, (3,), np.float32), hidden=(32,), state_dependent_std=True)
    assert isinstance(pol, GaussianPolicy) and pol.act_dim == 3 and pol.head.state_dependent_std
    cat = make_policy(box, gym.spaces.Discrete(4), hidden=(32,), log_std_init=-1.0)  # Gaussian-only kwarg ignored
    assert isinstance(cat, CategoricalPolicy) and cat.n_actions == 4
    with pytest.raises(ValueError, match="MultiDiscrete"):
        make_policy(box, gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="Dict"):
        make_policy(box, gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    with pytest.raises(ValueError, match="1-D Box"):
        make_policy(gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match="start at 0"):
        make_policy(box, gym.spaces.Discrete(4, start=1))


# --- gSDE ------------------------------------------------------------------------------


def test_gsde_noise_is_held_between_redraws_and_smooth_in_the_state():
    torch.manual_seed(0)
    pol = GSDEPolicy(4, 2, sample_freq=3)
    obs = torch.randn(5, 4)
    pol.begin_rollout(5)
    a = [pol.explore(obs)[0] for _ in range(4)]
    assert torch.equal(a[0], a[1]) and torch.equal(a[1], a[2])  # the same matrices for 3 steps
    assert not torch.allclose(a[2], a[3])  # redrawn at step 3
    pol.begin_rollout(5)
    assert not torch.allclose(pol.explore(obs)[0], a[3])  # and at every rollout start
    # the noise is a function of the state: a nearby state gets nearby noise (white noise would not)
    near = pol.explore(obs + 1e-4)[0] - pol.explore(obs)[0]
    assert near.abs().max() < 1e-2


def test_gsde_samples_follow_the_marginal_used_for_log_probs():
    torch.manual_seed(1)
    pol = GSDEPolicy(3, 2, log_std_init=-0.5)
    obs = torch.randn(1, 3).expand(20_000, 3)
    pol.begin_rollout(20_000)  # one matrix per row: 20k draws of z(s) @ theta at one state
    actions, stored = pol.explore(obs)
    dist = pol.distribution(obs[:1])
    torch.testing.assert_close(actions.mean(0), dist.mean[0], atol=0.03 * float(dist.stddev.max()), rtol=0)
    torch.testing.assert_close(actions.std(0), dist.stddev[0], rtol=0.03, atol=0)
    torch.testing.assert_close(stored["log_prob"], pol.distribution(obs).log_prob(actions))


def test_gsde_log_ratio_and_make_policy():
    pol = GSDEPolicy(5, 3)
    _check_log_ratio(pol, torch.randn(B, 5))
    box, disc = gym.spaces.Box(-1, 1, (5,)), gym.spaces.Discrete(3)
    assert isinstance(make_policy(box, gym.spaces.Box(-1, 1, (3,)), use_sde=True, sde_sample_freq=4), GSDEPolicy)
    with pytest.raises(ValueError, match="Box actions"):
        make_policy(box, disc, use_sde=True)
    with pytest.raises(ValueError, match="pick one"):
        make_policy(box, gym.spaces.Box(-1, 1, (3,)), use_sde=True, state_dependent_std=True)
    with pytest.raises(ValueError, match="sample_freq"):
        GSDEPolicy(5, 3, sample_freq=0)
