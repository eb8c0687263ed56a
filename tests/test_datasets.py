"""OfflineDataset: episode boundaries, formats (D4RL hdf5, Minari, npz), D4RL's qlearning_dataset
compat rows, reference scores, reward conventions, and errors for malformed data (plus a fuzz test)."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyopt.buffers.dataset import (
    D4RL_REF_SCORES,
    DatasetError,
    EpisodeRecorder,
    OfflineDataset,
    concatenate,
    mix_datasets,
    select_episodes,
)


def make_arrays(lengths=(4, 6, 3, 5), ends=("terminal", "timeout", "terminal", None), obs_dim=3, act_dim=2, seed=0):
    """Episodes of the given lengths; each ends in a termination, a timeout, or (None) nothing (a trailing cut)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    # inside an episode the next observation is the next row's; at its end, the stored final one
    next_obs = np.concatenate([obs[1:], obs[:1]])
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    i = 0
    for length, end in zip(lengths, ends):
        i += length
        next_obs[i - 1] = rng.normal(size=obs_dim)
        if end == "terminal":
            terminals[i - 1] = True
        elif end == "timeout":
            timeouts[i - 1] = True
    return {
        "observations": obs,
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": next_obs,
    }


def write_d4rl(path, arrays, attrs=None, infos=None):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        for k, v in (infos or {}).items():
            f.create_dataset(f"infos/{k}", data=v)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path


def qlearning_dataset(a, terminate_on_end=False):
    """D4RL's d4rl.qlearning_dataset loop, transcribed for the compat test (its behaviour, not its code)."""
    out = {k: [] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    for i in range(len(a["rewards"]) - 1):
        if a["timeouts"][i] and not terminate_on_end:
            continue
        out["observations"].append(a["observations"][i])
        out["next_observations"].append(a["observations"][i + 1])
        out["actions"].append(a["actions"][i])
        out["rewards"].append(a["rewards"][i])
        out["terminals"].append(bool(a["terminals"][i]))
    return {k: np.array(v) for k, v in out.items()}


def test_episode_boundaries_lengths_and_returns():
    a = make_arrays()
    d = OfflineDataset(**a)
    assert d.num_transitions == 18 and d.num_episodes == 4
    assert d.episode_starts.tolist() == [0, 4, 10, 13]
    assert d.episode_lengths.tolist() == [4, 6, 3, 5]
    expected = [a["rewards"][s : s + n].sum() for s, n in zip([0, 4, 10, 13], [4, 6, 3, 5])]
    np.testing.assert_allclose(d.episode_returns.numpy(), expected, rtol=1e-6)
    assert d.episode_index.tolist() == [0] * 4 + [1] * 6 + [2] * 3 + [3] * 5
    np.testing.assert_array_equal(d.initial_observations.numpy(), a["observations"][[0, 4, 10, 13]])
    assert d.observation_space.shape == (3,) and d.action_space.shape == (2,)
    assert d.action_space.low.min() == -1.0  # MuJoCo-range data gets the [-1, 1] box


def test_terminated_and_timeout_are_separate_and_next_obs_is_the_stored_one():
    a = make_arrays()
    d = OfflineDataset(**a)
    b = d.batch(torch.arange(d.num_transitions))
    assert b["terminated"].nonzero().flatten().tolist() == [3, 12]  # only true terminations stop the bootstrap
    assert b["timeouts"].nonzero().flatten().tolist() == [9]
    np.testing.assert_array_equal(b["next_obs"].numpy(), a["next_observations"])  # not the next episode's first obs
    # next_actions: the next step's action inside an episode, its own at an episode's end
    np.testing.assert_array_equal(b["next_actions"][0].numpy(), a["actions"][1])
    np.testing.assert_array_equal(b["next_actions"][3].numpy(), a["actions"][3])
    assert set(b) == {"obs", "actions", "rewards", "next_obs", "terminated", "timeouts", "next_actions"}


def test_observation_stats_match_numpy():
    a = make_arrays()
    mean, std = OfflineDataset(**a).observation_stats()
    np.testing.assert_allclose(mean.numpy(), a["observations"].mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), a["observations"].std(0) + 1e-3, rtol=1e-5)


def test_missing_next_observations_are_derived_and_unbootstrappable_steps_dropped():
    a = make_arrays()
    a.pop("next_observations")
    with pytest.warns(RuntimeWarning, match="dropped the 2 episode-final steps"):
        d = OfflineDataset(**a)
    # the timeout step (row 9) and the trailing cut (row 17) have no next observation
    assert d.num_transitions == 16
    assert d.episode_lengths.tolist() == [4, 5, 3, 4]
    np.testing.assert_array_equal(d.next_observations[0].numpy(), a["observations"][1])
    np.testing.assert_array_equal(d.next_observations[8].numpy(), a["observations"][9])
    assert d.timeouts.nonzero().flatten().tolist() == [8, 15]


@pytest.mark.parametrize("fmt", ["d4rl", "npz", "minari"])
def test_write_read_round_trip(tmp_path, fmt):
    a = make_arrays(ends=("terminal", "timeout", "terminal", "timeout"))
    infos = {"qpos": np.arange(18 * 2, dtype=np.float64).reshape(18, 2)}
    d = OfflineDataset(**a, infos=infos, metadata={"env_id": "Hopper-v5", "ref_min_score": -20.0, "ref_max_score": 3000.0})
    path = {
        "d4rl": lambda: d.save_d4rl(tmp_path / "x.hdf5"),
        "npz": lambda: d.save_npz(tmp_path / "x.npz"),
        "minari": lambda: d.save_minari(tmp_path / "ns" / "x-v0", "ns/x-v0"),
    }[fmt]()
    e = OfflineDataset.load(path)
    for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "episode_starts"):
        assert torch.equal(getattr(e, k), getattr(d, k)), k
    np.testing.assert_array_equal(e.infos["qpos"], infos["qpos"])
    assert e.reference_scores() == (-20.0, 3000.0)
    assert e.metadata["env_id"] == "Hopper-v5"


def test_minari_round_trip_loads_with_minari_itself(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    a = make_arrays(ends=("terminal", "timeout", "terminal", "timeout"))
    d = OfflineDataset(**a, metadata={"env_id": "Hopper-v5", "ref_min_score": 1.0, "ref_max_score": 2.0})
    d.save_minari(tmp_path / "policyopt" / "toy" / "mixed-v0", dataset_id="policyopt/toy/mixed-v0")
    m = minari.load_dataset("policyopt/toy/mixed-v0")
    assert m.total_steps == 18 and m.total_episodes == 4
    episodes = list(m.iterate_episodes())
    np.testing.assert_array_equal(episodes[1].observations[:-1], a["observations"][4:10])
    np.testing.assert_array_equal(episodes[1].observations[-1], a["next_observations"][9])
    assert episodes[1].truncations[-1] and not episodes[1].terminations[-1]
    assert OfflineDataset.from_minari("policyopt/toy/mixed-v0").num_episodes == 4


def test_reads_a_dataset_recorded_by_minaris_data_collector(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    pytest.importorskip("jax")  # DataCollector needs minari[create]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=15), record_infos=False)
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(4 * 15):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.create_dataset(
            dataset_id="test/pendulum/random-v0", algorithm_name="random", ref_min_score=-1500.0, ref_max_score=-150.0
        )
    ours = OfflineDataset.from_minari("test/pendulum/random-v0")
    theirs = list(minari.load_dataset("test/pendulum/random-v0").iterate_episodes())
    assert ours.num_episodes == len(theirs) == 4 and ours.num_transitions == 60
    np.testing.assert_array_equal(ours.observations.numpy(), np.concatenate([ep.observations[:-1] for ep in theirs]))
    np.testing.assert_array_equal(ours.next_observations.numpy(), np.concatenate([ep.observations[1:] for ep in theirs]))
    np.testing.assert_allclose(ours.rewards.numpy(), np.concatenate([ep.rewards for ep in theirs]), rtol=1e-6)
    assert ours.timeouts.sum() == 4 and ours.terminals.sum() == 0
    assert ours.action_space.high[0] == 2.0 and ours.metadata["env_id"] == "Pendulum-v1"
    assert ours.reference_scores() == (-1500.0, -150.0)


def test_minari_episode_with_t_observations_is_rejected(tmp_path):
    d = OfflineDataset(**make_arrays(ends=("terminal", "timeout", "terminal", "timeout")))
    root = d.save_minari(tmp_path / "bad-v0")
    with h5py.File(root / "data" / "main_data.hdf5", "a") as f:
        obs = f["episode_2/observations"][()]
        del f["episode_2/observations"]
        f["episode_2/observations"] = obs[:-1]
    with pytest.raises(DatasetError, match=r"episode_2/observations.*3 rows for 3 actions.*T\+1 = 4"):
        OfflineDataset.load(root)


def test_minari_episodes_are_read_in_numeric_order(tmp_path):
    lengths = tuple(range(1, 13))
    d = OfflineDataset(**make_arrays(lengths=lengths, ends=("terminal",) * 12))
    e = OfflineDataset.load(d.save_minari(tmp_path / "many-v0"))
    assert e.episode_lengths.tolist() == list(lengths)  # episode_10 after episode_9, not after episode_1


@pytest.mark.parametrize("ends", [("terminal", "timeout", "terminal", None), ("timeout", "timeout", "terminal", "timeout")])
def test_d4rl_compat_reproduces_qlearning_dataset_rows(tmp_path, ends):
    a = make_arrays(ends=ends)
    path = write_d4rl(tmp_path / "x.hdf5", a)
    compat = OfflineDataset.load(path, d4rl_compat=True)
    ref = qlearning_dataset(a)
    n, k = len(a["rewards"]), int(a["timeouts"][:-1].sum())
    assert compat.num_transitions == len(ref["rewards"]) == n - 1 - k
    for ours, theirs in (
        ("observations", "observations"),
        ("actions", "actions"),
        ("next_observations", "next_observations"),
        ("rewards", "rewards"),
        ("terminals", "terminals"),
    ):
        np.testing.assert_array_equal(getattr(compat, ours).numpy(), ref[theirs])
    default = OfflineDataset.load(path)
    assert default.num_transitions == n  # by default nothing is dropped
    assert compat.num_episodes == default.num_episodes


def test_from_d4rl_reads_the_cache_by_d4rls_file_name_and_uses_its_constants(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"hopper_medium_replay-v2\.hdf5.*Nothing is downloaded"):
        OfflineDataset.from_d4rl("hopper-medium-replay-v2")
    write_d4rl(tmp_path / "hopper_medium_replay-v2.hdf5", make_arrays(obs_dim=11, act_dim=3))
    d = OfflineDataset.from_d4rl("hopper-medium-replay-v2")
    lo, hi = D4RL_REF_SCORES["hopper"]
    assert d.reference_scores() == (-20.272305, 3234.3) == (lo, hi)
    assert d.normalized_score(3234.3) == pytest.approx(100.0)
    assert d.normalized_score(np.array([lo, (lo + hi) / 2])).tolist() == pytest.approx([0.0, 50.0])
    with pytest.raises(ValueError, match="hopper-medium-v2"):
        OfflineDataset.from_d4rl("hopper_medium")


def test_reference_scores_from_attributes_or_a_clear_error(tmp_path):
    a = make_arrays()
    with_refs = OfflineDataset.load(write_d4rl(tmp_path / "a.hdf5", a, attrs={"ref_min_score": 0.0, "ref_max_score": 10.0}))
    assert with_refs.normalized_score(2.5) == pytest.approx(25.0)
    without = OfflineDataset.load(write_d4rl(tmp_path / "b.hdf5", a))
    with pytest.raises(DatasetError, match=r"b\.hdf5: no reference scores.*ref_min_score.*ref_max_score"):
        without.normalized_score(1.0)


def test_reward_conventions():
    a = make_arrays()
    d = OfflineDataset(**a)
    spread = float(d.episode_returns.max() - d.episode_returns.min())
    d.transform_rewards("iql-locomotion")
    assert float(d.episode_returns.max() - d.episode_returns.min()) == pytest.approx(1000.0, rel=1e-5)
    np.testing.assert_allclose(d.rewards.numpy(), a["rewards"] * 1000.0 / spread, rtol=1e-5)
    np.testing.assert_allclose(OfflineDataset(**a).transform_rewards("antmaze").rewards.numpy(), a["rewards"] - 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        OfflineDataset(**a).transform_rewards("cql-antmaze").rewards.numpy(), a["rewards"] * 10 - 5, rtol=1e-6
    )
    np.testing.assert_allclose(
        OfflineDataset(**a).transform_rewards("none", scale=2.0, bias=0.5).rewards.numpy(), a["rewards"] * 2 + 0.5, rtol=1e-6
    )
    with pytest.raises(ValueError, match="unknown reward convention 'iql'; available"):
        OfflineDataset(**a).transform_rewards("iql")


def test_check_env_names_the_mismatch():
    d = OfflineDataset(**make_arrays(obs_dim=11, act_dim=3))
    d.check_env(gym.make("Hopper-v5"))
    with pytest.raises(DatasetError, match=r"observations.*11 columns but env Walker2d-v5 has shape \(17,\)"):
        d.check_env(gym.make("Walker2d-v5"))


# --- bad input: every error names the file, the key and the expected form ----------------------
BAD_CASES = {
    "missing key": (lambda a: a.pop("timeouts"), r"key 'timeouts': missing.*expected the D4RL keys"),
    "length mismatch": (lambda a: a.update(rewards=a["rewards"][:-2]), r"key 'rewards': 16 rows but 'observations' has 18"),
    "nan": (lambda a: a["observations"].__setitem__((5, 1), np.nan), r"key 'observations': NaN or inf at index \(5, 1\).*finite"),
    "inf reward": (lambda a: a["rewards"].__setitem__(2, np.inf), r"key 'rewards': NaN or inf at index \(2,\)"),
    "empty": (
        lambda a: [a.__setitem__(k, v[:0]) for k, v in list(a.items())],
        r"no transitions \(0 rows\); expected at least one",
    ),
    "3-d rewards": (
        lambda a: a.update(rewards=a["rewards"].reshape(18, 1, 1)),
        r"key 'rewards': shape \(18, 1, 1\); expected \[N\]",
    ),
    "next obs dims": (lambda a: a.update(next_observations=a["next_observations"][:, :2]), r"next_observations.*2 columns"),
    "non-binary flags": (lambda a: a.update(terminals=a["terminals"] * 0.5), r"key 'terminals': values other than 0 and 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
@pytest.mark.parametrize("fmt", ["hdf5", "npz"])
def test_malformed_files_get_errors_naming_file_key_and_form(tmp_path, case, fmt):
    a = make_arrays()
    corrupt, pattern = BAD_CASES[case]
    corrupt(a)
    path = tmp_path / f"bad.{fmt}"
    write_d4rl(path, a) if fmt == "hdf5" else np.savez(path, **a)
    with pytest.raises(DatasetError, match=pattern) as err:
        OfflineDataset.load(path)
    assert str(path) in str(err.value) and "expected" in str(err.value)


def test_not_a_dataset_errors(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"not data at all")
    with pytest.raises(DatasetError, match="neither an hdf5 file nor an .npz"):
        OfflineDataset.load(tmp_path / "junk.bin")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DatasetError, match="not a Minari dataset; expected data/metadata.json"):
        OfflineDataset.load(tmp_path / "folder")
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        OfflineDataset.load(tmp_path / "nothing.hdf5")


# --- building datasets --------------------------------------------------------------------------
def test_episode_recorder_orders_whole_episodes_by_finish():
    recorder = EpisodeRecorder()
    lengths, step_in_episode, episode = [3, 5, 4], [0, 0, 0], [0, 0, 0]
    for _ in range(12):
        obs = torch.tensor([[100.0 * e + 10 * episode[e] + step_in_episode[e]] for e in range(3)])
        ends = torch.tensor([step_in_episode[e] + 1 == lengths[e] for e in range(3)])
        recorder.add(
            obs,
            torch.zeros(3, 1),
            torch.ones(3),
            ends & torch.tensor([True, False, False]),
            ends & torch.tensor([False, True, True]),
            obs + 0.5,
        )
        for e in range(3):
            step_in_episode[e] += 1
            if step_in_episode[e] == lengths[e]:
                step_in_episode[e], episode[e] = 0, episode[e] + 1
    d = recorder.dataset()
    # finish order: env0 ep0 (t=2), env2 ep0 (t=3), env1 ep0 (t=4), env0 ep1 (t=5), ...; env1's third episode is unfinished
    assert d.observations[:12, 0].tolist() == [0, 1, 2, 200, 201, 202, 203, 100, 101, 102, 103, 104]
    assert d.num_transitions == 34 and d.episode_lengths.tolist() == [3, 4, 5, 3, 4, 3, 5, 3, 4]
    assert d.terminals.sum() == 4 and d.timeouts.sum() == 5
    cut = recorder.dataset(max_transitions=10)
    assert cut.num_transitions == 10 and cut.episode_lengths.tolist() == [3, 4, 3]


def test_concatenate_and_select_keep_episodes_apart():
    a = OfflineDataset(**make_arrays())
    b = OfflineDataset(**make_arrays(seed=1))
    both = concatenate([a, b])
    assert both.num_episodes == a.num_episodes + b.num_episodes  # a's trailing cut episode stays apart from b's first
    picked = select_episodes(a, [2, 0, 2])
    assert picked.episode_lengths.tolist() == [3, 4, 3]
    np.testing.assert_array_equal(picked.observations[:3].numpy(), a.observations[10:13].numpy())


def test_mix_datasets_has_the_asked_ratio_of_good_transitions():
    good = OfflineDataset(**make_arrays(lengths=(50,) * 20, ends=("timeout",) * 20))
    bad = OfflineDataset(**make_arrays(lengths=(7,) * 100, ends=("terminal",) * 100, seed=2))
    mixed = mix_datasets(good, bad, 0.05, seed=0)
    n = good.num_transitions
    info = mixed.metadata["mix"]
    assert int(0.05 * n) < info["good_transitions"] <= int(0.05 * n) + 50  # just over the ratio, by under one episode
    assert n - info["good_transitions"] < info["bad_transitions"] <= n - info["good_transitions"] + 7
    assert mixed.num_transitions == info["good_transitions"] + info["bad_transitions"]
    assert mixed.episode_lengths[: info["good_transitions"] // 50].eq(50).all()  # good first, then bad
    again = mix_datasets(good, bad, 0.05, seed=0)
    assert torch.equal(again.observations, mixed.observations)  # seeded
    with pytest.raises(ValueError, match=r"ratio .* in \(0, 1\]"):
        mix_datasets(good, bad, 1.5)


# --- fuzz: malformed files raise DatasetError or load exactly the data ---------------------------
@st.composite
def corrupted_files(draw):
    n = draw(st.integers(0, 12))
    obs_dim, act_dim = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    elems = st.floats(-5, 5, width=32)
    arrays = {
        "observations": np.array(
            draw(st.lists(st.lists(elems, min_size=obs_dim, max_size=obs_dim), min_size=n, max_size=n)), dtype=np.float32
        ).reshape(n, obs_dim),
        "actions": np.array(
            draw(st.lists(st.lists(st.floats(-1, 1, width=32), min_size=act_dim, max_size=act_dim), min_size=n, max_size=n)),
            dtype=np.float32,
        ).reshape(n, act_dim),
        "rewards": np.array(draw(st.lists(elems, min_size=n, max_size=n)), dtype=np.float32),
        "terminals": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        "timeouts": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
    }
    arrays["next_observations"] = arrays["observations"] + 1.0
    clean = {k: v.copy() for k, v in arrays.items()}
    key = draw(st.sampled_from(sorted(arrays)))
    kind = draw(
        st.sampled_from(
            [
                "none",
                "drop",
                "shorten",
                "lengthen",
                "nan",
                "inf",
                "column",
                "strings",
                "scalar",
                "flags as floats",
                "flags as 0.5",
                "rewards [N,1]",
                "3-d",
            ]
        )
    )
    valid = kind in ("none", "flags as floats", "rewards [N,1]")
    v = arrays[key]
    if kind == "drop":
        del arrays[key]
        valid = key == "next_observations" and n > 0  # optional: derived (then compared below)
    elif kind == "shorten":
        arrays[key] = v[:-1]
        valid = n == 0
    elif kind == "lengthen":
        arrays[key] = np.concatenate([v, v[:1]]) if n else v
        valid = n == 0
    elif kind in ("nan", "inf") and v.dtype.kind == "f" and n:
        bad = v.copy()
        bad.reshape(-1)[draw(st.integers(0, bad.size - 1))] = np.nan if kind == "nan" else -np.inf
        arrays[key] = bad
    elif kind == "column" and v.ndim == 2:
        arrays[key] = np.concatenate([v, v[:, :1]], axis=1)
        valid = key == "actions"  # obs and next obs would disagree; an extra action column is just another dataset
    elif kind == "strings":
        arrays[key] = np.array([b"x"] * max(n, 1))
    elif kind == "scalar":
        arrays[key] = np.array(1.0)
    elif kind == "flags as floats":
        arrays["terminals"] = arrays["terminals"].astype(np.float32)
    elif kind == "flags as 0.5":
        arrays["timeouts"] = np.full(n, 0.5, np.float32)
        valid = n == 0
    elif kind == "rewards [N,1]":
        arrays["rewards"] = arrays["rewards"][:, None]
    elif kind == "3-d":
        arrays[key] = v.reshape(v.shape + (1, 1))
    else:
        valid = True  # nan/inf/column on a key where it does not apply: unchanged
    if n == 0:
        valid = False
    fmt = draw(st.sampled_from(["hdf5", "npz"]))
    return arrays, clean, valid, fmt, kind, key


# derandomized: CI sees the same 150 cases every run (a random run found the one-column case above)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=corrupted_files())
def test_fuzz_load_raises_our_error_or_loads_exact_data(tmp_path, case):
    arrays, clean, valid, fmt, kind, key = case
    path = tmp_path / f"fuzz.{fmt}"
    if fmt == "hdf5":
        write_d4rl(path, arrays)
    else:
        np.savez(path, **arrays)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = OfflineDataset.load(path)
    except DatasetError as e:
        assert str(path) in str(e)
        assert not valid, f"{kind} on {key} is valid data but was rejected: {e}"
        return
    assert valid, f"{kind} on {key} loaded silently"
    if kind == "drop":  # next_observations derived from the rows: compared where defined
        return
    if kind == "column":
        clean[key] = arrays[key]
    for k in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(getattr(d, k).numpy(), clean[k].reshape(getattr(d, k).shape))
    np.testing.assert_array_equal(d.terminals.numpy(), clean["terminals"])
    # a row with both flags is a termination (D4RL's convention)
    np.testing.assert_array_equal(d.timeouts.numpy(), clean["timeouts"].astype(bool) & ~clean["terminals"].astype(bool))


def test_fuzz_metadata_json_in_npz(tmp_path):
    a = make_arrays()
    np.savez(tmp_path / "m.npz", **a, metadata=np.array("{not json"))
    with pytest.raises(DatasetError, match=r"key 'metadata': not JSON"):
        OfflineDataset.load(tmp_path / "m.npz")
    np.savez(tmp_path / "ok.npz", **a, metadata=np.array(json.dumps({"ref_min_score": 1, "ref_max_score": 3})))
    assert OfflineDataset.load(tmp_path / "ok.npz").normalized_score(2.0) == pytest.approx(50.0)


def test_a_step_both_terminal_and_timeout_is_a_termination(tmp_path):
    """gymnasium sets truncated and terminated together on a time limit's terminating step; D4RL's
    files (and d3rlpy, which asserts it) never have both: the row is a termination."""
    n = 6
    obs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[2], timeouts[2], timeouts[5] = True, True, True
    d = OfflineDataset(obs, np.zeros((n, 1), np.float32), np.ones(n, np.float32), terminals, timeouts, obs + 1)
    assert d.timeouts.tolist() == [False, False, False, False, False, True] and d.terminals[2]
    assert d.episode_lengths.tolist() == [3, 3]
    import h5py

    with h5py.File(d.save_d4rl(tmp_path / "both.hdf5"), "r") as f:
        assert not (f["terminals"][()] & f["timeouts"][()]).any()
