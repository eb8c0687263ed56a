"""GAE and RolloutBuffer: hand-computed cases, a naive reference, batching and validation."""

from __future__ import annotations

import pytest
import torch

from policyopt.buffers import RolloutBuffer, gae, stored_of

GAMMA, LAM = 0.9, 0.8
GL = GAMMA * LAM


def _fill(buf: RolloutBuffer, rewards, values, terminated, truncated, obs=None, stored=None) -> None:
    """Add a [T, N] rollout step by step (obs default to zeros)."""
    T, N = rewards.shape
    for t in range(T):
        o = torch.zeros(N, *buf.obs_shape) if obs is None else obs[t]
        s = {"log_prob": torch.zeros(N)} if stored is None else {k: v[t] for k, v in stored.items()}
        buf.add(o, torch.zeros(N, *buf.action_shape), rewards[t], terminated[t], truncated[t], values[t], o, s)


def _advantages(rewards, values, terminated, truncated, last_values, final_values, **kw):
    T, N = rewards.shape
    buf = RolloutBuffer(T, N, (1,), (1,), "cpu")
    _fill(buf, rewards, values, terminated, truncated)
    buf.compute_advantages(last_values, final_values, GAMMA, LAM, **kw)
    return buf.advantages.clone(), buf.returns.clone()


def col(*xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype)[:, None]


# Shared small case: T=3, r=[1,2,3], V=[.5,1,1.5], V(obs_T)=2.
R, V, LAST = col(1.0, 2.0, 3.0), col(0.5, 1.0, 1.5), torch.tensor([2.0])
NO = col(False, False, False, dtype=torch.bool)
FINAL = torch.tensor([[0.0], [7.0], [0.0]])  # V(final_obs); only row 1 is ever used below


def test_gae_plain_episode():
    adv, ret = _advantages(R, V, NO, NO, LAST, FINAL)
    # deltas: 1+.9*1-.5=1.4, 2+.9*1.5-1=2.35, 3+.9*2-1.5=3.3
    a2 = 3.3
    a1 = 2.35 + GL * a2
    a0 = 1.4 + GL * a1
    torch.testing.assert_close(adv, col(a0, a1, a2))
    torch.testing.assert_close(ret, adv + V)


def test_gae_termination_does_not_bootstrap_and_new_episode_starts():
    term = col(False, True, False, dtype=torch.bool)
    adv, _ = _advantages(R, V, term, NO, LAST, FINAL)
    # t=1 terminal: delta = 2 - 1 = 1 (V(final_obs)=7 ignored), recursion cut; t=2 is a new episode.
    torch.testing.assert_close(adv, col(1.4 + GL * 1.0, 1.0, 3.3))


def test_gae_truncation_bootstraps_from_final_obs():
    trunc = col(False, True, False, dtype=torch.bool)
    adv, _ = _advantages(R, V, NO, trunc, LAST, FINAL)
    # t=1 truncated: delta = 2 + .9*V(final_obs)=7 - 1 = 7.3, recursion cut.
    torch.testing.assert_close(adv, col(1.4 + GL * 7.3, 7.3, 3.3))


def test_truncation_as_termination_reproduces_cleanrl_hand_computed():
    trunc = col(False, True, False, dtype=torch.bool)
    adv_clean, _ = _advantages(R, V, NO, trunc, LAST, FINAL, truncation_as_termination=True)
    torch.testing.assert_close(adv_clean, col(1.4 + GL * 1.0, 1.0, 3.3))
    adv_clean_none, _ = _advantages(R, V, NO, trunc, LAST, None, truncation_as_termination=True)
    torch.testing.assert_close(adv_clean_none, adv_clean)
    adv_default, _ = _advantages(R, V, NO, trunc, LAST, FINAL)
    # only the truncated episode (steps 0..1) changes; the next episode is identical
    assert (adv_default[:2] != adv_clean[:2]).all()
    torch.testing.assert_close(adv_default[2:], adv_clean[2:])
    # and without any truncation both modes agree
    torch.testing.assert_close(
        _advantages(R, V, NO, NO, LAST, FINAL)[0],
        _advantages(R, V, NO, NO, LAST, FINAL, truncation_as_termination=True)[0],
    )


def test_gae_multiple_envs_are_independent_columns():
    term = col(False, True, False, dtype=torch.bool)
    trunc = col(False, True, False, dtype=torch.bool)
    rewards = torch.cat([R, R, R], 1)
    values = torch.cat([V, V, V], 1)
    terminated = torch.cat([NO, term, NO], 1)
    truncated = torch.cat([NO, NO, trunc], 1)
    adv, _ = _advantages(rewards, values, terminated, truncated, LAST.repeat(3), FINAL.repeat(1, 3))
    expected = torch.cat([col(1.4 + GL * (2.35 + GL * 3.3), 2.35 + GL * 3.3, 3.3), col(2.12, 1.0, 3.3), col(6.656, 7.3, 3.3)], 1)
    torch.testing.assert_close(adv, expected)


def _naive(rewards, values, terminated, truncated, last, final):
    """Per env, per step: A_t = sum_l (gamma lam)^l delta_{t+l} up to the end of t's episode."""
    T, N = rewards.shape
    out = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        deltas = []
        for t in range(T):
            done = bool(terminated[t, n] or truncated[t, n])
            nxt = float(final[t, n]) if done else (float(values[t + 1, n]) if t + 1 < T else float(last[n]))
            boot = 0.0 if bool(terminated[t, n]) else GAMMA * nxt
            deltas.append(float(rewards[t, n]) + boot - float(values[t, n]))
        for t in range(T):
            acc, coef = 0.0, 1.0
            for k in range(t, T):
                acc += coef * deltas[k]
                if terminated[k, n] or truncated[k, n]:
                    break
                coef *= GL
            out[t, n] = acc
    return out


def _cleanrl(rewards, values, dones, next_value):
    """CleanRL's ppo_continuous_action.py loop verbatim; its dones[t] flags obs_t, i.e. our done[t-1]."""
    T = rewards.shape[0]
    cl_dones = torch.cat([torch.zeros_like(dones[:1]), dones[:-1]]).float()
    next_done = dones[-1].float()
    advantages = torch.zeros_like(rewards)
    lastgaelam = 0
    for t in reversed(range(T)):
        if t == T - 1:
            nextnonterminal, nextvalues = 1.0 - next_done, next_value
        else:
            nextnonterminal, nextvalues = 1.0 - cl_dones[t + 1], values[t + 1]
        delta = rewards[t] + GAMMA * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + GAMMA * LAM * nextnonterminal * lastgaelam
    return advantages


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_naive_loop_and_cleanrl_on_random_data(seed):
    g = torch.Generator().manual_seed(seed)
    T, N = 37, 5
    rewards = torch.randn(T, N, generator=g)
    values = torch.randn(T, N, generator=g)
    terminated = torch.rand(T, N, generator=g) < 0.1
    truncated = (torch.rand(T, N, generator=g) < 0.1) & ~terminated
    last = torch.randn(N, generator=g)
    final = torch.randn(T, N, generator=g)
    adv, ret = _advantages(rewards, values, terminated, truncated, last, final)
    torch.testing.assert_close(adv.double(), _naive(rewards, values, terminated, truncated, last, final), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ret, adv + values)
    adv_clean, _ = _advantages(rewards, values, terminated, truncated, last, final, truncation_as_termination=True)
    torch.testing.assert_close(adv_clean, _cleanrl(rewards, values, terminated | truncated, last), atol=1e-5, rtol=1e-5)
    # the functional form agrees with the buffer
    nv = torch.where(terminated | truncated, final, torch.cat([values[1:], last[None]]))
    torch.testing.assert_close(gae(rewards, values, nv, terminated, terminated | truncated, GAMMA, LAM)[0], adv)


# --- RolloutBuffer --------------------------------------------------------------------------
def _id_buffer(T=6, N=4, device="cpu"):
    """A full buffer whose obs/actions/stored encode the flat sample index t*N+n."""
    buf = RolloutBuffer(T, N, (2,), (), device, action_dtype=torch.int64)
    for t in range(T):
        ids = torch.arange(t * N, (t + 1) * N, device=device)
        obs = torch.stack([ids.float(), -ids.float()], 1)
        stored = {"log_prob": ids.float() * 0.5, "chain": ids[:, None].float().repeat(1, 3)}
        z = torch.zeros(N, device=device)
        b = torch.zeros(N, dtype=torch.bool, device=device)
        buf.add(obs, ids, z, b, b, ids.float(), obs, stored)
    buf.compute_advantages(torch.zeros(N, device=device), torch.zeros(T, N, device=device), GAMMA, LAM)
    return buf


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_minibatches_cover_each_sample_once_and_keep_device(device):
    buf = _id_buffer(device=device)
    for num_mb in (1, 4, 5):  # 5 does not divide 24: sizes differ by at most one
        batches = list(buf.minibatches(num_mb))
        assert len(batches) == num_mb
        ids = torch.cat([b["obs"][:, 0] for b in batches]).long()
        assert sorted(ids.tolist()) == list(range(buf.num_samples))
        sizes = [len(b["obs"]) for b in batches]
        assert max(sizes) - min(sizes) <= 1
        for b in batches:
            assert set(b) == {"obs", "actions", "values", "advantages", "returns", "stored.log_prob", "stored.chain"}
            assert all(v.device == buf.device for v in b.values())
            # every field of a row belongs to the same sample
            i = b["obs"][:, 0].long()
            assert torch.equal(b["actions"], i) and b["actions"].dtype == torch.int64
            torch.testing.assert_close(b["stored.log_prob"], i.float() * 0.5)
            assert b["stored.chain"].shape == (len(i), 3)
            torch.testing.assert_close(b["values"], i.float())
            assert set(stored_of(b)) == {"log_prob", "chain"}
            assert buf.stored_of(b)["log_prob"] is b["stored.log_prob"]


def test_minibatch_shuffling_is_reproducible_with_a_seeded_generator():
    buf = _id_buffer()

    def order(seed: int) -> torch.Tensor:
        return torch.cat([b["obs"][:, 0] for b in buf.minibatches(3, torch.Generator().manual_seed(seed))])

    assert torch.equal(order(0), order(0))
    assert not torch.equal(order(0), order(1))
    assert not torch.equal(order(0), torch.arange(buf.num_samples).float())


def test_flat_shapes_and_layout():
    buf = _id_buffer(T=3, N=2)
    flat = buf.flat()
    assert flat["obs"].shape == (6, 2) and flat["actions"].shape == (6,) and flat["stored.chain"].shape == (6, 3)
    assert torch.equal(flat["actions"], torch.arange(6))  # time-major: sample t*N+n
    assert buf.full and buf.num_samples == 6


def test_add_validation_full_and_reset():
    T, N = 2, 3
    buf = RolloutBuffer(T, N, (4,), (2,), "cpu")
    z, b = torch.zeros(N), torch.zeros(N, dtype=torch.bool)
    good = dict(
        obs=torch.zeros(N, 4),
        actions=torch.zeros(N, 2),
        rewards=z,
        terminated=b,
        truncated=b,
        values=z,
        final_obs=torch.zeros(N, 4),
        stored={"log_prob": z},
    )
    with pytest.raises(ValueError, match=r"obs: expected shape \(3, 4\), got \(3, 5\)"):
        buf.add(**{**good, "obs": torch.zeros(N, 5)})
    with pytest.raises(ValueError, match=r"values: expected device cpu, got meta"):
        buf.add(**{**good, "values": torch.zeros(N, device="meta")})
    with pytest.raises(ValueError, match="stored"):
        buf.add(**{**good, "stored": {"log_prob": torch.zeros(N + 1)}})
    assert buf.pos == 0 and buf.stored == {}
    with pytest.raises(RuntimeError, match="not full"):
        buf.minibatches(2)
    buf.add(**good)
    with pytest.raises(ValueError, match="keys"):
        buf.add(**{**good, "stored": {"other": z}})
    buf.add(**good)
    assert buf.full
    with pytest.raises(RuntimeError, match="full"):
        buf.add(**good)
    with pytest.raises(RuntimeError, match="compute_advantages"):
        buf.flat()
    ptrs = [buf.obs.data_ptr(), buf.stored["log_prob"].data_ptr()]
    buf.reset()
    assert buf.pos == 0 and not buf.full
    buf.add(**good)
    assert [buf.obs.data_ptr(), buf.stored["log_prob"].data_ptr()] == ptrs
    int_buf = RolloutBuffer(T, N, (4,), (), "cpu", action_dtype=torch.int64)
    with pytest.raises(ValueError, match="dtype"):
        int_buf.add(**{**good, "actions": torch.zeros(N)})


def test_add_detaches_and_compute_requires_final_values():
    T, N = 1, 2
    buf = RolloutBuffer(T, N, (1,), (1,), "cpu")
    v = torch.ones(N, requires_grad=True)
    z, b = torch.zeros(N), torch.zeros(N, dtype=torch.bool)
    buf.add(torch.zeros(N, 1), torch.zeros(N, 1), z, b, b, v * 2, torch.zeros(N, 1), {"log_prob": v * 3})
    assert not buf.values.requires_grad and not buf.stored["log_prob"].requires_grad
    with pytest.raises(ValueError, match="final_values"):
        buf.compute_advantages(z, None, GAMMA, LAM)
