"""CQL (algos/offline/cql.py): the conservative penalty, the Lagrange multiplier and the target against hand
computations, one update's metrics, gradients and target step, exact resume, Q pushed down on
out-of-distribution actions, and the config's errors and sampler defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from policyopt.algos.offline.cql import CQL, CQLConfig, cql_penalty, lagrange_penalty, soft_bellman_target
from policyopt.algos.offpolicy.sac import critic_target
from policyopt.buffers import OfflineDataset

SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32)


def trajectories(n: int = 300, obs_dim: int = 4, act_dim: int = 2, seed: int = 0) -> OfflineDataset:
    """Random transitions in a few episodes, terminals and timeouts mixed."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[[49, 130]], timeouts[[199, n - 1]] = True, True
    return OfflineDataset(
        obs,
        rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        terminals,
        timeouts,
        np.roll(obs, -1, 0),
    )


def near_zero_actions(n: int = 1000, seed: int = 0) -> OfflineDataset:
    """One-step episodes whose actions are all ~0 (std 0.05), reward 1(s_0 > 0): every other action is unseen."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    actions = np.clip(0.05 * rng.normal(size=(n, 2)), -1, 1).astype(np.float32)
    return OfflineDataset(
        obs,
        actions,
        (obs[:, 0] > 0).astype(np.float32),
        np.ones(n, bool),
        np.zeros(n, bool),
        rng.normal(size=(n, 3)).astype(np.float32),
    )


def lse(values, temp=1.0) -> float:
    return temp * math.log(sum(math.exp(v / temp) for v in values))


# --- the losses against hand computations -------------------------------------------------------------
def test_cql_penalty_with_importance_sampling_by_hand():
    q_data = torch.tensor([[1.0, -2.0]])  # one critic, two states
    q_ood = torch.tensor([[[0.5, 0.0], [2.0, -1.0], [-1.0, 3.0]]])  # three sampled actions per state
    log_density = torch.tensor([[-1.0, -1.0], [0.5, -0.2], [-2.0, 0.3]])
    for temp in (1.0, 0.5):
        per_state = [lse([0.5 + 1.0, 2.0 - 0.5, -1.0 + 2.0], temp) - 1.0, lse([0.0 + 1.0, -1.0 + 0.2, 3.0 - 0.3], temp) + 2.0]
        gap = cql_penalty(q_data, q_ood, log_density, temp)
        assert gap.shape == (1,)
        assert gap.item() == pytest.approx(sum(per_state) / 2, rel=1e-6)
    # the per-state gaps are clipped before the mean
    clipped = cql_penalty(q_data, q_ood, log_density, 1.0, clip_min=-10.0, clip_max=2.0).item()
    per_state = [lse([1.5, 1.5, 1.0]) - 1.0, lse([1.0, -0.8, 2.7]) + 2.0]
    assert per_state[1] > 2.0 > per_state[0]
    assert clipped == pytest.approx((per_state[0] + 2.0) / 2, rel=1e-6)


def test_cql_penalty_without_importance_sampling_includes_the_data_action():
    q_data = torch.tensor([[1.0, -2.0], [0.0, 0.5]])  # two critics
    q_ood = torch.tensor([[[0.5, 0.0], [2.0, -1.0]], [[1.0, 1.0], [-3.0, 0.0]]])
    gap = cql_penalty(q_data, q_ood, None, 1.0)
    by_hand = [
        ((lse([1.0, 0.5, 2.0]) - 1.0) + (lse([-2.0, 0.0, -1.0]) + 2.0)) / 2,
        ((lse([0.0, 1.0, -3.0]) - 0.0) + (lse([0.5, 1.0, 0.0]) - 0.5)) / 2,
    ]
    assert gap.tolist() == pytest.approx(by_hand, rel=1e-6)
    # equal Q everywhere: the gap is log(K + 1), what the log-sum-exp adds over the max
    assert cql_penalty(torch.zeros(1, 3), torch.zeros(1, 4, 3), None, 1.0).item() == pytest.approx(math.log(5))


def test_lagrange_multiplier_grows_when_the_gap_exceeds_its_target():
    gap = torch.tensor([3.0, 2.0])
    for target, direction in ((1.0, 1.0), (5.0, -1.0)):
        log_alpha_prime = torch.tensor(1.0, requires_grad=True)
        critic_term, loss, alpha_prime = lagrange_penalty(gap, log_alpha_prime, 10.0, target)
        assert alpha_prime.item() == pytest.approx(math.e)
        assert critic_term.item() == pytest.approx(math.e * 10.0 * (5.0 - 2 * target))
        assert loss.item() == pytest.approx(-math.e * 10.0 * (2.5 - target))
        loss.backward()
        assert -direction * log_alpha_prime.grad.item() > 0  # gradient descent moves log alpha' in `direction`


@pytest.mark.parametrize("target_gap, grows", [(-1.0, True), (1e3, False)])
def test_lagrange_variant_trains_alpha_prime_towards_the_target_gap(target_gap, grows):
    agent = CQL(trajectories(), CQLConfig(cql_lagrange=True, cql_target_action_gap=target_gap, **SMALL))
    agent.learn(5, progress=False)
    assert (agent.log_alpha_prime.item() > 1.0) == grows, agent.log_alpha_prime.item()  # starts at 1.0, as CORL


def test_soft_bellman_target_by_hand():
    rewards, discounts, terminated = torch.tensor([1.0, 2.0]), torch.full((2,), 0.9), torch.tensor([0.0, 1.0])
    q_next = torch.tensor([[3.0, 5.0], [4.0, 1.0]])  # [critics, B]
    log_prob = torch.tensor([0.5, -1.0])
    y = soft_bellman_target(rewards, discounts, terminated, q_next[:, None], log_prob[None], 0.2)
    torch.testing.assert_close(y, critic_target(rewards, discounts, terminated, q_next, log_prob, torch.tensor(0.2)))
    assert y.tolist() == pytest.approx([1.0 + 0.9 * (3.0 - 0.1), 2.0])
    # max backup over K = 3 samples: the sample with the largest min over critics, and its own log-prob
    q_k = torch.tensor([[[1.0], [6.0], [4.0]], [[2.0], [3.0], [5.0]]])  # mins 1, 3, 4 -> sample 2
    lp_k = torch.tensor([[0.0], [0.0], [2.0]])
    y = soft_bellman_target(torch.zeros(1), torch.ones(1), torch.zeros(1), q_k, lp_k, 0.5)
    assert y.item() == pytest.approx(4.0 - 0.5 * 2.0)


# --- one update -----------------------------------------------------------------------------------------
def test_an_update_gives_finite_metrics_reaches_every_network_and_moves_targets_by_tau():
    agent = CQL(trajectories(), CQLConfig(**SMALL))
    online = [p.detach().clone() for p in agent.critic.parameters()]
    target = [p.detach().clone() for p in agent.critic_target.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(online, target))  # the target starts as a copy
    metrics = agent.update(agent.prepare(agent.sampler.sample(32)), 0.0)
    assert set(metrics) == {
        "critic_loss",
        "td_loss",
        "cql_gap",
        "actor_loss",
        "alpha_loss",
        "alpha",
        "entropy",
        "q_mean",
        "q_random",
        "q_policy",
        "alpha_prime",
        "alpha_prime_loss",
    }
    assert all(isinstance(v, torch.Tensor) and v.shape == () and torch.isfinite(v) for v in metrics.values())
    for name, module in (("policy", agent.policy), ("critic", agent.critic)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name
    assert agent.log_alpha.item() != 0.0  # alpha is tuned (it starts at 1)
    assert agent.log_alpha_prime.grad is None and agent.log_alpha_prime.item() == 1.0  # no Lagrange by default
    for t0, new_online, new_target in zip(target, agent.critic.parameters(), agent.critic_target.parameters()):
        torch.testing.assert_close(new_target, t0 + 0.005 * (new_online.detach() - t0))
    assert not all(torch.equal(a, b) for a, b in zip(online, agent.critic.parameters()))


# --- exact resume ---------------------------------------------------------------------------------------
def test_exact_resume_including_alpha_alpha_prime_and_the_sampler(tmp_path):
    data = trajectories()
    config = CQLConfig(weighting="rw", cql_lagrange=True, seed=3, **SMALL)
    straight = CQL(data, config).learn(30, progress=False)
    first = CQL(data, config).learn(30, progress=False, log_every=1, callback=lambda a, r: a.global_step < 15)
    assert first.global_step == 15
    first.save(tmp_path / "cql.pt")
    resumed = CQL.load(tmp_path / "cql.pt", dataset=data).learn(30, progress=False)
    assert resumed.global_step == 30
    for name, module in straight.modules().items():
        for (k, p), q in zip(module.state_dict().items(), resumed.modules()[name].state_dict().values()):
            assert torch.equal(p, q), (name, k)
    assert torch.equal(straight.log_alpha, resumed.log_alpha)
    assert torch.equal(straight.log_alpha_prime, resumed.log_alpha_prime)
    assert straight.log_alpha_prime.item() != 1.0  # it was trained, so the check above means something
    assert torch.equal(straight.sampler.sample_indices(64), resumed.sampler.sample_indices(64))


# --- learning direction ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_q_of_unseen_actions_is_pushed_below_the_datas():
    data = near_zero_actions()
    obs, seen = data.observations[:500], data.actions[:500]
    unseen = torch.rand(500, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def gap(cql_alpha: float) -> float:
        config = CQLConfig(cql_alpha=cql_alpha, batch_size=64, actor_hidden=(64, 64), critic_hidden=(64, 64))
        agent = CQL(data, config).learn(300, progress=False)
        with torch.no_grad():
            o = agent.obs_normalizer(obs)
            return (agent.critic(o, seen).mean() - agent.critic(o, unseen).mean()).item()

    conservative, plain = gap(10.0), gap(0.0)
    assert conservative > 1.0, conservative  # Q(s, a_data) well above Q(s, uniform actions)
    assert conservative > plain + 1.0, (conservative, plain)  # and the penalty is what put it there


# --- config ---------------------------------------------------------------------------------------------
def test_unknown_weighting_lists_the_names():
    with pytest.raises(ValueError, match="unknown weighting 'nope'; available: uniform, rw, aw, topk"):
        CQLConfig(weighting="nope")


@pytest.mark.parametrize(
    "bad",
    [
        dict(cql_n_actions=0),
        dict(cql_temp=0.0),
        dict(cql_alpha=-1.0),
        dict(alpha=0.0),
        dict(actor_learning_rate=0.0),
        dict(cql_clip_diff_min=1.0, cql_clip_diff_max=0.0),
        dict(tau=0.0),
    ],
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        CQLConfig(**bad)


def test_defaults_follow_corl_and_hong_et_al():
    config = CQLConfig()
    assert (config.actor_learning_rate, config.critic_learning_rate, config.cql_alpha, config.cql_n_actions) == (
        3e-5,
        3e-4,
        10.0,
        10,
    )
    assert config.actor_hidden == config.critic_hidden == (256, 256, 256)
    assert config.cql_importance_sample and not config.cql_lagrange and config.cql_target_action_gap == -1.0
    data = trajectories()
    assert CQL(data, CQLConfig(weighting="aw", **SMALL)).sampler.temperature == 0.2
    assert CQL(data, CQLConfig(weighting="rw", **SMALL)).sampler.temperature == 0.2
    assert CQL(data, CQLConfig(weighting="aw", temperature=0.5, **SMALL)).sampler.temperature == 0.5
    assert CQL(data, CQLConfig(**SMALL)).target_entropy == -2.0
