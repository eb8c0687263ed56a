"""Offline datasets: whole episodes of transitions as tensors on one device, read from and
written to D4RL hdf5 files, Minari dataset directories and ``.npz``.

An episode ends where ``terminals | timeouts`` is set, or at the last row. ``terminals`` are
true terminations (no bootstrap); ``timeouts`` are truncations (the critic bootstraps from the
stored next observation). D4RL's ``qlearning_dataset`` drops every timeout transition and
the file's last row; that is not done here by default. ``d4rl_compat=True`` does it, which is
the mode to use to compare with published D4RL/CORL tables.

Nothing here downloads: :meth:`OfflineDataset.from_d4rl` and :meth:`OfflineDataset.from_minari`
read the local caches those projects used, and never import ``d4rl`` (it needs mujoco-py).

Reading a file never runs code from it or reads other files: ``.npz`` loads without pickle, a
Minari directory is read with h5py or pyarrow (never ``minari``, which makes an env from the
file's env_spec), and hdf5 links or datasets that reach outside the file are refused.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

# D4RL v2 (and v1) Gym-MuJoCo reference returns, one pair per env: REF_MIN/MAX_SCORE of
# '<env>-random-v0' in D4RL's d4rl/infos.py (read at Farama-Foundation/D4RL 0ace16d), which
# every '<env>-<level>-v2' entry points to.
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}

# Reward conventions of the offline papers' reference code (CORL's configs):
# name -> (scale by 1000 / (max episode return - min episode return), then r * scale + bias).
REWARD_CONVENTIONS: dict[str, tuple[bool, float, float]] = {
    "none": (False, 1.0, 0.0),  # TD3+BC, CQL and ReBRAC on locomotion
    "iql-locomotion": (True, 1.0, 0.0),  # IQL (and CORL's normalize_reward) on hopper/halfcheetah/walker2d
    "antmaze": (False, 1.0, -1.0),  # IQL, TD3+BC and AWAC on antmaze: r - 1
    "cql-antmaze": (False, 10.0, -5.0),  # CORL's CQL on antmaze: 10 r - 5
}

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")

# Observations, actions and rewards train as float32. Past sqrt(float32 max) ~ 1.8e19 their squares
# (TD errors, variances) are inf, so a finite float32 of 3e38 still stops training later.
TRAIN_DTYPE = np.float32
MAX_ABS_VALUE = float(np.sqrt(np.finfo(np.float32).max))


def normalized_score(returns: float | np.ndarray | Tensor, ref_min: float, ref_max: float) -> float | np.ndarray:
    """D4RL's normalized score, ``100 * (R - ref_min) / (ref_max - ref_min)``: a float for a float."""
    if isinstance(returns, Tensor):
        returns = returns.detach().cpu().numpy()
    out = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
    return float(out) if out.ndim == 0 else out


class DatasetError(ValueError):
    """A dataset that is not in the expected form. The message names the file, the key and the form."""


def _error(source: str, key: str | None, problem: str, expected: str) -> DatasetError:
    where = f"{source}: key {key!r}" if key else source
    return DatasetError(f"{where}: {problem}; expected {expected}")


class OfflineDataset:
    """Transitions of whole episodes, in the file's order, as tensors on ``device``.

    Fields (``N`` transitions): ``observations [N, obs_dim]``, ``actions [N, act_dim]``,
    ``next_observations [N, obs_dim]``, ``rewards [N]`` (float32), ``terminals [N]`` and
    ``timeouts [N]`` (bool). Episodes: ``episode_starts``, ``episode_lengths`` (int64) and
    ``episode_returns`` (float32, undiscounted), one value per episode; ``episode_index [N]``
    maps each transition to its episode. ``next_actions`` is the dataset's action at the
    next step of the same episode (ReBRAC's critic penalty); the last step of an episode
    holds its own action. ``infos`` (``qpos``, ``qvel``, ``action_log_probs``, ...) stay as
    NumPy arrays, for writing back. ``metadata`` holds ``env_id`` and the reference scores
    when known.
    """

    def __init__(
        self,
        observations: Any,
        actions: Any,
        rewards: Any,
        terminals: Any,
        timeouts: Any,
        next_observations: Any | None = None,
        *,
        infos: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        observation_space: gym.spaces.Box | None = None,
        action_space: gym.spaces.Box | None = None,
        device: str | torch.device = "cpu",
        source: str = "<arrays>",
        _checked: bool = False,
    ) -> None:
        arrays = {
            "observations": observations,
            "actions": actions,
            "rewards": rewards,
            "terminals": terminals,
            "timeouts": timeouts,
        }
        if next_observations is not None:
            arrays["next_observations"] = next_observations
        arrays = {k: _as_numpy(v) for k, v in arrays.items()}
        if not _checked:  # load() and to() pass arrays they have already checked
            arrays, infos = _validated(arrays, dict(infos or {}), source)
        infos = dict(infos or {})
        if "next_observations" not in arrays:
            arrays, infos = _with_next_observations(arrays, infos, source)
        self.source = source
        self.device = torch.device(device)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.infos: dict[str, np.ndarray] = infos

        def put(x: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.as_tensor(np.ascontiguousarray(x)).to(device=self.device, dtype=dtype)

        self.observations = put(arrays["observations"], torch.float32)
        self.actions = put(arrays["actions"], torch.float32)
        self.next_observations = put(arrays["next_observations"], torch.float32)
        self.rewards = put(arrays["rewards"], torch.float32)
        self.terminals = put(arrays["terminals"], torch.bool)
        # D4RL's convention, which d3rlpy asserts: a step that terminates on the time limit's last
        # step (gymnasium sets both flags) is a termination, not a timeout
        self.timeouts = put(arrays["timeouts"], torch.bool) & ~self.terminals
        self._index_episodes()
        obs_dim, act_dim = self.observations.shape[1], self.actions.shape[1]
        self.observation_space = observation_space or gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        if action_space is None:
            # MuJoCo's control range; wider data gets unbounded bounds rather than a wrong box
            bounded = bool(self.actions.abs().max() <= 1.0 + 1e-6)
            action_space = gym.spaces.Box(-1.0 if bounded else -np.inf, 1.0 if bounded else np.inf, (act_dim,), np.float32)
        self.action_space = action_space
        for name, space, dim in (("observation", self.observation_space, obs_dim), ("action", self.action_space, act_dim)):
            if tuple(space.shape) != (dim,):
                raise _error(
                    source,
                    f"{name}s",
                    f"the data has {dim} columns but the {name} space has shape {space.shape}",
                    f"[N, {space.shape[0] if space.shape else '?'}]",
                )

    # --- episodes ---------------------------------------------------------------------------
    def _index_episodes(self) -> None:
        ends = self.terminals | self.timeouts
        ends[-1] = True  # a trailing partial episode (D4RL files may end mid-episode) still ends here
        last = torch.nonzero(ends).squeeze(1)
        self.episode_starts = torch.cat([last.new_zeros(1), last[:-1] + 1])
        self.episode_lengths = last - self.episode_starts + 1
        self.episode_index = torch.repeat_interleave(torch.arange(len(last), device=self.device), self.episode_lengths)
        # sums through a float64 cumsum: exact enough for a million float32 rewards
        csum = torch.cat([torch.zeros(1, dtype=torch.float64, device=self.device), self.rewards.double().cumsum(0)])
        self.episode_returns = (csum[last + 1] - csum[self.episode_starts]).float()
        self._episode_ends = ends
        nxt = torch.arange(1, self.num_transitions + 1, device=self.device).clamp_(max=self.num_transitions - 1)
        self.next_actions = torch.where(ends[:, None], self.actions, self.actions[nxt])

    @property
    def num_transitions(self) -> int:
        return int(self.observations.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    def __len__(self) -> int:
        return self.num_transitions

    def __repr__(self) -> str:
        return (
            f"OfflineDataset({self.source!r}, {self.num_transitions:,} transitions, {self.num_episodes:,} episodes, "
            f"obs {tuple(self.observation_space.shape)}, act {tuple(self.action_space.shape)}, {self.device})"
        )

    @property
    def initial_observations(self) -> Tensor:
        """The first observation of every episode, ``[num_episodes, obs_dim]`` (AW's regression input)."""
        return self.observations[self.episode_starts]

    def batch(self, index: Tensor) -> dict[str, Tensor]:
        """The transitions at ``index``, keyed as :meth:`buffers.ReplayBuffer.sample`'s batches
        (``obs, actions, rewards, next_obs, terminated`` float 0/1) plus ``timeouts`` and ``next_actions``."""
        return {
            "obs": self.observations[index],
            "actions": self.actions[index],
            "rewards": self.rewards[index],
            "next_obs": self.next_observations[index],
            "terminated": self.terminals[index].float(),
            "timeouts": self.timeouts[index].float(),
            "next_actions": self.next_actions[index],
        }

    def observation_stats(self, eps: float = 1e-3) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation (+ ``eps``, CORL's guard for constant features) of the observations."""
        mean = self.observations.mean(0)
        return mean, self.observations.std(0, unbiased=False) + eps

    def to(self, device: str | torch.device) -> "OfflineDataset":
        """The dataset with its tensors on ``device`` (itself when already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        return OfflineDataset(
            **self._arrays(),
            infos=self.infos,
            metadata=self.metadata,
            observation_space=self.observation_space,
            action_space=self.action_space,
            device=device,
            source=self.source,
            _checked=True,
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).cpu().numpy() for k in (*REQUIRED_KEYS, "next_observations")}

    def check_env(self, env: gym.vector.VectorEnv | gym.Env) -> None:
        """Raise :class:`DatasetError` when ``env``'s observation or action shape differs from the data's."""
        obs = getattr(env, "single_observation_space", env.observation_space)
        act = getattr(env, "single_action_space", env.action_space)
        for name, space, dim in (("observations", obs, self.observations.shape[1]), ("actions", act, self.actions.shape[1])):
            if tuple(space.shape) != (dim,):
                env_id = getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
                raise _error(
                    self.source,
                    name,
                    f"the data has {dim} columns but env {env_id} has shape {tuple(space.shape)}",
                    f"a dataset recorded on an env with {name} of shape {tuple(space.shape)}",
                )

    # --- scores and rewards -------------------------------------------------------------------
    def reference_scores(self) -> tuple[float, float]:
        """(min, max) for normalized scores: D4RL v2's constants for its locomotion datasets,
        else the dataset's own stored ``ref_min_score``/``ref_max_score``."""
        name = str(self.metadata.get("d4rl_name", ""))
        env = name.split("-")[0]
        if env in D4RL_REF_SCORES and name.endswith(("-v1", "-v2")):
            return D4RL_REF_SCORES[env]
        lo, hi = self.metadata.get("ref_min_score"), self.metadata.get("ref_max_score")
        if lo is None or hi is None:
            raise DatasetError(
                f"{self.source}: no reference scores. D4RL locomotion datasets (loaded with from_d4rl) use D4RL's "
                "constants; for any other, store the random and expert returns as 'ref_min_score' and 'ref_max_score' "
                "(hdf5 root attributes, Minari metadata.json, or dataset.metadata before saving; "
                "scripts/make_dataset.py writes them)"
            )
        if float(hi) == float(lo):
            raise DatasetError(f"{self.source}: ref_min_score == ref_max_score == {lo}; a normalized score needs max > min")
        return float(lo), float(hi)

    def normalized_score(self, returns: float | np.ndarray | Tensor) -> float | np.ndarray:
        """``100 * (R - min) / (max - min)`` with :meth:`reference_scores` (D4RL's convention, x100)."""
        return normalized_score(returns, *self.reference_scores())

    def transform_rewards(
        self, convention: str = "none", scale: float | None = None, bias: float | None = None
    ) -> "OfflineDataset":
        """Rewrite the rewards in place by a :data:`REWARD_CONVENTIONS` name, then ``scale``/``bias``
        if given: ``r * (1000 / (max return - min return) if the convention asks) * scale + bias``."""
        if convention not in REWARD_CONVENTIONS:
            raise ValueError(f"unknown reward convention {convention!r}; available: {sorted(REWARD_CONVENTIONS)}")
        by_range, s, b = REWARD_CONVENTIONS[convention]
        s, b = s if scale is None else scale, b if bias is None else bias
        if by_range:
            spread = float(self.episode_returns.max() - self.episode_returns.min())
            if spread == 0.0:
                raise DatasetError(
                    f"{self.source}: every episode has the same return; '{convention}' divides by the return range"
                )
            s *= 1000.0 / spread
        self.rewards = self.rewards * s + b
        self._index_episodes()
        self.metadata["reward_transform"] = {"convention": convention, "scale": s, "bias": b}
        return self

    # --- reading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", d4rl_compat: bool = False) -> "OfflineDataset":
        """Read a D4RL hdf5 file, a Minari dataset directory, or an ``.npz``, told apart by content.

        ``d4rl_compat=True`` reproduces ``d4rl.qlearning_dataset(env)``'s rows: it drops the
        last row and every timeout transition, and takes ``next_observations`` from the next
        row; a file of N rows with k timeouts in its first N-1 gives N-1-k transitions.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            data = path / "data" if (path / "data" / "metadata.json").exists() else path
            if not (data / "metadata.json").exists():
                raise DatasetError(
                    f"{path}: a directory but not a Minari dataset; expected data/metadata.json and data/main_data.hdf5 inside it"
                )
            arrays, infos, meta, spaces = _read_minari(data)
        elif not path.exists():
            raise FileNotFoundError(f"no dataset at {path}")
        else:
            with open(path, "rb") as f:
                magic = f.read(8)
            if magic == b"\x89HDF\r\n\x1a\n":
                arrays, infos, meta, spaces = _read_d4rl(path)
            elif magic[:4] == b"PK\x03\x04":
                arrays, infos, meta, spaces = _read_npz(path)
            else:
                raise DatasetError(
                    f"{path}: neither an hdf5 file nor an .npz archive (first bytes {magic!r}); expected a "
                    "D4RL hdf5 file, a Minari dataset directory or an .npz"
                )
        source = str(path)
        arrays, infos = _validated(arrays, infos, source)  # a missing key is named before the constructor sees it
        if d4rl_compat:
            arrays, infos = _qlearning_rows((arrays, infos), source)
            meta["d4rl_compat"] = True
        return cls(**arrays, infos=infos, metadata=meta, device=device, source=source, _checked=True, **spaces)

    @classmethod
    def from_d4rl(
        cls, name: str, device: str | torch.device = "cpu", d4rl_compat: bool = False, dataset_dir: str | Path | None = None
    ) -> "OfflineDataset":
        """A D4RL dataset by name (``hopper-medium-v2``) from D4RL's local cache
        (``$D4RL_DATASET_DIR``, default ``~/.d4rl/datasets``), under the file name D4RL gave it."""
        root = Path(dataset_dir or os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()
        match = re.fullmatch(r"([a-z0-9]+)-(.+)-(v\d+)", name)
        if match is None:
            raise ValueError(f"D4RL dataset names look like 'hopper-medium-v2' (<env>-<level>-v<k>), got {name!r}")
        env, level, version = match.groups()
        file_name = f"{env}_{level.replace('-', '_')}-{version}.hdf5" if env in D4RL_REF_SCORES else f"{name}.hdf5"
        candidates = [root / file_name, root / f"{name}.hdf5"]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(
                f"D4RL dataset {name!r} not found: looked for {candidates[0]} (the file name D4RL uses for it) and "
                f"{candidates[1]}. Nothing is downloaded; copy the file there, set D4RL_DATASET_DIR, or build a "
                "D4RL-recipe dataset locally with scripts/make_dataset.py"
            )
        dataset = cls.load(path, device=device, d4rl_compat=d4rl_compat)
        dataset.metadata["d4rl_name"] = name
        return dataset

    @classmethod
    def from_minari(
        cls, dataset_id: str, device: str | torch.device = "cpu", d4rl_compat: bool = False, root: str | Path | None = None
    ) -> "OfflineDataset":
        """A Minari dataset by id (``mujoco/hopper/medium-v0``) from the local Minari root
        (``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``); never downloads."""
        base = Path(root or os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")).expanduser()
        path = base / dataset_id
        if not (path / "data" / "metadata.json").exists():
            raise FileNotFoundError(
                f"Minari dataset {dataset_id!r} not found locally: no {path / 'data' / 'metadata.json'}. "
                "Nothing is downloaded; set MINARI_DATASETS_PATH or pass root="
            )
        return cls.load(path, device=device, d4rl_compat=d4rl_compat)

    # --- writing ------------------------------------------------------------------------------
    def save_d4rl(self, path: str | Path, compression: str | None = "gzip") -> Path:
        """Write D4RL's hdf5 layout (the five keys, ``next_observations``, ``infos/*``; the
        reference scores and other metadata as root attributes), atomically."""
        h5py = _h5py()

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            for k, v in self._arrays().items():
                f.create_dataset(k, data=v, compression=compression)
            for k, v in self.infos.items():
                f.create_dataset(f"infos/{k}", data=v, compression=compression)
            for k, v in self.metadata.items():
                if v is not None:
                    f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
            f.attrs["observation_space"] = _space_json(self.observation_space)
            f.attrs["action_space"] = _space_json(self.action_space)
        os.replace(tmp, path)
        return path

    def save_npz(self, path: str | Path) -> Path:
        """Write an ``.npz`` with D4RL's keys, ``infos/*`` and the metadata as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        extra = {f"infos/{k}": v for k, v in self.infos.items()}
        meta = {
            **self.metadata,
            "observation_space": _space_json(self.observation_space),
            "action_space": _space_json(self.action_space),
        }
        np.savez(tmp, **self._arrays(), **extra, metadata=np.array(json.dumps(meta)))
        os.replace(tmp, path)
        return path

    def save_minari(self, directory: str | Path, dataset_id: str | None = None) -> Path:
        """Write a Minari (hdf5 backend) dataset directory, ``<directory>/data/{main_data.hdf5,
        metadata.json}``, loadable by ``minari.load_dataset`` when ``directory`` is
        ``$MINARI_DATASETS_PATH/<dataset_id>``. Episodes hold T+1 observations; a trailing
        episode that ended with neither flag is written as truncated."""
        h5py = _h5py()

        directory = Path(directory)
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        a = self._arrays()
        starts, lengths = self.episode_starts.cpu().numpy(), self.episode_lengths.cpu().numpy()
        tmp = data / "main_data.hdf5.tmp"
        with h5py.File(tmp, "w") as f:
            for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
                e = s + n
                g = f.create_group(f"episode_{i}")
                g.attrs["id"], g.attrs["total_steps"] = i, n
                g.create_dataset("observations", data=np.concatenate([a["observations"][s:e], a["next_observations"][e - 1 : e]]))
                g.create_dataset("actions", data=a["actions"][s:e])
                g.create_dataset("rewards", data=a["rewards"][s:e].astype(np.float64))
                g.create_dataset("terminations", data=a["terminals"][s:e])
                truncations = a["timeouts"][s:e].copy()
                truncations[-1] |= not a["terminals"][e - 1]
                g.create_dataset("truncations", data=truncations)
                ig = g.create_group("infos")
                for k, v in self.infos.items():
                    ig.create_dataset(k, data=v[s:e])
        os.replace(tmp, data / "main_data.hdf5")
        dataset_id = dataset_id or self.metadata.get("dataset_id") or directory.name
        meta = {
            "dataset_id": str(dataset_id),
            "total_episodes": self.num_episodes,
            "total_steps": self.num_transitions,
            "data_format": "hdf5",
            "observation_space": _space_json(self.observation_space),
            "action_space": _space_json(self.action_space),
            "minari_version": _minari_version(),
        }
        env_id = self.metadata.get("env_id")
        if env_id and env_id in gym.registry:
            meta["env_spec"] = gym.spec(env_id).to_json()
        for k in ("ref_min_score", "ref_max_score", "algorithm_name", "description"):
            if self.metadata.get(k) is not None:
                meta[k] = self.metadata[k]
        meta["policyopt_metadata"] = json.dumps({k: v for k, v in self.metadata.items() if k not in meta}, default=str)
        tmp_meta = data / "metadata.json.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_meta, data / "metadata.json")
        return directory


# --- validation --------------------------------------------------------------------------------
def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _validated(arrays: dict[str, np.ndarray], infos: dict[str, np.ndarray], source: str) -> tuple[dict, dict]:
    """Check keys, shapes, lengths, dtypes and finiteness (after the cast to float32); squeeze ``[N, 1]``
    scalars to ``[N]``."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise _error(
            source,
            missing[0],
            f"missing (keys present: {sorted(arrays)})",
            f"the D4RL keys {', '.join(REQUIRED_KEYS)} (next_observations and infos/* optional)",
        )
    out: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            raise _error(source, k, f"dtype {v.dtype}", "numbers (float or bool)")
        vector = k in ("observations", "actions", "next_observations")
        if not vector and v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]  # D4RL's get_dataset squeezes [N, 1] rewards and terminals too
        if v.ndim != (2 if vector else 1):
            form = "[N, dim]" if vector else "[N] (or [N, 1])"
            raise _error(source, k, f"shape {v.shape}", form)
        if k in ("terminals", "timeouts"):
            if v.dtype.kind == "f" and not np.isin(v, (0.0, 1.0)).all():
                raise _error(source, k, "values other than 0 and 1", "booleans (or 0/1)")
            if v.dtype.kind in "iu" and not np.isin(v, (0, 1)).all():
                raise _error(source, k, "values other than 0 and 1", "booleans (or 0/1)")
            v = v.astype(bool)
        else:
            v = _as_training_floats(v, source, k)
        out[k] = v
    n = len(out["observations"])
    if n == 0:
        raise _error(source, "observations", "no transitions (0 rows)", "at least one transition")
    for k, v in out.items():
        if len(v) != n:
            raise _error(source, k, f"{len(v)} rows but 'observations' has {n}", f"{n} rows, one per transition")
    if out["observations"].shape[1] == 0 or out["actions"].shape[1] == 0:
        raise _error(
            source, "observations" if out["observations"].shape[1] == 0 else "actions", "zero columns", "[N, dim] with dim >= 1"
        )
    if "next_observations" in out and out["next_observations"].shape[1] != out["observations"].shape[1]:
        raise _error(
            source,
            "next_observations",
            f"{out['next_observations'].shape[1]} columns but 'observations' has {out['observations'].shape[1]}",
            "the observations' shape",
        )
    checked_infos = {}
    for k, v in infos.items():
        v = np.asarray(v)
        if v.dtype.kind not in "biuf" or v.ndim == 0 or len(v) != n:
            raise _error(source, f"infos/{k}", f"shape {v.shape}, dtype {v.dtype}", f"a numeric array of {n} rows")
        checked_infos[k] = v
    return out, checked_infos


def _as_training_floats(v: np.ndarray, source: str, key: str) -> np.ndarray:
    """``v`` as float32, checked after the cast: float64 1e300 is finite before it and inf after."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = v.astype(TRAIN_DTYPE)
        ok = np.abs(out) <= MAX_ABS_VALUE  # False for NaN and inf too
    if ok.all():
        return out
    index = tuple(int(i) for i in np.argwhere(~ok)[0])
    raw = v[index]
    if not np.isfinite(raw):
        problem = f"NaN or inf at index {index}"
    elif not np.isfinite(out[index]):
        problem = f"{float(raw):.6g} at index {index}, which is inf as float32"
    else:
        problem = f"{float(raw):.6g} at index {index}, whose square overflows float32 (TD errors, variances)"
    raise _error(source, key, problem, f"finite values within +-{MAX_ABS_VALUE:.3g} (trained as float32)")


def _with_next_observations(arrays: dict, infos: dict, source: str) -> tuple[dict, dict]:
    """Derive ``next_observations`` from the next row inside each episode. A file without them
    has no successor for a timeout (or a trailing) last step: those rows are dropped, with a warning."""
    obs, term = arrays["observations"], arrays["terminals"]
    ends = term | arrays["timeouts"]
    ends[-1] = True
    nxt = np.concatenate([obs[1:], obs[-1:]])
    nxt = np.where(term[:, None], obs, nxt)  # a termination's next observation is never used
    keep = ~(ends & ~term)
    if (~keep).any():
        warnings.warn(
            f"{source}: no 'next_observations'; dropped the {int((~keep).sum())} episode-final steps that are "
            "not terminations (timeouts and the last row), which have no next observation",
            RuntimeWarning,
        )
        # the step before a dropped one now ends its episode, truncated
        before = np.nonzero(~keep)[0] - 1
        before = before[(before >= 0) & keep[np.clip(before, 0, None)] & ~ends[np.clip(before, 0, None)]]
        timeouts = arrays["timeouts"].copy()
        timeouts[before] = True
        arrays = {**arrays, "timeouts": timeouts}
    out = {k: v[keep] for k, v in arrays.items()}
    out["next_observations"] = nxt[keep]
    if not keep.any():
        raise _error(
            source,
            "observations",
            "no transition has a next observation",
            "next_observations, or episodes that end in terminations",
        )
    return out, {k: v[keep] for k, v in infos.items()}


def _qlearning_rows(validated: tuple[dict, dict], source: str) -> tuple[dict, dict]:
    """``d4rl.qlearning_dataset``'s rows: i in 0..N-2, skipping timeouts, next obs = obs[i+1]."""
    arrays, infos = validated
    n = len(arrays["observations"])
    if n < 2:
        raise _error(source, "observations", f"{n} row", "at least 2 rows for d4rl_compat (qlearning_dataset drops the last)")
    timeouts = arrays["timeouts"]
    keep = np.zeros(n, dtype=bool)
    keep[:-1] = ~timeouts[:-1]
    out = {k: arrays[k][keep] for k in ("observations", "actions", "rewards", "terminals")}
    out["next_observations"] = arrays["observations"][1:][keep[:-1]]
    # episode boundaries: the kept step before a dropped timeout ends its episode (bootstrapped, as there)
    ends_before_drop = np.zeros(n, dtype=bool)
    ends_before_drop[:-1] = timeouts[1:] & ~arrays["terminals"][:-1]
    out["timeouts"] = ends_before_drop[keep]
    return out, {k: v[keep] for k, v in infos.items()}


# --- formats -----------------------------------------------------------------------------------
def _read_d4rl(path: Path) -> tuple[dict, dict, dict, dict]:
    h5py = _h5py()

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable hdf5 file ({e}); expected a D4RL hdf5 file") from e
    with f:
        if any(k.startswith("episode_") for k in f.keys()):
            raise DatasetError(
                f"{path}: per-episode groups, a Minari main_data.hdf5; load its dataset directory "
                "(the one holding data/metadata.json) instead"
            )
        arrays = {}
        for k in (*REQUIRED_KEYS, "next_observations"):
            node = _h5_get(f, k, str(path))
            if node is not None:
                if not isinstance(node, h5py.Dataset):
                    raise _error(str(path), k, "a group", "an array dataset")
                arrays[k] = node[()]
        infos = {k: v[()] for k, v in _h5_datasets(f, "infos", str(path)).items()}
        meta = {k: _attr(v) for k, v in f.attrs.items()}
        for k, v in _h5_datasets(f, "metadata", str(path)).items():
            if v.shape == ():
                meta.setdefault(k, _attr(v[()]))
    spaces = {k: _space_from_json(meta.pop(k), str(path), k) for k in ("observation_space", "action_space") if k in meta}
    return arrays, infos, meta, spaces


def _read_npz(path: Path) -> tuple[dict, dict, dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            content = {k: z[k] for k in z.files}
    except Exception as e:  # a corrupt zip, an object array...
        raise DatasetError(
            f"{path}: not a readable .npz ({type(e).__name__}: {e}); expected numeric arrays under the D4RL keys"
        ) from e
    meta = {}
    if "metadata" in content:
        try:
            meta = json.loads(str(content.pop("metadata")))
        except (json.JSONDecodeError, TypeError) as e:
            raise _error(str(path), "metadata", f"not JSON ({e})", "a JSON string") from e
        if not isinstance(meta, dict):
            raise _error(str(path), "metadata", f"a JSON {type(meta).__name__}", "a JSON object")
    infos = {k[len("infos/") :]: v for k, v in content.items() if k.startswith("infos/")}
    arrays = {k: v for k, v in content.items() if k in (*REQUIRED_KEYS, "next_observations")}
    spaces = {k: _space_from_json(meta.pop(k), str(path), k) for k in ("observation_space", "action_space") if k in meta}
    return arrays, infos, meta, spaces


def _read_minari(data: Path) -> tuple[dict, dict, dict, dict]:
    source = str(data.parent)
    try:
        meta = json.loads((data / "metadata.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _error(str(data / "metadata.json"), None, f"not JSON ({e})", "Minari's metadata.json") from e
    if not isinstance(meta, dict):
        raise _error(str(data / "metadata.json"), None, "not a JSON object", "Minari's metadata.json")
    fmt = meta.get("data_format", "hdf5")
    # spaces come only from their plain JSON here; env_spec is never made into an env
    spaces = {k: _space_from_json(meta[k], source, k) for k in ("observation_space", "action_space") if k in meta}
    if fmt == "arrow":
        episodes = _minari_episodes_arrow(data, source, spaces)
    elif fmt == "hdf5":
        episodes = _minari_episodes_hdf5(data / "main_data.hdf5", source)
    else:
        raise _error(str(data / "metadata.json"), "data_format", f"{fmt!r}", "'hdf5' or 'arrow'")
    if not episodes:
        raise _error(source, "episodes", "no episodes", "at least one episode_<i> group")
    cols: dict[str, list] = {k: [] for k in (*REQUIRED_KEYS, "next_observations")}
    info_cols: dict[str, list] = {}
    for name, ep in episodes:
        obs, act = np.asarray(ep["observations"]), np.asarray(ep["actions"])
        t = len(act)
        if obs.ndim != 2 or act.ndim != 2:
            raise _error(
                source,
                f"{name}/observations",
                f"observations {obs.shape}, actions {act.shape}",
                "Box observations [T+1, obs_dim] and actions [T, act_dim] (Dict/Tuple spaces are not supported)",
            )
        if len(obs) != t + 1:
            raise _error(
                source,
                f"{name}/observations",
                f"{len(obs)} rows for {t} actions (Minari #199: T instead of T+1)",
                f"T+1 = {t + 1} rows, the last being the observation after the final step",
            )
        term = np.asarray(ep["terminations"]).astype(bool)
        trunc = np.asarray(ep["truncations"]).astype(bool)
        for k, v in (("rewards", ep["rewards"]), ("terminations", term), ("truncations", trunc)):
            if np.shape(v) != (t,):
                raise _error(source, f"{name}/{k}", f"shape {np.shape(v)}", f"[{t}], one per action")
        if t and not (term[-1] or trunc[-1]):
            trunc = trunc.copy()
            trunc[-1] = True  # an episode cut without either flag still ends here, bootstrapped
        cols["observations"].append(obs[:-1])
        cols["next_observations"].append(obs[1:])
        cols["actions"].append(act)
        cols["rewards"].append(np.asarray(ep["rewards"]))
        cols["terminals"].append(term)
        cols["timeouts"].append(trunc)
        for k, v in ep.get("infos", {}).items():
            info_cols.setdefault(k, []).append(np.asarray(v)[:t])
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    infos = {k: np.concatenate(v) for k, v in info_cols.items() if len(v) == len(episodes)}
    extra = meta.pop("policyopt_metadata", None)
    out_meta = {k: v for k, v in meta.items() if k in ("dataset_id", "ref_min_score", "ref_max_score", "algorithm_name")}
    if isinstance(extra, str):
        try:
            out_meta.update(json.loads(extra))
        except json.JSONDecodeError:
            pass
    env_spec = meta.get("env_spec")
    if isinstance(env_spec, str):
        try:
            out_meta.setdefault("env_id", json.loads(env_spec).get("id"))
        except (json.JSONDecodeError, AttributeError):
            pass
    return arrays, infos, out_meta, spaces


def _minari_episodes_hdf5(path: Path, source: str) -> list[tuple[str, dict]]:
    h5py = _h5py()

    if not path.exists():
        raise _error(source, None, f"no {path}", "data/main_data.hdf5 beside data/metadata.json")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise _error(str(path), None, f"not a readable hdf5 file ({e})", "Minari's main_data.hdf5") from e
    episodes = []
    with f:
        names = sorted(
            (k for k in f.keys() if k.startswith("episode_")),
            key=lambda k: int(k.split("_")[1]) if k.split("_")[1].isdigit() else -1,
        )
        for name in names:
            ep = {}
            for k in ("observations", "actions", "rewards", "terminations", "truncations"):
                node = _h5_get(f, f"{name}/{k}", str(path))
                if not isinstance(node, h5py.Dataset):
                    raise _error(source, f"{name}/{k}", "missing or a group", "an array (Box spaces)")
                ep[k] = node[()]
            ep["infos"] = {k: v[()] for k, v in _h5_datasets(f, f"{name}/infos", str(path)).items()}
            episodes.append((name, ep))
    return episodes


def _minari_episodes_arrow(data: Path, source: str, spaces: Mapping[str, gym.spaces.Box]) -> list[tuple[str, dict]]:
    """Minari's arrow episodes (``data/<id>/*.arrow``), read with pyarrow alone. ``minari.MinariDataset``
    is not used: given no spaces it runs ``gym.make`` on the file's env_spec, and an entry point can be
    any importable callable (``subprocess:run``), so reading the file would run its code."""
    pa, pa_dataset = _pyarrow(source)
    boxes = {"observations": spaces.get("observation_space"), "actions": spaces.get("action_space")}
    dirs = sorted((d for d in data.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    episodes = []
    for d in dirs:
        name = f"episode_{d.name}"
        try:
            table = pa_dataset.dataset(str(d), format="arrow", ignore_prefixes=["_", ".", "metadata.json"]).to_table()
        except (pa.ArrowException, OSError) as e:
            raise _error(str(d), None, f"not readable as Arrow ({type(e).__name__}: {e})", "Minari's arrow episode files") from e
        ep = {}
        for k in ("observations", "actions", "rewards", "terminations", "truncations"):
            space = boxes.get(k)
            ep[k] = _arrow_column(pa, table, k, source, name, tuple(space.shape) if space is not None else None)
        for k in ("actions", "rewards", "terminations", "truncations"):
            ep[k] = ep[k][:-1]  # Minari pads these by one row to the observations' T+1
        episodes.append((name, ep))
    return episodes


def _arrow_column(pa: Any, table: Any, key: str, source: str, episode: str, shape: tuple[int, ...] | None) -> np.ndarray:
    """A numeric column, or a fixed-size list column (a Box space) as ``[rows, *shape]``."""
    if key not in table.column_names:
        raise _error(source, f"{episode}/{key}", f"missing (columns: {table.column_names})", "Minari's arrow columns")
    col = table.column(key).combine_chunks()
    t = col.type
    values = col.flatten() if pa.types.is_fixed_size_list(t) else col
    numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type)
    if not numeric or col.null_count or values.null_count:
        raise _error(
            source,
            f"{episode}/{key}",
            f"arrow type {t}" + (" with nulls" if numeric else ""),
            "numbers, or fixed-size lists of numbers (Box spaces; JPEG images, Dict, Tuple and Text are not supported)",
        )
    out = values.to_numpy(zero_copy_only=False)
    if not pa.types.is_fixed_size_list(t):
        return out
    if shape is None or int(np.prod(shape)) != t.list_size:
        shape = (t.list_size,)  # a space that disagrees is reported by the constructor, by name
    return out.reshape(len(col), *shape)


def _pyarrow(source: str) -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.dataset
    except ImportError as e:
        raise DatasetError(
            f"{source}: an arrow-format Minari dataset; reading it needs pyarrow (pip install pyarrow), hdf5-format ones do not"
        ) from e
    version = tuple(int(x) for x in re.findall(r"\d+", pyarrow.__version__)[:3])
    if version < (14, 0, 1):  # CVE-2023-47248: older pyarrow unpickles extension types found in a file
        raise DatasetError(
            f"{source}: pyarrow {pyarrow.__version__} can run code stored in an arrow file "
            "(CVE-2023-47248); expected pyarrow >= 14.0.1"
        )
    return pyarrow, pyarrow.dataset


def _h5_get(root: Any, key: str, source: str) -> Any:
    """The object at ``key`` in ``root`` (None when absent), reached only through links inside the
    file: h5py silently opens the file an external link names, and a virtual or external-storage
    dataset reads its values from other files, so the data would not be the file's."""
    h5py = _h5py()
    node, parts, hops = root, key.split("/"), 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if not isinstance(node, h5py.Group) or not node.id.links.exists(name.encode()):
            return None  # H5Lexists looks at the link itself and resolves nothing
        kind = node.id.links.get_info(name.encode()).type
        if kind == h5py.h5l.TYPE_SOFT:  # a path inside this file: follow it, checking each link on the way
            hops += 1
            if hops > 32:
                raise _error(source, key, "a cycle of hdf5 soft links", "datasets reached through links inside the file")
            target = node.id.links.get_val(name.encode()).decode()
            node = root.file if target.startswith("/") else node
            parts = [p for p in target.split("/") if p] + parts
        elif kind == h5py.h5l.TYPE_HARD:
            node = node[name]
        else:  # external or user-defined: both resolve outside this file
            link = f"an hdf5 link of type {kind}"
            if kind == h5py.h5l.TYPE_EXTERNAL:
                file, path = (b.decode(errors="replace") for b in node.id.links.get_val(name.encode()))
                link = f"an hdf5 external link to {file}:{path}"
            raise _error(
                source, key, f"{link}, which reads another file", "data stored in this file (external links are refused)"
            )
    if isinstance(node, h5py.Dataset) and (node.is_virtual or node.external):
        raise _error(
            source, key, "an hdf5 virtual or external-storage dataset, which reads other files", "data stored in this file"
        )
    return node


def _h5_datasets(root: Any, group: str, source: str) -> dict[str, Any]:
    """The datasets directly in ``group`` (empty when it is absent or not a group), checked by :func:`_h5_get`."""
    h5py = _h5py()
    g = _h5_get(root, group, source)
    if not isinstance(g, h5py.Group):
        return {}
    nodes = {k: _h5_get(root, f"{group}/{k}", source) for k in g.keys()}  # keys() lists names, following nothing
    return {k: v for k, v in nodes.items() if isinstance(v, h5py.Dataset)}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError("hdf5 datasets (D4RL files, Minari directories) need h5py: pip install 'policyopt[offline]'") from e
    return h5py


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v.tolist() if isinstance(v, np.ndarray) else v


def _space_json(space: gym.spaces.Box) -> str:
    """Minari's JSON form of a Box space."""
    return json.dumps(
        {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    )


def _space_from_json(text: Any, source: str, key: str) -> gym.spaces.Box:
    try:
        d = json.loads(text) if isinstance(text, str) else text
        if d["type"] != "Box":
            raise _error(source, key, f"a {d['type']} space", "a Box space (Dict/Tuple/Discrete datasets are not supported)")
        return gym.spaces.Box(
            np.asarray(d["low"], dtype=np.float32), np.asarray(d["high"], dtype=np.float32), tuple(d["shape"]), np.float32
        )
    except DatasetError:
        raise
    except Exception as e:
        raise _error(
            source,
            key,
            f"unreadable ({type(e).__name__}: {e})",
            "Minari's JSON Box form {\"type\": \"Box\", \"dtype\": ..., \"shape\": [...], \"low\": [...], \"high\": [...]}",
        ) from e


def _minari_version() -> str:
    try:
        from importlib.metadata import version

        return version("minari")
    except Exception:
        return "0.5.4"


def recorded_env_id(env_id: Any, source: str) -> str | None:
    """An env id read from a file, if it is a plain registered id (``Hopper-v5``). gymnasium imports the module of
    a ``"pkg.module:Env-v0"`` id, and a file must not choose what gets imported, so such an id is refused."""
    if env_id is None:
        return None
    if not isinstance(env_id, str) or ":" in env_id or not env_id.strip():
        raise DatasetError(
            f"{source}: its recorded env id {env_id!r} is not a plain registered id (such as Hopper-v5); an "
            "id that names a module would import it. Pass the env id yourself (--env-id)"
        )
    return env_id


def load_dataset(spec: str | Path, device: str | torch.device = "cpu", d4rl_compat: bool = False) -> OfflineDataset:
    """A dataset from a path (D4RL hdf5, Minari directory, npz), else a Minari id in the local
    Minari root (``mujoco/hopper/medium-v0``), else a D4RL name in D4RL's cache (``hopper-medium-v2``)."""
    path = Path(spec).expanduser()
    if path.exists():
        return OfflineDataset.load(path, device=device, d4rl_compat=d4rl_compat)
    spec = str(spec)
    if "/" in spec and not spec.endswith((".hdf5", ".h5", ".npz")):
        return OfflineDataset.from_minari(spec, device=device, d4rl_compat=d4rl_compat)
    if re.fullmatch(r"[a-z0-9]+-.+-v\d+", spec):
        return OfflineDataset.from_d4rl(spec, device=device, d4rl_compat=d4rl_compat)
    raise FileNotFoundError(
        f"no dataset {spec!r}: not a file or directory, a Minari id (namespace/name-vN) or a D4RL name (hopper-medium-v2)"
    )


# --- building datasets -------------------------------------------------------------------------
def concatenate(datasets: list[OfflineDataset], metadata: Mapping[str, Any] | None = None) -> OfflineDataset:
    """The datasets one after another (D4RL's medium-expert is medium then expert); the first's
    spaces, device and (unless ``metadata`` is given) metadata. Each part's last episode still ends
    where the part ends."""
    if not datasets:
        raise ValueError("concatenate needs at least one dataset")
    parts = []
    for d in datasets:
        a = d._arrays()
        a["timeouts"] = a["timeouts"].copy()
        a["timeouts"][-1] |= not a["terminals"][-1]  # keep a part's trailing episode apart from the next part
        parts.append(a)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    common = set.intersection(*(set(d.infos) for d in datasets))
    infos = {k: np.concatenate([d.infos[k] for d in datasets]) for k in sorted(common)}
    first = datasets[0]
    return OfflineDataset(
        **arrays,
        infos=infos,
        metadata=dict(first.metadata if metadata is None else metadata),
        observation_space=first.observation_space,
        action_space=first.action_space,
        device=first.device,
        source=" + ".join(d.source for d in datasets),
    )


def select_episodes(dataset: OfflineDataset, episodes: Any, metadata: Mapping[str, Any] | None = None) -> OfflineDataset:
    """A dataset of the given episodes (indices, repeats allowed), in that order."""
    episodes = torch.as_tensor(episodes, dtype=torch.int64, device=dataset.device)
    lengths = dataset.episode_lengths[episodes]
    offsets = torch.arange(int(lengths.sum()), device=dataset.device) - torch.repeat_interleave(
        lengths.cumsum(0) - lengths, lengths
    )
    rows = (torch.repeat_interleave(dataset.episode_starts[episodes], lengths) + offsets).cpu().numpy()
    arrays = {k: v[rows] for k, v in dataset._arrays().items()}
    ends = np.cumsum(lengths.cpu().numpy()) - 1
    arrays["timeouts"][ends] |= ~arrays["terminals"][ends]  # an episode cut by the file's end stays apart
    return OfflineDataset(
        **arrays,
        infos={k: v[rows] for k, v in dataset.infos.items()},
        metadata=dict(dataset.metadata if metadata is None else metadata),
        observation_space=dataset.observation_space,
        action_space=dataset.action_space,
        device=dataset.device,
        source=f"episodes of {dataset.source}",
    )


def mix_datasets(good: OfflineDataset, bad: OfflineDataset, ratio: float, seed: int = 0) -> OfflineDataset:
    """Hong et al. (ICLR 2023)'s mixed datasets: ``ratio`` of the transitions from ``good``.

    With ``N = len(good)``: draw good episodes uniformly with replacement until more than
    ``int(ratio * N)`` transitions, then bad ones until more than ``N - n_good``; good first,
    then bad, as their generator wrote them, but from a seeded RNG. Reference scores are the good one's.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio is the fraction of good transitions, in (0, 1]; got {ratio}")
    rng = np.random.default_rng(seed)
    n = good.num_transitions

    def draw(d: OfflineDataset, more_than: int) -> list[int]:
        lengths, chosen, total = d.episode_lengths.cpu().numpy(), [], 0
        while total <= more_than:
            i = int(rng.integers(d.num_episodes))
            chosen.append(i)
            total += int(lengths[i])
        return chosen

    good_eps = draw(good, int(ratio * n))
    n_good = int(good.episode_lengths[good_eps].sum())
    bad_eps = draw(bad, n - n_good) if n - n_good > 0 else []
    meta = {
        **good.metadata,
        "mix": {
            "ratio": ratio,
            "seed": seed,
            "good_transitions": n_good,
            "bad_transitions": int(bad.episode_lengths[bad_eps].sum()) if bad_eps else 0,
        },
    }
    parts = [select_episodes(good, good_eps)] + ([select_episodes(bad, bad_eps)] if bad_eps else [])
    return concatenate(parts, metadata=meta)


class EpisodeRecorder:
    """Steps of ``num_envs`` parallel episodes, recorded as a vector env produces them and
    ordered into whole episodes by :meth:`dataset`: each episode contiguous, episodes in the
    order they finished (ties by env copy). Steps of episodes still running are left out."""

    FIELDS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")

    def __init__(self) -> None:
        self._rows: dict[str, list[Tensor]] = {k: [] for k in self.FIELDS}

    @property
    def num_rows(self) -> int:
        """Vector-env steps recorded (each holds one transition per env copy)."""
        return len(self._rows["rewards"])

    def add(self, obs: Tensor, actions: Tensor, rewards: Tensor, terminated: Tensor, truncated: Tensor, next_obs: Tensor) -> None:
        """One vector-env step: ``next_obs`` is the true next observation (``info["final_obs"]``), not the reset one."""
        for k, v in zip(self.FIELDS, (obs, actions, rewards, terminated, truncated, next_obs)):
            self._rows[k].append(v.detach().clone())  # on the env's device: no host sync per step

    def complete_transitions(self, rows: int | None = None) -> int:
        """How many transitions of whole episodes the first ``rows`` rows hold."""
        return int(self._order(rows)[0].sum())

    def _order(self, rows: int | None) -> tuple[np.ndarray, np.ndarray]:
        rows = self.num_rows if rows is None else rows
        done = (torch.stack(self._rows["terminals"][:rows]) | torch.stack(self._rows["timeouts"][:rows])).cpu().numpy()
        t = np.broadcast_to(np.arange(rows)[:, None], done.shape)
        env = np.broadcast_to(np.arange(done.shape[1])[None, :], done.shape)
        end = np.where(done, t, rows)
        end = np.minimum.accumulate(end[::-1], axis=0)[::-1]  # the step each one's episode ends at
        complete = end < rows
        order = np.lexsort((t[complete], env[complete], end[complete]))
        flat = (t * done.shape[1] + env)[complete][order]
        return complete, flat

    def dataset(self, rows: int | None = None, max_transitions: int | None = None, **kwargs: Any) -> OfflineDataset:
        """The whole episodes among the first ``rows`` rows as an :class:`OfflineDataset`, cut to
        ``max_transitions`` (the last episode may then end mid-way, as D4RL's files do)."""
        complete, flat = self._order(rows)
        if len(flat) == 0:
            raise ValueError(f"no episode finished within the {self.num_rows if rows is None else rows} recorded steps")
        flat = flat[:max_transitions]
        rows = self.num_rows if rows is None else rows
        arrays = {k: torch.stack(v[:rows]).flatten(0, 1).cpu()[torch.as_tensor(flat)].numpy() for k, v in self._rows.items()}
        return OfflineDataset(**arrays, **kwargs)
