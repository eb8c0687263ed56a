"""Tests of vecenvs.wrappers against a tiny native env and independent numpy computations."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from policyopt.vecenvs.core import TorchVecEnv
from policyopt.vecenvs.wrappers import (
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


# --- bitwise equality with the plain all-tensor computations ----------------------------
# The wrappers take shortcuts to cut per-step dispatch (Python-float scalars, in-place ops,
# cached std, one-row batches...). These tests pin their numbers, bit for bit, to the plain
# formulas written out op by op below, on streams with all the cases the shortcuts special-case.
class ReferenceRMS:
    """The parallel-variance merge in plain float64 tensor ops, as the wrappers first computed it."""

    def __init__(self, shape=(), epsilon=1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.var = torch.ones(shape, dtype=torch.float64)
        self.count = torch.tensor(epsilon, dtype=torch.float64)

    def update(self, x, mask=None):
        x = x.to(torch.float64)
        if mask is None:
            batch_count = float(x.shape[0])
            batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        else:
            w = mask.to(torch.float64).reshape(-1, *([1] * (x.dim() - 1)))
            batch_count = w.sum()
            n = batch_count.clamp_min(1.0)
            batch_mean = (w * x).sum(0) / n
            batch_var = (w * (x - batch_mean) ** 2).sum(0) / n
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * (batch_count / total)
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        self.var = m2 / total
        self.count = total

    def normalize(self, x, clip=None, epsilon=1e-8):
        y = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + epsilon)
        return (y if clip is None else y.clamp(-clip, clip)).to(torch.float32)


def assert_bitwise(got, expected):
    """Same dtype, shape and bits (NaNs only need to be NaN in the same places)."""
    got, expected = torch.as_tensor(got), torch.as_tensor(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got, expected)
    if not got.dtype.is_floating_point:
        assert torch.equal(got, expected), (got, expected)
        return
    nan_g, nan_e = torch.isnan(got), torch.isnan(expected)
    assert torch.equal(nan_g, nan_e), (got, expected)
    bits = {torch.float64: torch.int64, torch.float32: torch.int32}[got.dtype]
    same = got.masked_fill(nan_g, 0).view(bits) == expected.masked_fill(nan_e, 0).view(bits)
    assert bool(same.all()), (got, expected)  # also tells -0.0 from 0.0


def assert_rms_bitwise(rms, ref):
    assert_bitwise(rms.mean, ref.mean)
    assert_bitwise(rms.var, ref.var)
    assert_bitwise(rms.count, ref.count)


@pytest.mark.parametrize("shape", [(), (3,)])
def test_rms_bitwise_equals_plain_merge(shape):
    g = torch.Generator().manual_seed(0)
    rms, ref = RunningMeanStd(shape), ReferenceRMS(shape)
    for t in range(300):
        n = [1, 1, 2, 5, 16, 64][t % 6]
        scale = [1e-3, 1.0, 50.0, 1e6][t % 4]
        x = (torch.randn(n, *shape, generator=g, dtype=torch.float64) * scale + 3.0).to(torch.float32 if t % 3 else torch.float64)
        mask = torch.rand(n, generator=g) < 0.5 if t % 7 == 3 else None  # masked updates in between
        rms.update(x, mask)
        ref.update(x, mask)
        assert_rms_bitwise(rms, ref)
        if t % 11 == 0:  # normalize with and without clip, float32 and float64 input
            for clip in (None, 0.7, 10.0):
                assert_bitwise(rms.normalize(x, clip=clip), ref.normalize(x, clip=clip))
    assert rms.count.item() > 1000


def test_rms_bitwise_when_the_batch_dominates():
    # Each batch far from the running mean: the delta**2 term of the merge carries the
    # variance, so any other rounding of its scalar factor shows in the last bits.
    for shape in ((), (3,)):
        g = torch.Generator().manual_seed(2)
        rms, ref = RunningMeanStd(shape), ReferenceRMS(shape)
        for t in range(40):
            n = (1, 1, 2, 3, 4, 6, 8, 12, 16, 24)[t % 10]
            x = 100.0 * t + torch.rand(n, *shape, generator=g, dtype=torch.float64)
            rms.update(x)
            ref.update(x)
            assert_rms_bitwise(rms, ref)
            std = torch.sqrt(ref.var + 1e-8)
            assert_bitwise(rms._mean_std(torch.device("cpu"), 1e-8)[1], std)
            if shape == ():
                assert_bitwise(torch.tensor(rms._host_std(1e-8), dtype=torch.float64), std)


SPECIAL = [float("inf"), -float("inf"), float("nan"), 1e308, -1e308, 5e-324, -5e-324, 0.0, -0.0]


@pytest.mark.parametrize("shape", [(), (4,)])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("value", SPECIAL)
def test_rms_bitwise_with_special_values(shape, n, value):
    # One special value (non-finite, huge, subnormal, a signed zero) in an otherwise ordinary
    # stream, in a one-row or a larger batch, then ordinary batches again.
    g = torch.Generator().manual_seed(3)
    rms, ref = RunningMeanStd(shape), ReferenceRMS(shape)
    for t in range(8):
        if t == 3:
            x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
            x.view(-1)[0] = value
        else:
            x = 2.0 + torch.randn(n, *shape, generator=g, dtype=torch.float64)
        rms.update(x)
        ref.update(x)
        assert_rms_bitwise(rms, ref)
        assert_bitwise(rms.normalize(x, clip=5.0), ref.normalize(x, clip=5.0))
    # zeros of either sign into a zero running mean of either sign
    for mean in (0.0, -0.0):
        for x in (0.0, -0.0):
            rms, ref = RunningMeanStd(shape), ReferenceRMS(shape)
            rms.mean = torch.full(shape, mean, dtype=torch.float64)
            ref.mean = torch.full(shape, mean, dtype=torch.float64)
            batch = torch.full((n, *shape), x, dtype=torch.float64)
            rms.update(batch)
            ref.update(batch)
            assert_rms_bitwise(rms, ref)


def test_rms_count_and_stats_stay_tensors_that_can_be_changed():
    rms, ref = RunningMeanStd((2,)), ReferenceRMS((2,))
    x = torch.randn(4, 2, dtype=torch.float64)
    rms.update(x)
    ref.update(x)
    count = rms.count
    assert isinstance(count, torch.Tensor) and count.dtype == torch.float64 and count.shape == ()
    count.add_(10.0)  # changed in place by a reader: the next merge must use it
    ref.count.add_(10.0)
    rms.var.mul_(3.0)  # so must normalize (its cached std is then stale)
    ref.var.mul_(3.0)
    assert_bitwise(rms.normalize(x), ref.normalize(x))
    rms.update(x)
    ref.update(x)
    assert_rms_bitwise(rms, ref)
    rms.count = torch.tensor(2.0, dtype=torch.float64)  # and assigned
    ref.count = torch.tensor(2.0, dtype=torch.float64)
    rms.update(x[:1])
    ref.update(x[:1])
    assert_rms_bitwise(rms, ref)
    other = RunningMeanStd((2,))
    other.load_state_dict(copy.deepcopy(rms.state_dict()))
    other.update(x)
    ref.update(x)
    assert_rms_bitwise(other, ref)
    # the statistics never record autograd history, even from an input that requires grad
    y = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    other.update(y)
    assert not (other.mean.requires_grad or other.var.requires_grad or other.count.requires_grad)


def reference_chain_run(n, seed, actions, gamma, clip_obs, clip_rew, freeze_at, reset_at, reset_mask):
    """RecordEpisodeStatistics -> NormalizeObservation -> NormalizeReward -> ClipAction, computed
    from an unwrapped env with the plain formulas; yields (obs, reward, terminated, truncated, info)."""
    raw = ToyEnv(n, seed=seed)
    obs_rms, ret_rms = ReferenceRMS((3,)), ReferenceRMS(())
    ep_ret = torch.zeros(n, dtype=torch.float64)
    ep_len = torch.zeros(n, dtype=torch.int64)
    ret = torch.zeros(n, dtype=torch.float64)
    obs, _ = raw.reset()
    obs_rms.update(obs)
    yield "reset", obs_rms.normalize(obs, clip_obs)
    low, high = torch.as_tensor(ACT_LOW), torch.as_tensor(ACT_HIGH)
    for t, a in enumerate(actions):
        update = t < freeze_at
        if t == reset_at:
            ep_ret = torch.where(reset_mask, torch.zeros_like(ep_ret), ep_ret)
            ep_len = torch.where(reset_mask, torch.zeros_like(ep_len), ep_len)
            ret = torch.where(reset_mask, torch.zeros_like(ret), ret)
            obs, _ = raw.reset(options={"reset_mask": reset_mask})
            if update:
                obs_rms.update(obs, reset_mask)
            yield "reset", obs_rms.normalize(obs, clip_obs)
        obs, r, te, tr, info = raw.step(torch.clamp(a, low, high))
        done = te | tr
        ep_ret = ep_ret + r.to(torch.float64)
        ep_len = ep_len + 1
        episode = {"r": ep_ret.to(torch.float32), "l": ep_len}
        ep_ret = torch.where(done, torch.zeros_like(ep_ret), ep_ret)
        ep_len = torch.where(done, torch.zeros_like(ep_len), ep_len)
        if update:
            obs_rms.update(obs)
        final = obs_rms.normalize(info["final_obs"], clip_obs)
        r64 = r.to(torch.float64)
        ret = ret * gamma + r64
        if update:
            ret_rms.update(ret)
        scaled = r64 / torch.sqrt(ret_rms.var + 1e-8)
        if clip_rew is not None:
            scaled = scaled.clamp(-clip_rew, clip_rew)
        ret = torch.where(done, torch.zeros_like(ret), ret)
        yield "step", (obs_rms.normalize(obs, clip_obs), scaled.to(torch.float32), te, tr, final, episode, done)
    yield "state", (obs_rms, ret_rms, ep_ret, ep_len, ret)


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("clip", [10.0, None])
def test_chain_bitwise_equals_plain_formulas(n, clip):
    gamma, steps, freeze_at, reset_at = 0.9, 80, 60, 25
    g = torch.Generator().manual_seed(n)
    actions = [4.0 * torch.randn(n, 2, generator=g) for _ in range(steps)]  # often out of bounds
    reset_mask = torch.arange(n) % 2 == 0
    stats = RecordEpisodeStatistics(ToyEnv(n, seed=13))
    nobs = NormalizeObservation(stats, clip=clip)
    nrew = NormalizeReward(nobs, gamma=gamma, clip=clip)
    env = ClipAction(nrew)
    reference = reference_chain_run(n, 13, actions, gamma, clip, clip, freeze_at, reset_at, reset_mask)
    kind, expected = next(reference)
    assert_bitwise(env.reset()[0], expected)
    terms = truncs = 0
    for t, a in enumerate(actions):
        if t == freeze_at:
            nobs.freeze()
            nrew.freeze()
        if t == reset_at:
            kind, expected = next(reference)
            assert kind == "reset"
            assert_bitwise(env.reset(options={"reset_mask": reset_mask})[0], expected)
        kind, (obs_e, rew_e, te_e, tr_e, final_e, episode_e, done_e) = next(reference)
        obs, rew, te, tr, info = env.step(a)
        for got, want in (
            (obs, obs_e),
            (rew, rew_e),
            (te, te_e),
            (tr, tr_e),
            (info["final_obs"], final_e),
            (info["episode"]["r"], episode_e["r"]),
            (info["episode"]["l"], episode_e["l"]),
            (info["_episode"], done_e),
        ):
            assert_bitwise(got, want)
        terms += int(te.sum())
        truncs += int(tr.sum())
    assert terms > 0 and truncs > 0
    kind, (obs_rms, ret_rms, ep_ret, ep_len, ret) = next(reference)
    assert kind == "state"
    assert_rms_bitwise(nobs.rms, obs_rms)
    assert_rms_bitwise(nrew.rms, ret_rms)
    for got, want in ((stats.episode_returns, ep_ret), (stats.episode_lengths, ep_len), (nrew.returns, ret)):
        assert_bitwise(got, want)
