"""Tests of vecenvs.wrappers against a tiny native env and independent numpy computations."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from vecenvs.core import TorchVecEnv
from vecenvs.wrappers import (
    ClipAction,
    NormalizeObservation,
    NormalizeReward,
    RecordEpisodeStatistics,
    RescaleAction,
    RunningMeanStd,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ACT_LOW = np.array([-2.0, 0.5], dtype=np.float32)
ACT_HIGH = np.array([1.0, 3.0], dtype=np.float32)


class ToyEnv(TorchVecEnv):
    """A random walk that terminates when it leaves [-1, 1] and is truncated after 7 steps.

    Rewards vary in sign and size and episodes end by both termination and truncation, at
    different times in different rows, which is what the wrappers' bookkeeping must survive.
    The last action is stored so tests can see what reached the env.
    """

    state_dim = 2

    def __init__(self, num_envs: int = 4, device: str = "cpu", seed: int | None = 0, max_episode_steps: int = 7):
        obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        act_space = gym.spaces.Box(ACT_LOW, ACT_HIGH, (2,), np.float32)
        super().__init__(num_envs, obs_space, act_space, max_episode_steps, device=device, seed=seed)
        self.last_action: torch.Tensor | None = None

    def _initial_state(self, n, options):
        return self.uniform(n, [-0.5, 1.0], [0.5, 3.0])

    def _dynamics(self, state, action):
        self.last_action = action
        noise = torch.rand(state.shape[0], generator=self.generator, device=state.device, dtype=state.dtype) - 0.5
        pos = state[:, 0] + 0.8 * noise + 0.05 * (action[:, 0] + action[:, 1] - 0.75)
        next_state = torch.stack([pos, state[:, 1]], dim=1)
        reward = 10.0 * pos + state[:, 1]
        return next_state, reward.float(), pos.abs() > 1.0

    def _observe(self, state):
        return torch.stack([state[:, 0], state[:, 1], 5.0 * state[:, 0] ** 2], dim=1).float()


def random_actions(n: int, steps: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    low, high = torch.as_tensor(ACT_LOW), torch.as_tensor(ACT_HIGH)
    return [low + (high - low) * torch.rand(n, 2, generator=g) for _ in range(steps)]


def np_merge(mean, var, count, batch):
    """gymnasium's parallel-variance merge in numpy, as an independent reference."""
    b_mean, b_var, b_count = batch.mean(0), batch.var(0), batch.shape[0]
    delta = b_mean - mean
    tot = count + b_count
    new_mean = mean + delta * b_count / tot
    m2 = var * count + b_var * b_count + delta**2 * count * b_count / tot
    return new_mean, m2 / tot, tot


# --- RunningMeanStd ---------------------------------------------------------------------
def test_rms_matches_numpy_and_round_trips():
    rms = RunningMeanStd((3,))
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, size=(n, 3)) for n in (5, 1, 17, 8)]
    for b in batches:
        rms.update(torch.as_tensor(b))
    data = np.concatenate(batches)
    mean, var, count = np_merge(np.zeros(3), np.ones(3), 1e-4, data)  # prior merged with all data at once
    np.testing.assert_allclose(rms.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), var, rtol=1e-12)
    assert rms.count.item() == pytest.approx(count)
    assert rms.mean.dtype == torch.float64

    x = torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    y = rms.normalize(x, clip=0.5)
    assert y.dtype == torch.float32 and y.abs().max() <= 0.5
    np.testing.assert_allclose(rms.normalize(x).numpy(), (x.numpy() - mean) / np.sqrt(var + 1e-8), rtol=1e-5)

    other = RunningMeanStd((3,))
    other.load_state_dict(copy.deepcopy(rms.state_dict()))
    assert torch.equal(other.mean, rms.mean) and torch.equal(other.var, rms.var) and torch.equal(other.count, rms.count)


def test_rms_masked_update_equals_update_of_selected_rows():
    x = torch.randn(6, 2, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, False, False])
    a, b = RunningMeanStd((2,)), RunningMeanStd((2,))
    a.update(x, mask)
    b.update(x[mask])
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.var, b.var)
    a.update(x, torch.zeros(6, dtype=torch.bool))  # an empty mask changes nothing
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.count, b.count)


def test_rms_wrong_shape_load_raises():
    rms = RunningMeanStd((3,))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        rms.load_state_dict(RunningMeanStd((4,)).state_dict())
    with pytest.raises(ValueError):
        rms.update(torch.zeros(5, 4))


# --- NormalizeObservation ---------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_normalize_observation_shared_stats_and_final_obs(device):
    n, steps = 4, 40
    raw = ToyEnv(n, device=device, seed=3)
    env = NormalizeObservation(ToyEnv(n, device=device, seed=3), clip=None)
    raw_obs, _ = raw.reset()
    obs, _ = env.reset()
    seen = [raw_obs.cpu().numpy()]
    finals = 0
    for a in random_actions(n, steps):
        a = a.to(device)
        raw_obs, _, _, _, raw_info = raw.step(a)
        obs, _, _, _, info = env.step(a)
        seen.append(raw_obs.cpu().numpy())
        # obs and final_obs of a step are normalised with the same (just updated) statistics
        mean, std = env.rms.mean.cpu().numpy(), np.sqrt(env.rms.var.cpu().numpy() + 1e-8)
        np.testing.assert_allclose(obs.cpu().numpy(), (raw_obs.cpu().numpy() - mean) / std, rtol=1e-5, atol=1e-5)
        done = info["_final_obs"].cpu().numpy()
        finals += done.sum()
        np.testing.assert_allclose(
            info["final_obs"].cpu().numpy()[done], (raw_info["final_obs"].cpu().numpy()[done] - mean) / std, rtol=1e-5, atol=1e-5
        )
        assert obs.device.type == device and obs.dtype == torch.float32
    assert finals > 0
    data = np.concatenate(seen).astype(np.float64)
    mean, var, _ = np_merge(np.zeros(3), np.ones(3), 1e-4, data)
    np.testing.assert_allclose(env.rms.mean.cpu().numpy(), mean, rtol=1e-9)
    np.testing.assert_allclose(env.rms.var.cpu().numpy(), var, rtol=1e-9)
    assert env.rms.count.item() == pytest.approx(n * (steps + 1) + 1e-4)


def test_normalize_observation_frozen_and_shared_rms():
    rms = RunningMeanStd((3,))
    env = NormalizeObservation(ToyEnv(seed=0), rms=rms)
    assert env.rms is rms
    env.reset()
    for a in random_actions(4, 5):
        env.step(a)
    before = copy.deepcopy(rms.state_dict())
    env.freeze()
    assert env.update is False
    obs, _ = env.reset()
    for a in random_actions(4, 5, seed=2):
        obs, *_ = env.step(a)
    for k, v in before.items():
        assert torch.equal(rms.state_dict()[k], v), k
    assert env.single_observation_space.high[0] == 10.0
    env.unfreeze()
    env.step(random_actions(4, 1)[0])
    assert rms.count > before["count"]
    with pytest.raises(ValueError, match="shape"):
        NormalizeObservation(ToyEnv(), rms=RunningMeanStd((2,)))


# --- NormalizeReward --------------------------------------------------------------------
def reference_normalized_rewards(rewards, dones, gamma, clip, eps):
    """Hand computation in numpy: accumulate, update, scale, then zero finished returns."""
    ret = np.zeros(rewards.shape[1])
    mean, var, count = 0.0, 1.0, 1e-4
    out = []
    for r, d in zip(rewards, dones):
        ret = ret * gamma + r
        mean, var, count = np_merge(mean, var, count, ret)
        out.append(np.clip(r / np.sqrt(var + eps), -clip, clip))
        ret = np.where(d, 0.0, ret)
    return np.stack(out), var


def test_normalize_reward_matches_hand_computation_and_resets_on_done():
    n, steps, gamma = 4, 60, 0.9
    raw = ToyEnv(n, seed=5)
    env = NormalizeReward(ToyEnv(n, seed=5), gamma=gamma, clip=3.0)
    raw.reset()
    env.reset()
    raw_r, dones, terms, truncs, got = [], [], 0, 0, []
    for a in random_actions(n, steps):
        _, r, te, tr, _ = raw.step(a)
        _, rn, te2, tr2, _ = env.step(a)
        assert torch.equal(te, te2) and torch.equal(tr, tr2)
        assert rn.dtype == torch.float32
        raw_r.append(r.double().numpy())
        dones.append((te | tr).numpy())
        got.append(rn.numpy())
        terms += int(te.sum())
        truncs += int(tr.sum())
        if (te | tr).any():
            assert torch.all(env.returns[te | tr] == 0)
    assert terms > 0 and truncs > 0, "the trajectory must exercise both kinds of episode end"
    expected, var = reference_normalized_rewards(np.stack(raw_r), np.stack(dones), gamma, 3.0, 1e-8)
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-5, atol=1e-6)
    assert env.rms.var.item() == pytest.approx(var, rel=1e-10)
    # The wrong order (zeroing before adding the done step's reward) gives other numbers.
    shifted = np.concatenate([np.zeros((1, n), bool), np.stack(dones)[:-1]])
    wrong, _ = reference_normalized_rewards(np.stack(raw_r), shifted, gamma, 3.0, 1e-8)
    assert not np.allclose(wrong, expected, rtol=1e-5, atol=1e-6)


def test_normalize_reward_frozen():
    env = NormalizeReward(ToyEnv(seed=0))
    env.reset()
    for a in random_actions(4, 5):
        env.step(a)
    env.freeze()
    var, count = env.rms.var.clone(), env.rms.count.clone()
    for a in random_actions(4, 5, seed=3):
        env.step(a)
    assert torch.equal(env.rms.var, var) and torch.equal(env.rms.count, count)


# --- action wrappers --------------------------------------------------------------------
def test_rescale_action_maps_bounds_exactly_and_clips():
    inner = ToyEnv(3, seed=0)
    env = RescaleAction(inner)
    assert np.all(env.single_action_space.low == -1) and np.all(env.single_action_space.high == 1)
    assert env.action_space.shape == (3, 2)
    env.reset()
    env.step(torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    sent = inner.last_action
    assert torch.equal(sent[0], torch.as_tensor(ACT_LOW)) and torch.equal(sent[1], torch.as_tensor(ACT_HIGH))
    torch.testing.assert_close(sent[2], torch.as_tensor((ACT_LOW + ACT_HIGH) / 2))
    env.step(torch.tensor([[-5.0, 7.0], [0.5, -0.5], [2.0, -3.0]]))
    sent = inner.last_action
    torch.testing.assert_close(sent[0], torch.as_tensor([ACT_LOW[0], ACT_HIGH[1]]))
    torch.testing.assert_close(sent[1], torch.as_tensor(ACT_LOW + (ACT_HIGH - ACT_LOW) * np.array([0.75, 0.25], np.float32)))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(3, 1))  # would broadcast silently without the wrapper's own check
    custom = RescaleAction(ToyEnv(1, seed=0), low=0.0, high=4.0)
    custom.reset()
    custom.step(torch.tensor([[0.0, 4.0]]))
    assert torch.equal(custom.unwrapped.last_action[0], torch.as_tensor([ACT_LOW[0], ACT_HIGH[1]]))


def test_clip_action_and_box_only():
    inner = ToyEnv(2, seed=0)
    env = ClipAction(inner)
    assert np.all(np.isinf(env.single_action_space.high))
    env.reset()
    env.step(torch.tensor([[-9.0, 9.0], [0.0, 1.0]]))
    torch.testing.assert_close(inner.last_action, torch.tensor([[ACT_LOW[0], ACT_HIGH[1]], [0.0, 1.0]]))

    class DiscreteEnv(ToyEnv):
        def __init__(self):
            super().__init__(2)
            self.single_action_space = gym.spaces.Discrete(3)

    for wrapper in (ClipAction, RescaleAction):
        with pytest.raises(TypeError, match="Box"):
            wrapper(DiscreteEnv())


# --- RecordEpisodeStatistics ------------------------------------------------------------
def test_record_episode_statistics_matches_hand_rolled_sums():
    n, steps = 4, 50
    raw = ToyEnv(n, seed=7)
    env = RecordEpisodeStatistics(ToyEnv(n, seed=7))
    raw.reset()
    env.reset()
    ret, length, episodes = np.zeros(n), np.zeros(n, dtype=np.int64), 0
    for a in random_actions(n, steps):
        _, r, te, tr, _ = raw.step(a)
        _, r2, _, _, info = env.step(a)
        assert torch.equal(r, r2)  # the rewards pass through untouched
        ret += r.double().numpy()
        length += 1
        done = (te | tr).numpy()
        assert np.array_equal(info["_episode"].numpy(), done)
        assert info["episode"]["r"].dtype == torch.float32 and info["episode"]["l"].dtype == torch.int64
        np.testing.assert_allclose(info["episode"]["r"].numpy()[done], ret[done], rtol=1e-6)
        assert np.array_equal(info["episode"]["l"].numpy()[done], length[done])
        episodes += done.sum()
        ret[done], length[done] = 0.0, 0
    assert episodes >= n  # several autoresets happened


# --- the whole chain --------------------------------------------------------------------
def make_chain(seed: int):
    env = RecordEpisodeStatistics(ToyEnv(4, seed=seed))
    env = RescaleAction(env)
    env = NormalizeObservation(env)
    return NormalizeReward(env)


def test_chain_state_dict_round_trip_resumes_exactly():
    env = make_chain(seed=11)
    env.reset()
    actions = [2 * a / 3 - 0.5 for a in random_actions(4, 30)]  # roughly in [-1, 1]
    for a in actions[:13]:
        env.step(a)
    saved = copy.deepcopy(env.state_dict())
    assert set(saved) == {"env", "NormalizeReward"}
    expected = [env.step(a) for a in actions[13:]]

    resumed = make_chain(seed=999)  # different seed: everything must come from the state
    resumed.load_state_dict(saved)
    for a, (obs, r, te, tr, info) in zip(actions[13:], expected):
        obs2, r2, te2, tr2, info2 = resumed.step(a)
        assert torch.equal(obs, obs2) and torch.equal(r, r2) and torch.equal(te, te2) and torch.equal(tr, tr2)
        assert torch.equal(info["episode"]["r"], info2["episode"]["r"])
        assert torch.equal(info["final_obs"], info2["final_obs"])


def test_partial_reset_touches_only_masked_rows():
    env = NormalizeReward(NormalizeObservation(RecordEpisodeStatistics(ToyEnv(4, seed=2))))
    env.reset()
    for a in random_actions(4, 3):
        env.step(a)
    stats = env.env.env  # RecordEpisodeStatistics
    returns, lengths, disc = stats.episode_returns.clone(), stats.episode_lengths.clone(), env.returns.clone()
    count = env.env.rms.count.clone()
    mask = torch.tensor([True, False, False, True])
    assert torch.all(lengths > 0) and torch.all(disc != 0)  # so that zeroing is visible
    env.reset(options={"reset_mask": mask})
    for now, before in ((stats.episode_returns, returns), (stats.episode_lengths, lengths), (env.returns, disc)):
        assert torch.all(now[mask] == 0) and torch.equal(now[~mask], before[~mask])
    assert env.env.rms.count.item() == pytest.approx(count.item() + 2)  # only the two new observations
