"""Index samplers (buffers/samplers.py): uniform, RW, AW and top-k trajectory reweighting
(Hong et al., ICLR 2023), on small datasets whose expected probabilities are known exactly."""

import ast
import io
import math

import numpy as np
import pytest
import torch

from policyopt.buffers.dataset import OfflineDataset
import policyopt.buffers.samplers as samplers_module
from policyopt.buffers.samplers import (
    SAMPLERS,
    IndexSampler,
    TrajectoryWeightedSampler,
    UniformSampler,
    episode_advantages,
    make_sampler,
    trajectory_masses,
)

LENGTHS = [3, 1, 4, 2, 5, 3, 2, 4]
RETURNS = [2.0, -1.0, 5.0, 0.5, 3.0, -1.0, 1.0, 4.0]  # min -1, max 5: Ĝ = (G + 1) / 6


def make_dataset(lengths=LENGTHS, returns=RETURNS, s0=None, obs_dim=3, device="cpu"):
    """Episodes of the given lengths; the whole return is the first step's reward (exact in float32),
    the first observation is ``s0[i]`` when given, the other observations are random."""
    n = int(sum(lengths))
    s0 = None if s0 is None else np.asarray(s0, dtype=np.float32).reshape(len(lengths), -1)
    obs_dim = obs_dim if s0 is None else s0.shape[1]
    obs = np.random.default_rng(0).standard_normal((n, obs_dim)).astype(np.float32)
    rewards, terminals = np.zeros(n, np.float32), np.zeros(n, bool)
    start = 0
    for i, (length, g) in enumerate(zip(lengths, returns)):
        rewards[start] = g
        terminals[start + length - 1] = True
        if s0 is not None:
            obs[start] = s0[i]
        start += length
    actions = np.random.default_rng(1).uniform(-1, 1, (n, 2)).astype(np.float32)
    return OfflineDataset(obs, actions, rewards, terminals, np.zeros(n, bool), obs + 1.0, device=device)


def sampler(ds, name, **kw):
    if name in ("rw", "aw"):
        kw.setdefault("temperature", 0.5)
    if name == "topk":
        kw.setdefault("fraction", 0.4)
    return make_sampler(ds, name, **kw)


def per_episode(ds, p):
    return torch.zeros(ds.num_episodes, dtype=torch.float64).index_add_(0, ds.episode_index, p)


# --- distributions ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLERS)
def test_probs_sum_to_one(name):
    ds = make_dataset()
    s = sampler(ds, name)
    p, q = s.transition_probs(), s.trajectory_probs()
    assert p.shape == (ds.num_transitions,) and q.shape == (ds.num_episodes,)
    assert p.dtype == q.dtype == torch.float64
    assert (p >= 0).all() and (q >= 0).all()
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-12) and math.isclose(float(q.sum()), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(per_episode(ds, p), q, rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_rw_matches_formula_and_best_to_worst_ratio(alpha):
    ds = make_dataset()
    p = make_sampler(ds, "rw", temperature=alpha).transition_probs()
    g = np.asarray(RETURNS, np.float64)
    w = np.exp((g - g.min()) / (g.max() - g.min()) / alpha)
    expected = np.repeat(w / np.sum(np.asarray(LENGTHS) * w), LENGTHS)
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12)
    assert math.isclose(float(p.max() / p.min()), math.exp(1 / alpha), rel_tol=1e-9)
    # best episode (return 5) vs both worst ones (return -1), step by step
    best, worst = int(np.argmax(RETURNS)), np.flatnonzero(np.asarray(RETURNS) == -1.0)
    index = ds.episode_index.numpy()
    for w_ep in worst:
        ratio = p.numpy()[index == best][:, None] / p.numpy()[index == w_ep][None, :]
        np.testing.assert_allclose(ratio, math.exp(1 / alpha), rtol=1e-9)


@pytest.mark.parametrize("name", ["rw", "aw"])
@pytest.mark.parametrize("alpha, rtol", [(float("inf"), 1e-12), (1e9, 1e-8)])
def test_large_temperature_is_uniform(name, alpha, rtol):
    ds = make_dataset()
    p = make_sampler(ds, name, temperature=alpha).transition_probs()
    torch.testing.assert_close(p, torch.full_like(p, 1 / ds.num_transitions), rtol=rtol, atol=0)


def test_uniform_sampler_probs():
    ds = make_dataset()
    s = make_sampler(ds, "uniform")
    torch.testing.assert_close(
        s.transition_probs(), torch.full((ds.num_transitions,), 1 / ds.num_transitions, dtype=torch.float64)
    )
    torch.testing.assert_close(s.trajectory_probs(), torch.tensor(LENGTHS, dtype=torch.float64) / sum(LENGTHS))


def test_topk_keeps_exactly_the_best_episodes():
    lengths = [2, 3, 1, 4, 2, 5, 1, 3, 2, 2]
    returns = [3.0, 9.0, 1.0, 7.0, 0.0, 2.0, 8.0, 4.0, 6.0, 5.0]  # best three: episodes 1, 6, 3
    ds = make_dataset(lengths, returns)
    s = make_sampler(ds, "topk", fraction=0.3)
    q = s.trajectory_probs()
    kept = [1, 3, 6]
    expected = torch.zeros(10, dtype=torch.float64)
    expected[kept] = torch.tensor([lengths[i] for i in kept], dtype=torch.float64) / sum(lengths[i] for i in kept)
    torch.testing.assert_close(q, expected, rtol=1e-12, atol=0)
    p = s.transition_probs()
    inside = torch.isin(ds.episode_index, torch.tensor(kept))
    torch.testing.assert_close(p[inside], torch.full_like(p[inside], 1 / 8), rtol=1e-12, atol=0)
    assert (p[~inside] == 0).all()
    drawn = ds.episode_index[s.sample_indices(4096)]
    assert set(drawn.tolist()) == set(kept)
    # fraction 1: every transition alike; a tiny fraction still keeps one episode (the best)
    torch.testing.assert_close(
        make_sampler(ds, "topk", fraction=1.0).transition_probs(), torch.full_like(p, 1 / ds.num_transitions), rtol=1e-12, atol=0
    )
    assert make_sampler(ds, "topk", fraction=1e-6).trajectory_probs().nonzero().flatten().tolist() == [1]


def test_topk_ties_by_episode_index():
    ds = make_dataset([1, 2, 3, 1, 2], [5.0, 7.0, 7.0, 7.0, 1.0])
    q = make_sampler(ds, "topk", fraction=0.4).trajectory_probs()  # k = 2 of the three tied at 7
    assert q.nonzero().flatten().tolist() == [1, 2]


def test_aw_regression_is_exact():
    # G = 3 x1 - 2 x2 + 10 + delta, with delta orthogonal to [1, x1, x2]: the least-squares fit is exact,
    # A = delta = [1, -2, 1, -1, 2, -1] and Â = (delta + 2) / 4
    x = np.array([[0, 0], [1, 0], [2, 1], [3, 1], [4, 0], [5, 0]], np.float64)
    delta = np.array([1, -2, 1, -1, 2, -1], np.float64)
    assert np.allclose(np.c_[np.ones(6), x].T @ delta, 0)
    returns = 3 * x[:, 0] - 2 * x[:, 1] + 10 + delta  # [11, 11, 15, 16, 24, 24]
    lengths = [1, 2, 3, 1, 2, 3]
    ds = make_dataset(lengths, returns.tolist(), s0=x)
    torch.testing.assert_close(episode_advantages(ds), torch.tensor(delta), rtol=0, atol=1e-9)
    a_hat = np.array([0.75, 0.0, 0.75, 0.25, 1.0, 0.25])
    for alpha in (0.1, 0.5):
        w = np.asarray(lengths) * np.exp(a_hat / alpha)
        q = make_sampler(ds, "aw", temperature=alpha).trajectory_probs()
        np.testing.assert_allclose(q.numpy(), w / w.sum(), rtol=1e-9)


def test_aw_matches_numpy_least_squares():
    rng = np.random.default_rng(3)
    e = 20
    s0 = rng.integers(-4, 5, (e, 3)).astype(np.float64)
    returns = rng.integers(-50, 50, e).astype(np.float64)
    ds = make_dataset([2] * e, returns.tolist(), s0=s0)
    design = np.c_[s0, np.ones(e)]
    resid = returns - design @ np.linalg.lstsq(design, returns, rcond=None)[0]
    np.testing.assert_allclose(episode_advantages(ds).numpy(), resid, atol=1e-9)
    a_hat = (resid - resid.min()) / (resid.max() - resid.min())
    np.testing.assert_allclose(
        make_sampler(ds, "aw", temperature=0.3).trajectory_probs().numpy(),
        np.exp(a_hat / 0.3) / np.exp(a_hat / 0.3).sum(),
        rtol=1e-9,
    )


def test_aw_underdetermined_and_perfect_fit_are_uniform():
    # 3 episodes, 5 features: the min-norm fit interpolates; and returns exactly affine in s0
    for lengths, returns, s0 in (
        ([1, 2, 3], [1.0, 5.0, -2.0], np.arange(15).reshape(3, 5) % 4),
        ([2, 1, 3, 2], [1.0, 3.0, 5.0, 9.0], [[0.0], [1.0], [2.0], [4.0]]),
    ):
        ds = make_dataset(lengths, returns, s0=s0)
        p = make_sampler(ds, "aw", temperature=0.1).transition_probs()
        assert not p.isnan().any()
        torch.testing.assert_close(p, torch.full_like(p, 1 / ds.num_transitions), rtol=1e-12, atol=0)


def test_aw_with_constant_initial_state_equals_rw():
    ds = make_dataset(s0=np.full((len(LENGTHS), 2), 0.25))
    for alpha in (0.1, 1.0):
        aw = make_sampler(ds, "aw", temperature=alpha).transition_probs()
        rw = make_sampler(ds, "rw", temperature=alpha).transition_probs()
        torch.testing.assert_close(aw, rw, rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", ["rw", "aw"])
def test_equal_returns_give_uniform(name):
    ds = make_dataset(returns=[2.5] * len(LENGTHS))
    s = make_sampler(ds, name, temperature=0.1)
    p = s.transition_probs()
    assert not p.isnan().any() and not s.trajectory_probs().isnan().any()
    torch.testing.assert_close(p, torch.full_like(p, 1 / ds.num_transitions), rtol=1e-12, atol=0)
    assert ((s.sample_indices(512) >= 0) & (s.sample_indices(512) < ds.num_transitions)).all()


def test_single_episode():
    ds = make_dataset([5], [1.0])
    for name in SAMPLERS:
        s = make_sampler(ds, name)
        torch.testing.assert_close(s.transition_probs(), torch.full((5,), 0.2, dtype=torch.float64))
        assert set(s.sample_indices(256).tolist()) == set(range(5))


# --- sampling -----------------------------------------------------------------------------------
def _chi2_critical(df, z=3.719):  # z of p = 1e-4; Wilson-Hilferty
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _chi2_pvalue_ok(counts, probs, total):
    """(statistic, critical value at p = 1e-4) over the bins of positive probability."""
    expected = probs * total
    stat = float(((counts - expected) ** 2 / expected).sum())
    try:
        from scipy.stats import chi2

        crit = float(chi2.ppf(1 - 1e-4, len(probs) - 1))
    except ImportError:
        crit = _chi2_critical(len(probs) - 1)
    return stat, crit


@pytest.mark.parametrize("name", SAMPLERS)
def test_empirical_frequencies_match_probs(name):
    ds = make_dataset()
    s = sampler(ds, name, seed=7)
    draws = torch.cat([s.sample_indices(1000) for _ in range(200)])
    counts = torch.bincount(draws, minlength=ds.num_transitions).double().numpy()
    p = s.transition_probs().numpy()
    assert counts[p == 0].sum() == 0
    pos = p > 0
    stat, crit = _chi2_pvalue_ok(counts[pos], p[pos], len(draws))
    assert stat < crit, f"{name}: chi-square {stat:.1f} >= {crit:.1f}"
    # the test can fail: a wrong distribution over the same bins is rejected
    wrong = (
        sampler(ds, "rw", temperature=0.5) if name in ("uniform", "topk") else make_sampler(ds, "uniform")
    ).transition_probs()
    wrong = wrong.numpy()[pos] / wrong.numpy()[pos].sum()
    stat, crit = _chi2_pvalue_ok(counts[pos], wrong, len(draws))
    assert stat > 10 * crit
    # so is a subtly wrong one: one step of the first episode twice as likely
    nudged = p[pos].copy()
    nudged[0] *= 2
    stat, crit = _chi2_pvalue_ok(counts[pos], nudged / nudged.sum(), len(draws))
    assert stat > crit


def test_zero_mass_episodes_are_never_drawn():
    # topk keeps episodes 1 and 2 only: the first and the trailing episodes have mass 0
    ds = make_dataset([2, 3, 1, 4, 2], [0.0, 9.0, 8.0, 1.0, 2.0])
    s = make_sampler(ds, "topk", fraction=0.4)
    assert isinstance(s, TrajectoryWeightedSampler)
    below_one = 1 - 2.0**-53
    edges = torch.cat([torch.tensor([0.0, below_one], dtype=torch.float64), s._cdf])
    edges = edges[edges < 1]
    u = torch.stack([edges.repeat(3), torch.tensor([0.0, 0.5, below_one]).double().repeat_interleave(len(edges))])
    idx = s._indices(u)
    episodes = ds.episode_index[idx]
    assert set(episodes.tolist()) <= {1, 2}
    assert episodes[0] == 1 and episodes[1] == 2  # u = 0 -> first kept, u -> 1 -> last kept
    # a step drawn with u2 just below 1 is the episode's last step, never the next episode's first
    starts, lengths = ds.episode_starts[episodes], ds.episode_lengths[episodes]
    assert ((idx >= starts) & (idx < starts + lengths)).all()
    last = u[1] == below_one
    assert (idx[last] == (starts + lengths - 1)[last]).all()


@pytest.mark.parametrize("name", SAMPLERS)
def test_sample_returns_dataset_batch(name):
    ds = make_dataset()
    s, twin = sampler(ds, name, seed=3), sampler(ds, name, seed=3)
    batch = s.sample(64)
    idx = twin.sample_indices(64)
    assert idx.dtype == torch.int64 and idx.shape == (64,) and idx.device == ds.device
    assert ((idx >= 0) & (idx < ds.num_transitions)).all()
    expected = ds.batch(idx)
    assert batch.keys() == expected.keys() == {"obs", "actions", "rewards", "next_obs", "terminated", "timeouts", "next_actions"}
    for k, v in batch.items():
        assert v.device == ds.device and v.shape[0] == 64
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)
    assert batch["obs"].shape == (64, 3) and batch["actions"].shape == (64, 2) and batch["rewards"].shape == (64,)
    assert s.sample(np.int64(5))["obs"].shape == (5, 3)


def test_seeds():
    ds = make_dataset()
    for name in SAMPLERS:
        a, b, c = (sampler(ds, name, seed=seed).sample_indices(128) for seed in (0, 0, 1))
        assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", SAMPLERS)
def test_state_dict_resumes_exactly(name):
    ds = make_dataset()
    s = sampler(ds, name, seed=11)
    for _ in range(3):
        s.sample_indices(32)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    ahead = [s.sample_indices(32) for _ in range(4)]
    resumed = sampler(ds, name, seed=999)
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for expected in ahead:
        assert torch.equal(resumed.sample_indices(32), expected)
    assert resumed.state_dict()["name"] == name


def test_load_state_dict_rejects_a_different_sampler():
    ds = make_dataset()
    state = make_sampler(ds, "rw", temperature=0.5).state_dict()
    for other, match in (
        (make_sampler(ds, "aw", temperature=0.5), "name is 'rw'"),
        (make_sampler(ds, "rw", temperature=0.2), "params"),
        (make_sampler(make_dataset([2, 2], [0.0, 1.0]), "rw", temperature=0.5), "num_transitions"),
        (make_sampler(ds, "uniform"), "name"),
    ):
        with pytest.raises(ValueError, match=match):
            other.load_state_dict(state)
    topk = make_sampler(ds, "topk", fraction=0.2).state_dict()
    with pytest.raises(ValueError, match="fraction"):
        make_sampler(ds, "topk", fraction=0.3).load_state_dict(topk)


def test_api_names_and_classes():
    ds = make_dataset()
    assert SAMPLERS == ("uniform", "rw", "aw", "topk")
    assert IndexSampler.__doc__ and TrajectoryWeightedSampler.__doc__ and UniformSampler.__doc__
    assert isinstance(make_sampler(ds, "Uniform"), UniformSampler)
    for name in ("RW", "aw", "TopK"):
        s = make_sampler(ds, name)
        assert isinstance(s, TrajectoryWeightedSampler) and isinstance(s, IndexSampler) and s.name == name.lower()
    assert make_sampler(ds, "rw").temperature == 0.1 and make_sampler(ds, "topk").fraction == 0.1


def test_trajectory_masses_match_trajectory_probs():
    ds = make_dataset()
    for name in SAMPLERS:
        kw = {"temperature": 0.5} if name in ("rw", "aw") else {"fraction": 0.4} if name == "topk" else {}
        q = trajectory_masses(ds, name, **kw)
        torch.testing.assert_close(q / q.sum(), sampler(ds, name).trajectory_probs(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="unknown sampler 'per'"):
        trajectory_masses(ds, "per")


def test_imports_stay_inside_buffers():
    tree = ast.parse(open(samplers_module.__file__).read())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    roots = {".".join(m.split(".")[:2]) if m.startswith("policyopt.") else m.split(".")[0] for m in names}
    assert roots <= {"__future__", "numbers", "operator", "typing", "torch", "numpy", "gymnasium", "policyopt.buffers"}, roots


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():
    ds = make_dataset(device="cuda")
    for name in SAMPLERS:
        s = sampler(ds, name)
        batch = s.sample(256)
        assert all(v.device.type == "cuda" for v in batch.values())
        assert s.transition_probs().device.type == "cuda"
        state = s.state_dict()
        ahead = s.sample_indices(64)
        twin = sampler(ds, name, seed=5)
        twin.load_state_dict(state)
        assert torch.equal(twin.sample_indices(64), ahead)
        counts = torch.bincount(torch.cat([s.sample_indices(10_000) for _ in range(20)]), minlength=ds.num_transitions)
        p = s.transition_probs()
        assert (counts[p == 0] == 0).all()
        stat, crit = _chi2_pvalue_ok(counts[p > 0].double().cpu().numpy(), p[p > 0].cpu().numpy(), 200_000)
        assert stat < crit


# --- errors -------------------------------------------------------------------------------------
def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown sampler 'prioritized'; available: uniform, rw, aw, topk"):
        make_sampler(make_dataset(), "prioritized")


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), "0.3", True])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\], got"):
        make_sampler(make_dataset(), "topk", fraction=fraction)


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, float("nan"), float("-inf"), "0.1", True])
@pytest.mark.parametrize("name", ["rw", "aw"])
def test_bad_temperature(name, temperature):
    with pytest.raises(ValueError, match=r"temperature must be a number > 0 \(float\('inf'\) for uniform\), got"):
        make_sampler(make_dataset(), name, temperature=temperature)


@pytest.mark.parametrize("name", ["topk", "uniform"])
def test_temperature_for_a_sampler_without_one(name):
    with pytest.raises(ValueError, match=rf"temperature=0.5 is only for the 'rw' and 'aw' samplers, not '{name}'"):
        make_sampler(make_dataset(), name, temperature=0.5)


@pytest.mark.parametrize("name", ["rw", "aw", "uniform"])
def test_fraction_for_a_sampler_without_one(name):
    with pytest.raises(ValueError, match=rf"fraction=0.5 is only for the 'topk' sampler, not '{name}'"):
        make_sampler(make_dataset(), name, fraction=0.5)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, np.float64(8.0), np.int64(0), True, "8", None])
@pytest.mark.parametrize("name", SAMPLERS)
def test_bad_batch_size(name, batch_size):
    s = sampler(make_dataset(), name)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got"):
        s.sample(batch_size)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got"):
        s.sample_indices(batch_size)


def test_trajectory_weighted_sampler_rejects_uniform_name():
    with pytest.raises(ValueError, match="TrajectoryWeightedSampler takes name 'rw', 'aw' or 'topk', got 'uniform'"):
        TrajectoryWeightedSampler(make_dataset(), "uniform")
