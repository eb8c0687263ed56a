"""Reading a dataset file never runs code or reads other files, and values that overflow float32
(the training dtype) get an error naming the file, the key and the index."""

from __future__ import annotations

import json
import re
import sys
import warnings

import h5py
import numpy as np
import pytest

from policyopt.buffers.dataset import DatasetError, OfflineDataset
from test_datasets import make_arrays, write_d4rl

ENDS = ("terminal", "timeout", "terminal", "timeout")


# --- Minari metadata never reaches gym.make -------------------------------------------------------
def write_minari_arrow(root, a):
    """An honest arrow-format Minari dataset written by minari itself, episodes as make_arrays' (T+1 observations)."""
    minari = pytest.importorskip("minari")
    pytest.importorskip("pyarrow")
    from minari.data_collector.episode_buffer import EpisodeBuffer

    d = OfflineDataset(**a)
    buffers = []
    for i, (s, n) in enumerate(zip(d.episode_starts.tolist(), d.episode_lengths.tolist())):
        e = s + n
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.concatenate([a["observations"][s:e], a["next_observations"][e - 1 : e]]),
                actions=a["actions"][s:e],
                rewards=a["rewards"][s:e],
                terminations=a["terminals"][s:e],
                truncations=a["timeouts"][s:e],
                infos=None,
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            "safety/toy/arrow-v0",
            buffers,
            env="Pendulum-v1",
            data_format="arrow",
            observation_space=d.observation_space,
            action_space=d.action_space,
        )
    return root / "safety" / "toy" / "arrow-v0"


@pytest.mark.parametrize("entry_point", ["subprocess:run", "builtins:open"])
def test_hostile_minari_arrow_metadata_runs_no_code(tmp_path, monkeypatch, entry_point):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    a = make_arrays(ends=ENDS, obs_dim=3, act_dim=1)
    root = write_minari_arrow(tmp_path, a)
    honest = OfflineDataset.load(root)
    for k in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_allclose(getattr(honest, k).numpy(), a[k], rtol=1e-6, err_msg=k)
    assert honest.episode_lengths.tolist() == [4, 6, 3, 5] and honest.observation_space.shape == (3,)

    # no spaces stored: minari falls back to gym.make(EnvSpec.from_json(env_spec)), whose entry point is any callable
    marker = tmp_path / "code-ran"
    kwargs = (
        {"args": [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]}
        if entry_point == "subprocess:run"
        else {"file": str(marker), "mode": "w"}
    )
    meta_path = root / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["observation_space"], meta["action_space"]
    spec = json.loads(meta["env_spec"])
    meta["env_spec"] = json.dumps({**spec, "id": "Evil-v0", "entry_point": entry_point, "kwargs": kwargs})
    meta_path.write_text(json.dumps(meta))

    loaded = OfflineDataset.load(root)
    assert not marker.exists(), "loading the dataset ran code named in its metadata"
    for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
        assert (getattr(loaded, k) == getattr(honest, k)).all(), k
    assert loaded.observation_space.shape == (3,)  # from the data's columns, not from an env

    # control: the file is really hostile, minari's own reader runs it
    from minari import MinariDataset

    with pytest.raises(Exception):
        MinariDataset(root / "data")
    assert marker.exists()


# --- hdf5 links that leave the file ---------------------------------------------------------------
def link_out(f, key, other, kind):
    del f[key]
    if kind == "external":
        f[key] = h5py.ExternalLink(str(other), "/r")
    elif kind == "soft link to an external link":
        f["elsewhere"] = h5py.ExternalLink(str(other), "/r")
        f[key] = h5py.SoftLink("/elsewhere")
    elif kind == "virtual":
        with h5py.File(other, "r") as o:
            n = o["r"].shape[0]
        layout = h5py.VirtualLayout(shape=(n,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "r", shape=(n,))
        f.create_virtual_dataset(key, layout)


@pytest.mark.parametrize("kind", ["external", "soft link to an external link", "virtual"])
def test_hdf5_rewards_from_another_file_are_refused(tmp_path, kind):
    a = make_arrays()
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as o:
        o["r"] = np.full(len(a["rewards"]), 7.0, np.float32)  # valid rewards: the only problem is where they live
    path = write_d4rl(tmp_path / "x.hdf5", a)
    with h5py.File(path, "a") as f:
        f["inside"] = a["rewards"]
        del f["rewards"]
        f["rewards"] = h5py.SoftLink("/inside")  # a soft link inside the file stays fine
    assert (OfflineDataset.load(path).rewards.numpy() == a["rewards"]).all()
    with h5py.File(path, "a") as f:
        link_out(f, "rewards", other, kind)
    pattern = r"key 'rewards': an hdf5 .*(external link|virtual).*expected data stored in this file"
    with pytest.raises(DatasetError, match=pattern) as err:
        OfflineDataset.load(path)
    assert str(path) in str(err.value)


def test_minari_hdf5_external_link_is_refused(tmp_path):
    root = OfflineDataset(**make_arrays(ends=ENDS)).save_minari(tmp_path / "x-v0")
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as o:
        o["r"] = np.zeros(6)
    main = root / "data" / "main_data.hdf5"
    with h5py.File(main, "a") as f:
        link_out(f, "episode_1/rewards", other, "external")
    with pytest.raises(DatasetError, match=r"main_data\.hdf5: key 'episode_1/rewards': an hdf5 external link to .*other\.hdf5"):
        OfflineDataset.load(root)


# --- finiteness is checked after the cast to float32 --------------------------------------------------
OVERFLOWS = {
    "float64 rewards 1e300": ("rewards", (7,), np.float64, 1e300, r"1e\+300 at index \(7,\), which is inf as float32"),
    "float64 observations 1e300": ("observations", (5, 1), np.float64, -1e300, r"-1e\+300 at index \(5, 1\), which is inf"),
    "float64 actions 1e300": ("actions", (3, 0), np.float64, 1e300, r"1e\+300 at index \(3, 0\), which is inf"),
    # finite as float32, but an episode's return and every square (TD error, variance) of it are inf
    "float32 rewards 3e38": ("rewards", (2,), np.float32, 3e38, r"3e\+38 at index \(2,\), whose square overflows float32"),
}


def with_overflow(case):
    key, index, dtype, value, pattern = OVERFLOWS[case]
    a = make_arrays()
    a[key] = a[key].astype(dtype)
    a[key][index] = value
    return a, key, pattern


@pytest.mark.parametrize("fmt", ["hdf5", "npz", "arrays"])
@pytest.mark.parametrize("case", sorted(OVERFLOWS))
def test_values_that_overflow_float32_name_key_and_index(tmp_path, case, fmt):
    a, key, pattern = with_overflow(case)
    path = tmp_path / f"big.{fmt}"
    if fmt == "hdf5":
        write_d4rl(path, a)
    elif fmt == "npz":
        np.savez(path, **a)
    with pytest.raises(DatasetError, match=rf"key '{key}': {pattern}.*expected finite values within \+-1\.84e\+19") as err:
        OfflineDataset.load(path) if fmt != "arrays" else OfflineDataset(**a, source=str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("case", ["float64 rewards 1e300", "float32 rewards 3e38"])
def test_minari_rewards_that_overflow_float32_are_refused(tmp_path, case):
    root = OfflineDataset(**make_arrays(ends=ENDS)).save_minari(tmp_path / "x-v0")
    _, _, dtype, value, _ = OVERFLOWS[case]
    with h5py.File(root / "data" / "main_data.hdf5", "a") as f:
        r = f["episode_1/rewards"][()].astype(dtype)
        r[3] = value
        del f["episode_1/rewards"]
        f["episode_1/rewards"] = r
    # episode_0 has 4 steps: episode_1's step 3 is transition 7
    shown = re.escape(f"{value:g}")
    with pytest.raises(DatasetError, match=rf"x-v0: key 'rewards': {shown} at index \(7,\), (which is inf|whose square)"):
        OfflineDataset.load(root)


def test_an_env_id_read_from_a_file_may_not_name_a_module():
    from policyopt.buffers import recorded_env_id

    assert recorded_env_id("Hopper-v5", "f.hdf5") == "Hopper-v5" and recorded_env_id(None, "f.hdf5") is None
    for bad in ("os:Env-v0", "evil.module:Thing-v1", 3, " "):
        with pytest.raises(DatasetError, match="not a plain registered id"):
            recorded_env_id(bad, "f.hdf5")
