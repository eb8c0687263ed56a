"""Sweep a grid of algorithms x env ids or datasets x seeds x config overrides: one training run per trial.

    python scripts/sweep.py --algos ppo spo --envs Pendulum-v1 CartPole-v1 --seeds 0 1 2 --total-steps 20000 \\
        --set algo.learning_rate=3e-4,1e-3 num_envs=8
    python scripts/sweep.py --grid scripts/sweeps/example.toml                # the same kind of grid from a file
    python scripts/sweep.py --grid scripts/sweeps/example.toml --resume       # continue after an interruption or a failure
    python scripts/sweep.py --grid scripts/sweeps/example.toml --dry-run      # list the trials and their run dirs
    python scripts/sweep.py --grid grid.toml --address auto                   # the same sweep on an existing Ray cluster
    python scripts/sweep.py --grid grid.toml --no-ray                         # one trial after another, in this process

A trial is one run of the training scripts' own code (``policyopt.algos.run.train.parse`` and ``train``, what
``scripts/train_<algo>.py`` calls) with the command line ``--env-id E`` (or ``--dataset D``) ``--seed N
--total-steps T --run-dir DIR`` plus its overrides, so it writes the usual run directory (config.json,
metrics.jsonl, TensorBoard events, checkpoint.pt every ``checkpoint_every`` steps) at
``<root>/<algo>/<env id or dataset name>/<override label>/seed<N>``, and its output to ``train.log`` there.
The label names the overrides that vary across the grid (``learning_rate=0.001,num_envs=8``; ``default``
when none varies). Online algorithms run on ``--envs``, dataset ones (``bc``, ``iql``, ...) on
``--datasets``, evaluated on the dataset's own env id (its metadata) unless ``env_id`` is set.

``--set KEY=V1,V2,...`` makes an axis of the grid (one value: a fixed setting). KEY is ``algo.<field>``
(the algorithm's config, ``--algo.<field>`` of the train scripts) or a run setting (``num_envs``,
``eval_every``, ``eval_episodes``, ``checkpoint_every``, ``preset``, ``device``, ...); ``ppo:KEY`` applies to
PPO's trials only. A value of a tuple field is written with spaces (``"algo.actor_hidden=64 64,256 256"``).
Without ``eval_every`` the runs evaluate ``total_steps`` split into at most 10 equal parts, so the last
evaluation is at the end. In a TOML (or YAML) ``--grid`` file, where a list is an axis::

    algos = ["ppo", "spo"]
    envs = ["Pendulum-v1", "CartPole-v1"]
    seeds = [0, 1, 2]
    total_steps = 20000
    [settings]                 # run settings
    num_envs = 8
    [algo_config]              # config fields of every algorithm
    learning_rate = [3e-4, 1e-3]
    [algo_config.ppo]          # PPO's trials only
    clip_coef = [0.1, 0.2]

Flags given on the command line replace the file's (``--set`` replaces the same key, adds others).
Every algorithm, env id, dataset and override is checked (each distinct config parsed as the train
script would) before any trial starts; a bad one is an error naming it and the valid choices.

With Ray Tune (``pip install -e ".[sweep]"``) the trials run as a ``tune.grid_search`` on a local Ray
started with ``--cpus`` CPUs (default: this process's cores), as many at once as there are cores, each
with ``max(1, cores // trials in the grid)`` torch threads (``--threads-per-trial`` sets it);
``--address`` connects to an existing cluster instead, whose nodes need policyopt installed and
``--root`` on a shared file system. Tune's own files go to ``<root>/_tune``. Without ray (or with
``--no-ray``) the trials run one after another here, each with the threads Ray would give it: the
thread count changes a run's numbers, so both modes and every rerun use the same. Each run records
it (``--torch-threads`` in its config.json, the summary's torch threads column), and a resumed run
keeps its own.

``--resume`` takes each trial's run dir as it finds it: a run whose checkpoint reached the total is
skipped, one with a checkpoint short of it is continued exactly (the train scripts' ``--resume``), and
one with no checkpoint, or one that cannot be read, starts again, after its files are moved into
``aside-<time>-<why>/`` in its run dir (nothing is deleted; a line says what moved where). Without
``--resume`` a root that already holds runs of the grid is an error. One sweep runs on a root at a
time: a second exits naming the first's PID. The summary at the end lists every trial's status,
final evaluation (the last ``eval/return`` of metrics.jsonl), torch threads and run dir; the exit
status is 1 when any trial failed or is unfinished, 130 after Ctrl-C (rerun with ``--resume``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import itertools
import json
import os
import sys
import time
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Sequence

import torch
import tyro

ROOT = Path(__file__).resolve().parents[2]  # the repository (an editable install): its results/ and scripts/
from policyopt.algos import ALGORITHMS  # noqa: E402
from policyopt.algos.core.checkpoint import load_checkpoint  # noqa: E402
from policyopt.algos.core.logger import CONFIG_FILE, METRICS_FILE, read_metrics  # noqa: E402
from policyopt.algos.run import rundir  # noqa: E402
from policyopt.algos.run.rundir import DirectoryLock, DirectoryLockedError  # noqa: E402
from policyopt.buffers import DatasetError, load_dataset, recorded_env_id  # noqa: E402
from policyopt.algos.run.train import TrainArgs  # noqa: E402


# Run settings the sweep itself sets per trial (a --set of them would be ambiguous or break the layout).
OWNED = {
    "seed": "use --seeds",
    "total_steps": "use --total-steps",
    "run_dir": "the sweep names each run's dir",
    "resume": "use --resume",
    "progress": "trials never draw a progress bar",
    "algo": "set its fields as algo.<field>",
    "torch_threads": "use --threads-per-trial",
    "dataset": "use --datasets",
}
GRID_KEYS = ("algos", "envs", "datasets", "seeds", "total_steps", "settings", "algo_config")
DONE = ("done", "resumed", "finished")  # statuses that leave a complete run
TRIAL_LOG = "train.log"


class SweepError(ValueError):
    """A grid that cannot run as given; the message names the bad entry."""


@dataclass
class Args:
    """Run a grid of training runs (algorithms x envs or datasets x seeds x overrides) on Ray Tune, or one by one."""

    grid: Path | None = None
    """a TOML (or YAML) file with the grid; the flags below replace its entries"""
    algos: list[str] | None = None
    """algorithms, as the train scripts name them (ppo, spo, sac, iql, ...)"""
    envs: list[str] | None = None
    """env ids for the online algorithms"""
    datasets: list[str] | None = None
    """datasets for the dataset algorithms: files, Minari directories or ids, D4RL names"""
    seeds: list[int] | None = None
    """seeds of every cell (none given: 0)"""
    total_steps: int | None = None
    """env steps (dataset algorithms: gradient updates) per run"""
    # appended: a second --set adds its entries rather than silently replacing the first's
    overrides: Annotated[tyro.conf.UseAppendAction[list[list[str]]], tyro.conf.arg(name="set")] = field(default_factory=list)
    """[ALGO:]KEY=V1,V2,...: an axis of the grid; KEY is algo.<field> or a run setting such as num_envs (repeatable)"""
    root: Path = Path("runs/sweep")
    """run dirs go to <root>/<algo>/<task>/<override label>/seed<N>"""
    resume: bool = False
    """continue unfinished runs from their checkpoints, skip finished ones, restart ones without a checkpoint"""
    address: str | None = None
    """connect to this Ray cluster (ray.init(address=...), e.g. auto or ray://host:10001) instead of a local Ray"""
    no_ray: bool = False
    """run the trials one after another in this process even when ray is installed"""
    cpus: int | None = None
    """cores for the local Ray and the thread split (None: this process's cores)"""
    threads_per_trial: int | None = None
    """torch threads (and Ray CPUs) of each trial, with or without Ray (None: max(1, cores // trials in the grid); on a cluster 1)"""
    dry_run: bool = False
    """list the trials and their run dirs and exit; nothing is written or run"""


@dataclass(frozen=True)
class Override:
    """One key of the grid and its values; ``algo`` limits it to that algorithm's trials."""

    key: str
    values: tuple[Any, ...]
    algo: str | None = None


@dataclass
class Grid:
    algos: list[str]
    envs: list[str]
    datasets: list[str]
    seeds: list[int]
    total_steps: int
    overrides: list[Override]


@dataclass(frozen=True)
class Trial:
    """One training run of the grid."""

    algo: str
    task: str
    label: str
    seed: int
    run_dir: Path
    argv: tuple[str, ...]
    """the train CLI's arguments of a fresh run"""
    resume_argv: tuple[str, ...]
    """the same run continued: the sweep's derived defaults (eval_every) are left to the run's config.json"""
    target: int
    """global step of a finished run (total_steps, plus online_steps offline-to-online)"""

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.task}/{self.label}/seed{self.seed}"


# --- the grid: file and command line ----------------------------------------------------------------


def _choices(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return (f" (did you mean {close[0]!r}?)" if close else "") + f"; valid: {', '.join(sorted(valid))}"


def _scalar(token: str) -> Any:
    """A word of the command line typed as a grid file would type it ('3e-4' -> 0.0003, 'true' -> True)."""
    words = {"true": True, "false": False, "none": None, "null": None}
    if token.lower() in words:
        return words[token.lower()]
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return token


def _cli_value(text: str, is_sequence: bool, is_bool: bool = False) -> Any:
    """One value of ``--set``: a tuple of words for a tuple field, else one typed word (or the text)."""
    tokens = text.split()
    if is_sequence:
        return tuple(_scalar(t) for t in tokens)
    value = _scalar(text.strip()) if len(tokens) <= 1 else text.strip()
    if is_bool and value in (0, 1, "yes", "no"):  # a flag of the train CLI takes no value: make it a bool
        value = value in (1, "yes")
    return value


def _file_values(value: Any, is_sequence: bool) -> tuple[Any, ...]:
    """A file's value as the axis it spans: a list is an axis, except one flat list of a tuple field (one value)."""
    if not isinstance(value, list):
        return (value,)
    if is_sequence and not any(isinstance(v, list) for v in value):
        return (tuple(value),)
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def local_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_sequence(hint: Any) -> bool:
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    return any(typing.get_origin(k) in (tuple, list) or k in (tuple, list) for k in kinds)


def _is_bool(hint: Any) -> bool:
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    return bool in kinds


def _field_hint(algo: str, key: str) -> Any:
    """The type of ``key`` (algo.<field> or a run setting) for ``algo``; None when unknown (checked later)."""
    cls = ALGORITHMS.get(algo)
    if cls is None:
        return None
    if key.startswith("algo."):
        return _hints(cls.config_class).get(key[5:])
    return {**_hints(TrainArgs), "online_steps": int, "dataset": str}.get(key)


def parse_set(entry: str, algos: Sequence[str]) -> Override:
    """``[ALGO:]KEY=V1,V2`` from ``--set``."""
    if "=" not in entry:
        raise SweepError(f"--set {entry!r}: expected [ALGO:]KEY=V1,V2,... (e.g. algo.learning_rate=3e-4,1e-3)")
    key, text = entry.split("=", 1)
    algo, _, key = key.strip().rpartition(":")
    key = key.strip().replace("-", "_")
    scope = [algo] if algo else list(algos)
    sequence = any(_is_sequence(_field_hint(a, key)) for a in scope)
    boolean = any(_is_bool(_field_hint(a, key)) for a in scope)
    return Override(key, tuple(_cli_value(v, sequence, boolean) for v in text.split(",")), algo or None)


def read_grid_file(path: Path) -> dict[str, Any]:
    """A grid file as a dict: TOML (stdlib), or YAML when pyyaml is installed."""
    if not path.is_file():
        raise SweepError(f"--grid {path}: no such file")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SweepError(f"--grid {path}: YAML needs pyyaml (pip install pyyaml); TOML needs nothing") from None
        data = yaml.safe_load(text) or {}
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise SweepError(f"--grid {path}: TOML needs Python 3.11 (tomllib); use a YAML grid with pyyaml") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SweepError(f"--grid {path}: not valid TOML ({e})") from None
    if not isinstance(data, dict):
        raise SweepError(f"--grid {path}: expected a table of {', '.join(GRID_KEYS)}")
    unknown = [k for k in data if k not in GRID_KEYS]
    if unknown:
        raise SweepError(f"--grid {path}: unknown entry {unknown[0]!r}{_choices(unknown[0], GRID_KEYS)}")
    return data


def _file_overrides(data: dict[str, Any], algos: Sequence[str]) -> list[Override]:
    out = []
    for key, value in (data.get("settings") or {}).items():
        out.append(Override(key, _file_values(value, any(_is_sequence(_field_hint(a, key)) for a in algos))))
    for key, value in (data.get("algo_config") or {}).items():
        if isinstance(value, dict):  # [algo_config.<algo>]: that algorithm's own fields
            for sub, v in value.items():
                out.append(Override(f"algo.{sub}", _file_values(v, _is_sequence(_field_hint(key, f"algo.{sub}"))), key))
        else:
            out.append(
                Override(f"algo.{key}", _file_values(value, any(_is_sequence(_field_hint(a, f"algo.{key}")) for a in algos)))
            )
    return out


def load_grid(args: Args) -> Grid:
    """The grid of the file and the command line (the command line wins)."""
    data = read_grid_file(args.grid) if args.grid is not None else {}
    pick = lambda name, default: getattr(args, name) if getattr(args, name) is not None else data.get(name, default)  # noqa: E731
    algos = [str(a) for a in pick("algos", [])]
    overrides = {(o.algo, o.key): o for o in _file_overrides(data, algos)}
    overrides.update(((o.algo, o.key), o) for o in (parse_set(e, algos) for group in args.overrides for e in group))
    total = pick("total_steps", None)
    if total is None:
        raise SweepError("no --total-steps (or total_steps in the --grid file): how long is each run?")
    grid = Grid(
        algos,
        [str(e) for e in pick("envs", [])],
        [str(d) for d in pick("datasets", [])],
        [int(s) for s in pick("seeds", [0])],
        int(total),
        list(overrides.values()),
    )
    if not grid.algos:
        raise SweepError(f"no algorithms: pass --algos (valid: {', '.join(sorted(ALGORITHMS))})")
    if not grid.seeds or len(set(grid.seeds)) != len(grid.seeds):
        raise SweepError(f"--seeds must be distinct seeds, got {grid.seeds}")
    if grid.total_steps < 1:
        raise SweepError(f"--total-steps must be a positive number of steps, got {grid.total_steps}")
    return grid


# --- checking the grid and planning its trials ----------------------------------------------------------


def _check_key(algo: str, key: str) -> None:
    cls = ALGORITHMS[algo]
    if key.startswith("algo."):
        name = key[5:]
        fields = [f.name for f in dataclasses.fields(cls.config_class) if f.name != "seed"]
        if name == "seed":
            raise SweepError("--set algo.seed: the seed is set by the sweep (use --seeds)")
        if name not in fields:
            raise SweepError(
                f"--set {key}: {cls.__name__}'s config ({cls.config_class.__name__}) has no field "
                f"{name!r}{_choices(name, fields)} (ALGO:{key}=... sets a field for one algorithm's trials)"
            )
        return
    settings = [f.name for f in dataclasses.fields(TrainArgs)] + (["online_steps"] if cls.trains_on_dataset else [])
    if key in OWNED:
        raise SweepError(f"--set {key}: set by the sweep ({OWNED[key]})")
    if key == "env_id" and not cls.trains_on_dataset:
        raise SweepError(f"--set env_id: {cls.__name__} trains on the env ids of --envs")
    allowed = [s for s in settings if s not in OWNED and (s != "env_id" or cls.trains_on_dataset)]
    if key not in allowed:
        raise SweepError(
            f"--set {key}: not a run setting of {cls.__name__} nor algo.<field>{_choices(key, allowed)} "
            f"(ALGO:{key}=... sets a key for one algorithm's trials)"
        )


def _flags(key: str, value: Any) -> list[str]:
    """``key=value`` as train-CLI arguments (booleans as --algo.x / --algo.no-x, tuples as several words)."""
    head, _, name = key.rpartition(".")
    prefix = f"--{head}." if head else "--"
    if isinstance(value, bool):
        return [prefix + ("" if value else "no-") + name.replace("_", "-")]
    flag = prefix + name.replace("_", "-")
    if isinstance(value, (tuple, list)):
        return [flag, *map(str, value)]
    return [flag, "None" if value is None else str(value)]


def _label_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value))
    return str(value).replace(os.sep, "-").replace(" ", "_")


def task_name(dataset: str) -> str:
    """A dataset's name in the run-dir layout: a file's stem, a directory's name, else the id with '/' as '-'."""
    path = Path(dataset)
    if path.suffix in (".hdf5", ".h5", ".npz"):
        return path.stem
    if path.is_dir():
        return path.resolve().name
    return dataset.strip("/").replace("/", "-")


def check_env(env_id: str, where: str = "--envs") -> None:
    """Make one copy of ``env_id`` (what every trial will do), so an unknown id fails now with vecenvs' message."""
    from policyopt import vecenvs

    try:
        env = vecenvs.make(env_id, num_envs=1)
    except Exception as e:
        raise SweepError(f"{where} {env_id}: {e}") from None
    env.close()


def dataset_env_id(dataset: str) -> str | None:
    """The env id a dataset was recorded on (its metadata), so its trials evaluate there; fails for a bad dataset."""
    path = Path(dataset).expanduser()
    if path.suffix in (".hdf5", ".h5") and path.is_file():
        import h5py  # cheap: only the root attributes are read

        with h5py.File(path, "r") as f:
            env_id = f.attrs.get("env_id")
        env_id = None if env_id is None else str(env_id)
    else:
        try:
            env_id = load_dataset(dataset).metadata.get("env_id")
        except Exception as e:  # a missing file, or a Minari id / D4RL name that is not there
            raise SweepError(f"--datasets {dataset}: {e}") from None
    try:
        return recorded_env_id(env_id, str(dataset))  # the file must not choose a module to import
    except DatasetError as e:
        raise SweepError(f"--datasets {e}") from None


def _parse_check(cls: type, argv: list[str], where: str) -> Any:
    """Parse ``argv`` as the train script would; a bad value is an error naming ``where``."""
    from policyopt.algos.run.train import check_args, parse

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parse(cls, argv)
        check_args(args)
        return args
    except SystemExit:  # tyro printed why
        lines = [ln.strip(" │╭╮╰╯─") for ln in err.getvalue().splitlines()]
        why = " ".join(ln for ln in lines if ln and not ln.lower().startswith("usage") and "--help" not in ln)
        raise SweepError(f"{where}: the train CLI rejects {' '.join(argv)}: {why or 'see its --help'}") from None
    except Exception as e:
        raise SweepError(f"{where}: {type(e).__name__}: {e}") from None


def default_eval_every(total_steps: int) -> int:
    """``total_steps`` split into at most 10 equal parts: a divisor, so the last evaluation falls at the end."""
    return next(total_steps // k for k in range(10, 0, -1) if total_steps % k == 0)


def plan(grid: Grid, root: Path, local: bool = True) -> list[Trial]:
    """Every trial of the grid, after checking each algorithm, task and override; nothing is written.
    ``local``: the trials run on this machine, so a device it lacks is an error too (a cluster's nodes may have it)."""
    for algo in grid.algos:
        if algo not in ALGORITHMS:
            raise SweepError(f"unknown algorithm {algo!r}{_choices(algo, list(ALGORITHMS))}")
    for o in grid.overrides:
        if o.algo is not None and o.algo not in grid.algos:
            raise SweepError(f"--set {o.algo}:{o.key}: {o.algo!r} is not among the grid's algorithms ({', '.join(grid.algos)})")
        if not o.values:
            raise SweepError(f"--set {o.key}: no values")
        for algo in [o.algo] if o.algo else grid.algos:
            _check_key(algo, o.key)
    online = [a for a in grid.algos if not ALGORITHMS[a].trains_on_dataset]
    offline = [a for a in grid.algos if ALGORITHMS[a].trains_on_dataset]
    if online and not grid.envs:
        raise SweepError(f"{', '.join(online)} train{'s' * (len(online) == 1)} on envs: pass --envs")
    if offline and not grid.datasets:
        raise SweepError(f"{', '.join(offline)} train{'s' * (len(offline) == 1)} on datasets: pass --datasets")
    if grid.envs and not online:
        raise SweepError(
            f"--envs {' '.join(grid.envs)}: no online algorithm in the grid to run on them "
            f"({', '.join(grid.algos)} train on --datasets; set their evaluation env with --set env_id=...)"
        )
    if grid.datasets and not offline:
        raise SweepError(f"--datasets: no dataset algorithm in the grid ({', '.join(grid.algos)} train on --envs)")
    if local:
        from policyopt.vecenvs.core import check_device

        for device in dict.fromkeys(str(v) for o in grid.overrides if o.key == "device" for v in o.values):
            try:
                check_device(device)
            except ValueError as e:
                raise SweepError(f"--set device={device}: {e}") from None
    for env_id in dict.fromkeys(grid.envs):
        check_env(env_id)
    for env_id in dict.fromkeys(str(v) for o in grid.overrides if o.key == "env_id" for v in o.values):
        check_env(env_id, "--set env_id=")  # the dataset algorithms' evaluation env
    tasks: dict[str, tuple[str, str | None]] = {}  # dataset -> (task name, its env id)
    for dataset in dict.fromkeys(grid.datasets):
        tasks[dataset] = (task_name(dataset), dataset_env_id(dataset))
    names = [n for n, _ in tasks.values()]
    if len(set(names)) != len(names):
        raise SweepError(
            f"--datasets {' '.join(grid.datasets)}: two datasets share the run-dir name "
            f"{next(n for n in names if names.count(n) > 1)!r}"
        )

    trials = []
    root = root.resolve()  # Ray workers run elsewhere: every path a trial sees is absolute
    for algo in grid.algos:
        cls = ALGORITHMS[algo]
        mine = [o for o in grid.overrides if o.algo in (None, algo)]
        mine = list({o.key: o for o in sorted(mine, key=lambda o: o.algo is not None)}.values())  # ALGO:KEY wins
        varying = [o.key for o in mine if len(o.values) > 1]
        for combo in itertools.product(*(o.values for o in mine)):
            chosen = dict(zip([o.key for o in mine], combo))
            label = ",".join(f"{k.removeprefix('algo.')}={_label_value(chosen[k])}" for k in varying) or "default"
            extra = [w for k, v in chosen.items() for w in _flags(k, v)]
            derived = [] if "eval_every" in chosen else ["--eval-every", str(default_eval_every(grid.total_steps))]
            if cls.trains_on_dataset:
                task_list = [
                    (
                        name,
                        ["--dataset", str(Path(d).resolve()) if Path(d).exists() else d]
                        + ([] if "env_id" in chosen else ["--env-id", env or ""]),
                        d,
                        env,
                    )
                    for d, (name, env) in tasks.items()
                ]
            else:
                task_list = [(env_id, ["--env-id", env_id], None, env_id) for env_id in grid.envs]
            checked = None
            for task, task_argv, dataset, env in task_list:
                if dataset is not None and "env_id" not in chosen and not env:
                    raise SweepError(
                        f"--datasets {dataset}: its metadata names no env id to evaluate on; "
                        "set one with --set env_id=ENV (or [settings] env_id in the grid file)"
                    )
                for seed in grid.seeds:
                    run_dir = root / algo / task / label / f"seed{seed}"
                    base = [
                        *task_argv,
                        "--seed",
                        str(seed),
                        "--total-steps",
                        str(grid.total_steps),
                        "--run-dir",
                        str(run_dir),
                        "--no-progress",
                    ]
                    argv = (*base, *derived, *extra)
                    if checked is None:  # one parse per config: seeds and tasks do not change what it accepts
                        checked = _parse_check(cls, list(argv), f"the {algo} trials ({label})")
                    target = grid.total_steps + getattr(checked, "online_steps", 0)
                    trials.append(Trial(algo, task, label, seed, run_dir, argv, (*base, *extra, "--resume"), target))
    return trials


# --- the state of a run dir -------------------------------------------------------------------------------


def checkpoint_step(run_dir: Path) -> int | None:
    """The global step of the run's checkpoint, None when it has none; a ``ValueError`` naming the file when
    it cannot be read (truncated, foreign, or holding objects that loading would have to run code to build).

    Read by the library's loader: ``weights_only=True``, so nothing the file names is imported or called, and
    memory-mapped, so a replay buffer in it is not read just to learn the step."""
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt, mmap=True)
    try:
        return int(state["global_step"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"{ckpt} has no integer 'global_step' (got {state.get('global_step')!r}); expected a "
            "checkpoint written by policyopt's training scripts"
        ) from None


def readable_step(run_dir: Path) -> int | None:
    """:func:`checkpoint_step`, with an unreadable checkpoint as none (for describing a run, not deciding on it)."""
    try:
        return checkpoint_step(run_dir)
    except ValueError:
        return None


def recorded_threads(run_dir: Path) -> int | None:
    """The torch threads the run in ``run_dir`` computed with, from its config.json, or None when it does not say.

    ``torch_threads_used`` is what the run measured; ``torch_threads`` is trusted only when its command set it
    (a run that never passed ``--torch-threads`` records the default 1, whatever it ran with)."""
    try:
        record = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    value = record.get("torch_threads_used")
    if value is None and "--torch-threads" in (record.get("command") or []):
        value = record.get("torch_threads")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def run_files(run_dir: Path) -> list[Path]:
    """What a run has written to ``run_dir`` (its train.log and earlier asides apart)."""
    if not run_dir.is_dir():
        return []
    return [
        p for p in run_dir.iterdir() if p.name in (CONFIG_FILE, METRICS_FILE, "checkpoint.pt") or p.name.startswith("events.out.")
    ]


def move_aside(run_dir: Path, why: str) -> tuple[Path, list[str]]:
    """:func:`policyopt.algos.run.rundir.move_aside` under the run dir's lock, keeping train.log (the sweep appends every attempt to it)."""
    with DirectoryLock(run_dir, "run"):  # released before the trial's own training run locks the dir
        return rundir.move_aside(run_dir, why, keep=(TRIAL_LOG,))


def final_eval(run_dir: Path) -> dict[str, Any]:
    """The run's last evaluation record: step, eval/return and, where logged, eval/normalized_score."""
    try:
        evals = [r for r in read_metrics(run_dir) if "eval/return" in r]
    except (FileNotFoundError, ValueError):
        return {}
    if not evals:
        return {}
    last = evals[-1]
    out = {"eval_step": last["step"], "eval_return": last["eval/return"]}
    if "eval/normalized_score" in last:
        out["eval_normalized_score"] = last["eval/normalized_score"]
    return out


# --- running one trial --------------------------------------------------------------------------------------


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """One trial, in whatever process runs it (a Ray worker, or this one); never raises for a failed run.

    ``spec`` is plain data (Ray ships it): algo, argv, run_dir, threads, cwd, mode, name. The run's directory
    lock is the training run's own (``policyopt.algos.run.train.train`` takes it): a second lock on it here, in the same
    process, would conflict with that one.
    """
    from policyopt.algos.run.train import parse, train

    if os.path.isdir(spec["cwd"]):  # Ray starts trials in a directory of its own; relative paths mean the sweep's
        os.chdir(spec["cwd"])
    previous = torch.get_num_threads()
    torch.set_num_threads(spec["threads"])
    used = torch.get_num_threads()  # what the trial computes with, as torch reports it: its row records this
    cls = ALGORITHMS[spec["algo"]]
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    status, error = ("resumed" if spec["mode"] == "resume" else "done"), None
    t0 = time.perf_counter()
    with open(run_dir / TRIAL_LOG, "a", encoding="utf-8") as log:
        log.write(
            f"--- sweep trial {spec['name']} ({spec['mode']}, {used} torch thread{'s' * (used > 1)}): {' '.join(spec['argv'])}\n"
        )
        log.flush()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                train(cls, parse(cls, list(spec["argv"])), spec["argv"])
        except Exception as e:  # the summary reports it; the traceback stays in train.log
            status, error = "failed", f"{type(e).__name__}: {e}".splitlines()[0][:300]
            traceback.print_exc(file=log)
        finally:
            torch.set_num_threads(previous)
    return {
        "name": spec["name"],
        "status": status,
        "error": error,
        "seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": used,
        **final_eval(run_dir),
    }


def _spec(trial: Trial, mode: str, threads: int) -> dict[str, Any]:
    # --torch-threads too, so the run's config.json records the count the trial computes with
    argv = [*(trial.resume_argv if mode == "resume" else trial.argv), "--torch-threads", str(threads)]
    return {
        "name": trial.name,
        "algo": trial.algo,
        "argv": argv,
        "run_dir": str(trial.run_dir),
        "threads": threads,
        "cwd": os.getcwd(),
        "mode": mode,
    }


def split_threads(args: Args, n_trials: int, cores: int) -> int:
    """Torch threads per trial: ``--threads-per-trial``; else 1 on a cluster; else the ``cores`` split over the
    grid's ``n_trials`` (at most one trial per core). One rule for Ray and in-process runs, over the whole grid
    rather than the trials left to run, so a resumed or rerun sweep computes with its first run's threads: the
    count changes a run's numbers (the order of its floating-point sums), not only its speed."""
    if args.threads_per_trial:
        return args.threads_per_trial
    if args.address:
        return 1  # nodes differ in size: one thread per trial fits any of them
    return max(1, cores // min(cores, n_trials))


def trial_threads(todo: list[tuple[Trial, str]], split: int, cores: int) -> list[int]:
    """Each trial's threads: the split, except that a resumed run keeps the count its config.json records, so it
    continues exactly, when there are that many cores. Says so wherever a run's record and the split differ."""
    out = []
    for trial, mode in todo:
        own = recorded_threads(trial.run_dir) if mode == "resume" else None
        if own is None or own == split:
            out.append(split)
        elif own <= cores:
            print(
                f"sweep.py: {trial.name} resumes with the {own} torch threads it ran with (this sweep's split is {split}), "
                "so it continues exactly",
                flush=True,
            )
            out.append(own)
        else:
            print(
                f"sweep.py: {trial.name} ran with {own} torch threads, more than the {cores} cores here; it resumes with "
                f"{split}, so its numbers will differ from an uninterrupted run's",
                flush=True,
            )
            out.append(split)
    return out


def _ray_or_why() -> tuple[Any, str | None]:
    """``(ray, None)``, or ``(None, why not)`` when ray cannot be imported."""
    try:
        import ray
        from ray import tune  # noqa: F401  (ray without the tune extra has no tune dependencies)
    except ImportError as e:
        return None, f"ray is not importable ({type(e).__name__}: {e})"
    return ray, None


def run_sequential(todo: list[tuple[Trial, str]], args: Args, why: str, n_trials: int) -> tuple[dict[str, dict[str, Any]], bool]:
    """Each trial in this process, one after another; stops at Ctrl-C (the results so far, True). Each trial
    gets the torch threads Ray would give it (:func:`split_threads` over the grid's ``n_trials``), not every
    core: the same sweep then computes the same numbers in either mode."""
    cores = args.cpus or local_cores()
    split = split_threads(args, n_trials, cores)
    print(
        f"sweep.py: running {len(todo)} trials one after another in this process, because {why}; {split} torch "
        f"thread{'s' * (split > 1)} each (the split of {cores} cores over the grid's {n_trials} trials that Ray uses; "
        "--threads-per-trial sets it); pip install -e '.[sweep]' runs them in parallel with Ray Tune",
        flush=True,
    )
    results = {}
    for i, ((trial, mode), threads) in enumerate(zip(todo, trial_threads(todo, split, cores)), 1):
        spec = _spec(trial, mode, threads)
        print(
            f"[{i}/{len(todo)}] {trial.name} ({mode}, {threads} torch thread{'s' * (threads > 1)}): "
            f"log in {trial.run_dir}/train.log",
            flush=True,
        )
        try:
            results[trial.name] = result = run_trial(spec)
        except KeyboardInterrupt:
            print("sweep.py: interrupted; the runs keep their last checkpoints: rerun with --resume", flush=True)
            return results, True
        ret = f", eval return {result['eval_return']:.1f} at step {result['eval_step']:,}" if "eval_return" in result else ""
        print(
            f"[{i}/{len(todo)}] {trial.name}: {result['status']}{ret}" + (f": {result['error']}" if result["error"] else ""),
            flush=True,
        )
    return results, False


def run_ray(ray: Any, todo: list[tuple[Trial, str]], args: Args, n_trials: int) -> tuple[dict[str, dict[str, Any]], bool]:
    """The trials as one Tune grid search over their specs, as many at once as there are cores."""
    from ray import tune

    # Quiet and small: no dashboard, no worker output in this terminal (it is in each train.log), no
    # default Tune loggers, Tune's own files under the sweep's root rather than ~/ray_results.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = not ray.is_initialized()
    if args.address:
        if started:
            ray.init(address=args.address, log_to_driver=False, logging_level="ERROR")
        cores = int(ray.cluster_resources().get("CPU", 1))
    else:
        cores = args.cpus or local_cores()
        if started:  # address="local": never join whatever RAY_ADDRESS points at
            ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    split = split_threads(args, n_trials, cores)
    threads = trial_threads(todo, split, cores)
    concurrent = max(1, min(len(todo), cores // min(threads)))
    where = f"cluster {args.address}" if args.address else "local"
    print(
        f"sweep.py: running {len(todo)} trials on Ray Tune ({where}, {cores} CPUs): {concurrent} at a time, {split} torch "
        f"thread{'s' * (split > 1)} each; logs in each run dir's train.log",
        flush=True,
    )
    if run_trial.__module__ != "__main__":  # imported (tests): Ray's workers cannot import scripts/, so ship it by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[run_trial.__module__])
    # A trial asks Ray for as many CPUs as it has torch threads, so Ray never runs more at once than the cores hold
    # (per trial where a resumed run keeps a count of its own).
    resources: Any = {"cpu": threads[0]}
    if len(set(threads)) > 1:
        resources = lambda config: tune.PlacementGroupFactory([{"CPU": config["trial"]["threads"]}])  # noqa: E731
    trainable = tune.with_resources(lambda config: run_trial(config["trial"]), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([_spec(t, mode, n) for (t, mode), n in zip(todo, threads)])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=concurrent,
            trial_dirname_creator=lambda t: f"{t.trial_id}-{t.config['trial']['name']}".replace("/", "_")[:120],
        ),
        run_config=tune.RunConfig(
            name=time.strftime("sweep-%Y%m%d-%H%M%S"),
            storage_path=str(args.root.resolve() / "_tune"),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    results, interrupted = {}, False
    try:
        for r in tuner.fit():
            name = r.config["trial"]["name"]
            if r.error is not None:  # the worker itself died (run_trial reports ordinary failures)
                results[name] = {
                    "name": name,
                    "status": "failed",
                    "error": f"{type(r.error).__name__}: {r.error}".splitlines()[0][:300],
                }
            elif r.metrics and "status" in r.metrics:
                results[name] = {
                    k: r.metrics[k]
                    for k in (
                        "name",
                        "status",
                        "error",
                        "seconds",
                        "torch_threads",
                        "eval_step",
                        "eval_return",
                        "eval_normalized_score",
                    )
                    if k in r.metrics
                }
            else:  # stopped before it returned: Tune catches Ctrl-C, stops the trials and returns
                interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if started:
            ray.shutdown()
    return results, interrupted


# --- the sweep ---------------------------------------------------------------------------------------------


def prepare(trials: list[Trial], resume: bool) -> tuple[list[tuple[Trial, str]], dict[str, dict[str, Any]]]:
    """Each trial's mode (fresh or resume), and the finished ones' summary rows. A run with no checkpoint to
    continue from (none yet, or one that cannot be read) restarts, its files moved aside first, never deleted.
    Without ``resume``, a trial whose run dir already holds a run is an error (nothing is overwritten)."""
    taken = [t for t in trials if run_files(t.run_dir)]
    if taken and not resume:
        shown = "; ".join(str(t.run_dir) for t in taken[:3]) + (f"; and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise SweepError(
            f"{len(taken)} of the {len(trials)} run dirs already hold runs ({shown}): pass --resume to continue "
            "them (finished ones are skipped), or another --root"
        )
    todo, finished = [], {}
    for t in trials:
        try:
            step, unreadable = checkpoint_step(t.run_dir), None
        except ValueError as e:
            step, unreadable = None, str(e).splitlines()[0][:300]
        if step is not None and step >= t.target:
            finished[t.name] = {
                "name": t.name,
                "status": "finished",
                "error": None,
                "torch_threads": recorded_threads(t.run_dir),
                **final_eval(t.run_dir),
            }
        elif step is not None:
            todo.append((t, "resume"))
        else:
            if run_files(t.run_dir):  # nothing to continue from; what it wrote stays readable beside the new run
                why = "unreadable-checkpoint" if unreadable else "stopped-before-checkpoint"
                cause = (
                    f"its checkpoint cannot be read ({unreadable})" if unreadable else "it stopped before its first checkpoint"
                )
                aside, moved = move_aside(t.run_dir, why)
                note = f"{t.name}: {cause}; moved {', '.join(moved)} to {aside} (nothing deleted); starting it again from step 0"
                print(f"sweep.py: {note}", flush=True)
                with open(t.run_dir / TRIAL_LOG, "a", encoding="utf-8") as log:
                    log.write(f"--- sweep: {note}\n")
            todo.append((t, "fresh"))
    return todo, finished


def summarize(trials: list[Trial], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per trial; a trial without a result (interrupted, never started) is described from its run dir."""
    rows = []
    for t in trials:
        row = results.get(t.name)
        if row is None:
            step = readable_step(t.run_dir)
            status = (
                "not started" if step is None and not run_files(t.run_dir) else f"unfinished (step {step or 0:,} of {t.target:,})"
            )
            row = {
                "name": t.name,
                "status": status,
                "error": None,
                "torch_threads": recorded_threads(t.run_dir),
                **final_eval(t.run_dir),
            }
        rows.append({**row, "run_dir": str(t.run_dir)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| trial | status | final eval | torch threads | run dir |", "|---|---|---:|---:|---|"]
    for r in rows:
        ev = ""
        if r.get("eval_return") is not None:
            ev = f"{r['eval_return']:.1f} @ {r['eval_step']:,}"
            if r.get("eval_normalized_score") is not None:
                ev += f" (normalized {r['eval_normalized_score']:.1f})"
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        threads = "" if r.get("torch_threads") is None else str(r["torch_threads"])
        lines.append(f"| {r['name']} | {status.replace('|', '/')} | {ev} | {threads} | {r['run_dir']} |")
    return "\n".join(lines)


def main(args: Args) -> tuple[list[dict[str, Any]], bool]:
    """Check the grid, run its trials and return the summary rows and whether it was interrupted."""
    if args.no_ray and args.address:
        raise SweepError("--no-ray and --address contradict each other: --address runs the trials on a Ray cluster")
    for name in ("cpus", "threads_per_trial"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SweepError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.address and args.threads_per_trial and args.threads_per_trial > (args.cpus or local_cores()):
        raise SweepError(
            f"--threads-per-trial {args.threads_per_trial} is more than the {args.cpus or local_cores()} cores (--cpus)"
        )
    grid = load_grid(args)
    trials = plan(grid, args.root, local=not args.address)
    if args.dry_run:
        for t in trials:
            print(f"{t.name}: python scripts/train_{t.algo}.py {' '.join(t.argv)}")
        print(f"{len(trials)} trials")
        return [], False
    ray, why = (None, "--no-ray was given") if args.no_ray else _ray_or_why()
    if ray is None and args.address:
        raise SweepError(f"--address {args.address} needs ray, and {why}: pip install -e '.[sweep]'")
    # One sweep per root for its whole life: a second one on the same root would resume, move aside or restart
    # the same trials. Each trial's run dir has a lock of its own, the training run's (held in the process that
    # trains it), so this lock is on the root alone.
    with DirectoryLock(args.root, "sweep"):
        todo, finished = prepare(trials, args.resume)
        results: dict[str, dict[str, Any]] = dict(finished)
        interrupted = False
        if finished:
            print(f"sweep.py: {len(finished)} of {len(trials)} runs already finished; skipping them")
        if todo:
            ran, interrupted = (
                run_sequential(todo, args, why, len(trials)) if ray is None else run_ray(ray, todo, args, len(trials))
            )
            results.update(ran)
        rows = summarize(trials, results)
    print(table(rows))
    bad = [r for r in rows if r["status"] not in DONE]
    if bad:
        print(
            f"sweep.py: {len(bad)} of {len(rows)} trials did not finish (each run dir's train.log says why); "
            "fix the cause and rerun with --resume to continue them from their checkpoints",
            flush=True,
        )
    return rows, interrupted


def cli(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``argv`` and sweep; exits 1 when a trial failed or is unfinished, 130 when interrupted."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    try:
        rows, interrupted = main(args)
    except (SweepError, DirectoryLockedError) as e:
        raise SystemExit(f"sweep.py: {e}") from None
    if interrupted:
        raise SystemExit(130)
    if any(r["status"] not in DONE for r in rows):
        raise SystemExit(1)
    return rows
