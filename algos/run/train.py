"""The command-line training run every ``scripts/train_<algo>.py`` shares.

It builds the env with :func:`vecenvs.make`, a separate evaluation env, the run logger
and the algorithm, then trains with periodic evaluation and atomic checkpoints.
``--resume`` continues a run exactly from ``<run_dir>/checkpoint.pt``, with the run's own
settings from ``<run_dir>/config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Sequence

import torch
import tyro

from policyopt import vecenvs
from policyopt.algos.core import distributed
from policyopt.algos.core.base import Algorithm, AlgorithmConfig
from policyopt.algos.core.checkpoint import config_from_dict, load_checkpoint, read_json
from policyopt.algos.core.logger import CONFIG_FILE, METRICS_FILE, RunLogger
from policyopt.algos.core.presets import PRESETS
from policyopt.algos.run.rundir import DirectoryLock, move_aside, remove_temporary_files
from policyopt.buffers import load_dataset


@dataclass
class TrainArgs:
    """What every training script takes besides the algorithm's own config."""

    env_id: str = "CartPole-v1"
    """env id: a native tensor env where one exists, else gymnasium's own through the adapter"""
    num_envs: int = 8
    """env copies stepped together (on-policy: a rollout batch holds algo.num_steps * num_envs transitions)"""
    device: str = "cpu"
    """torch device of the envs and networks (cpu, cuda, cuda:1, ...)"""
    seed: int = 0
    """the run's one seed: torch, the training env and the evaluation env (seed + 10,000)"""
    total_steps: int = 1_000_000
    """env steps to train for, rounded up to whole iterations (on-policy: rollouts of num_steps * num_envs); --resume keeps the run's unless given"""
    run_dir: Path | None = None
    """default: runs/<algo>/<env_id>/seed<seed>"""
    eval_every: int = 50_000
    """env steps between deterministic evaluations (0: never)"""
    eval_episodes: int = 10
    """episodes per evaluation, one per copy of the evaluation env"""
    checkpoint_every: int = 100_000
    """env steps between checkpoints (0: only at the end)"""
    resume: bool = False
    """continue the run in run_dir exactly, with the settings in its config.json; only --total-steps, --online-steps and --torch-threads may change"""
    progress: bool = True
    """show a progress bar (evaluation lines are printed either way)"""
    backend: str | None = None
    """env backend (None: the default for the device; 'gymnasium' forces the adapter)"""
    env_compile: bool = False
    """torch.compile the native env's step (faster stepping after a few seconds of compiling; not for backend 'gymnasium')"""
    torch_threads: int = 1
    """CPU threads for torch; small RL networks run fastest on one (0: torch's default)"""
    preset: str | None = None
    """start from a named hyperparameter preset of the algorithm"""
    capture_video: bool = False
    """record copy 0's episode of each evaluation and of the final policy to <run_dir>/videos/step_<N>.mp4 and TensorBoard (pip install -e ".[video]")"""
    algo: AlgorithmConfig = field(default_factory=AlgorithmConfig)


# What --resume takes from the run's config.json: everything that makes it the same run.
RUN_SETTINGS = (
    "env_id",
    "num_envs",
    "device",
    "seed",
    "backend",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "env_compile",
    "preset",
    "dataset",
)
# What --resume also takes from it unless the command line says otherwise.
RESUME_DEFAULTS = ("total_steps", "online_steps", "torch_threads")


def _args_class(algo_cls: type[Algorithm], description: str | None) -> type[TrainArgs]:
    """TrainArgs with ``--algo`` typed as the algorithm's config and its presets listed in ``--help``."""
    config_cls = algo_cls.config_class
    presets = ", ".join(sorted(PRESETS.get(config_cls.__name__, {}))) or "none"
    num_envs_help = f"env copies stepped together; {algo_cls.num_envs_help}"
    preset_help = f"start from a named hyperparameter preset of {algo_cls.__name__}: {presets} (algos/core/presets.py)"
    fields = [
        ("num_envs", Annotated[int, tyro.conf.arg(help=num_envs_help)], field(default=algo_cls.default_num_envs)),
        ("preset", Annotated[str | None, tyro.conf.arg(help=preset_help)], field(default=None)),
        ("algo", config_cls, field(default_factory=config_cls)),
    ]
    if algo_cls.trains_on_dataset:
        dataset_help = (
            "the dataset to train on: a D4RL hdf5 file, a Minari directory or an .npz, a local Minari id "
            "(mujoco/hopper/medium-v0) or a D4RL name in D4RL's cache (hopper-medium-v2)"
        )
        eval_help = (
            "gradient updates (online: env steps) between deterministic evaluations (0: never); --env-id is the evaluation env"
        )
        online_help = (
            "offline-to-online: after --total-steps gradient updates, this many env steps on --env-id (num-envs "
            "copies, seed --seed), one update per transition on the dataset mixed with the agent's own; may change on --resume"
        )
        fields[:0] = [
            ("dataset", Annotated[str | None, tyro.conf.arg(help=dataset_help)], field(default=None)),
            ("eval_every", Annotated[int, tyro.conf.arg(help=eval_help)], field(default=5_000)),
            ("online_steps", Annotated[int, tyro.conf.arg(help=online_help)], field(default=0)),
        ]
    args_cls = dataclasses.make_dataclass(
        f"{algo_cls.__name__}Args",
        fields,
        bases=(TrainArgs,),
    )
    args_cls.__doc__ = description or algo_cls.__doc__
    return args_cls


def parse(algo_cls: type[Algorithm], argv: list[str] | None = None, description: str | None = None) -> TrainArgs:
    """Parse the CLI into the settings the run uses.

    The command line is parsed again over the defaults it implies, and the fields it sets are
    found by comparing the parses: ``--preset NAME`` replaces the config's defaults; the seed
    is ``--seed`` (an ``--algo.seed`` that disagrees is an error); ``--resume`` parses over the
    run's own settings from its config.json, and a flag that contradicts them is an error
    that names both values (only ``--total-steps`` and the display flags may change).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args_cls = _args_class(algo_cls, description)
    first = tyro.cli(args_cls, args=argv)
    if first.resume:
        return _parse_resume(algo_cls, args_cls, first, argv)
    config_cls = algo_cls.config_class
    config = config_cls.preset(first.preset) if first.preset is not None else config_cls()
    args = tyro.cli(args_cls, args=argv, default=dataclasses.replace(first, algo=dataclasses.replace(config, seed=first.seed)))
    if args.algo.seed != args.seed:
        raise ValueError(f"one seed per run: set it with --seed (got --seed {args.seed} and --algo.seed {args.algo.seed})")
    return dataclasses.replace(args, run_dir=Path(args.run_dir or default_run_dir(algo_cls, args)))


def _parse_resume(algo_cls: type[Algorithm], args_cls: type[TrainArgs], first: TrainArgs, argv: list[str]) -> TrainArgs:
    run_dir = Path(first.run_dir or default_run_dir(algo_cls, first))
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"--resume: no {CONFIG_FILE} in {run_dir}; pass the --run-dir of an existing run")
    record = read_run_config(algo_cls, args_cls, config_file)
    # The run's own total, threads and online steps unless the command line gives them; the rest must not change.
    own = {f: record[f] for f in RUN_SETTINGS + RESUME_DEFAULTS if f in record and hasattr(first, f)}
    saved = dataclasses.replace(first, run_dir=run_dir, **own, algo=record["algo_config"])
    args = tyro.cli(args_cls, args=argv, default=saved)
    clash = [
        f"--{f.replace('_', '-')} {getattr(args, f)!r} (the run: {getattr(saved, f)!r})"
        for f in RUN_SETTINGS
        if hasattr(args, f) and getattr(args, f) != getattr(saved, f)
    ]
    clash += [
        f"{f.name}={getattr(args.algo, f.name)!r} (checkpoint: {getattr(saved.algo, f.name)!r})"
        for f in dataclasses.fields(saved.algo)
        if getattr(args.algo, f.name) != getattr(saved.algo, f.name)
    ]
    if clash:
        raise ValueError(
            f"--resume continues the run in {run_dir} with the settings in its {CONFIG_FILE} and checkpoint; the command "
            f"line asks for {', '.join(clash)}. Drop those flags (only --total-steps, --online-steps and --torch-threads "
            "may change), or start a new run (another --run-dir) to change them."
        )
    return args


def read_run_config(algo_cls: type[Algorithm], args_cls: type[TrainArgs], config_file: Path) -> dict[str, Any]:
    """A run's ``config.json``, checked as data: the settings a resume takes have their flags' types, the
    preset exists, and ``algo_config`` is a valid config that agrees with the checkpoint's (``config.json``
    records a run; editing it cannot change one). ``algo_config`` comes back as the config object."""
    record = read_json(config_file, f"a training run's {CONFIG_FILE}")
    if not isinstance(record, dict) or not isinstance(record.get("algo_config"), dict):
        raise ValueError(
            f"{config_file} must be a JSON object with an 'algo_config' object (the algorithm's settings), "
            f"as the training scripts write it; got {str(record)[:200]}"
        )
    taken = {f: record[f] for f in RUN_SETTINGS + RESUME_DEFAULTS if f in record and f in args_cls.__dataclass_fields__}
    config_from_dict(args_cls, taken, str(config_file))  # type-checks each setting, naming the key
    config_cls = algo_cls.config_class
    known = sorted(PRESETS.get(config_cls.__name__, {}))
    if record.get("preset") is not None and record["preset"] not in known:
        raise ValueError(
            f"{config_file}: 'preset' is {record['preset']!r}, which {algo_cls.__name__} does not have; "
            f"its presets are {known or 'none'}"
        )
    config = config_from_dict(config_cls, record["algo_config"], f"{config_file}'s algo_config")
    ckpt = config_file.parent / "checkpoint.pt"
    if ckpt.is_file():
        stored = config_from_dict(config_cls, load_checkpoint(ckpt, mmap=True)["config"], f"{ckpt}'s config")
        edited = [
            f"{f.name}: {getattr(config, f.name)!r} in {CONFIG_FILE}, {getattr(stored, f.name)!r} in the checkpoint"
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(stored, f.name)
        ]
        if edited:
            raise ValueError(
                f"{config_file} disagrees with {ckpt} ({'; '.join(edited)}): {CONFIG_FILE} records the run and "
                "cannot change it. Restore those values to resume, or start a new run (another --run-dir) "
                "with the new settings"
            )
    return {**record, "algo_config": config}


def default_run_dir(algo_cls: type[Algorithm], args: TrainArgs) -> Path:
    """``runs/<algo>/<env_id>/seed<seed>``; offline, the dataset's name stands for the env id."""
    name = args.env_id
    if getattr(args, "dataset", None):  # a file's stem, or a whole Minari id / D4RL name
        spec = Path(str(args.dataset))
        name = spec.stem if spec.suffix in (".hdf5", ".h5", ".npz") else str(args.dataset).strip("/").replace("/", "-")
    return Path("runs") / algo_cls.__name__.lower() / name / f"seed{args.seed}"


def build_agent(algo_cls: type[Algorithm], args: TrainArgs, resume_from: Path | None = None) -> Algorithm:
    """The agent a training run uses: a new one, or the one in ``resume_from``, on what ``args`` name.

    Online, a training env from ``args`` (under torchrun: this rank's share of ``--num-envs`` on its device,
    seeded with its own seed). Offline, the dataset from ``--dataset`` (a file, a Minari directory or id,
    or a D4RL name), checked against ``--env-id``'s spaces, whose bounds it takes."""
    if algo_cls.trains_on_dataset:
        if not getattr(args, "dataset", None):
            raise ValueError(
                f"{algo_cls.__name__} trains from a dataset: pass --dataset PATH (a D4RL hdf5 file, a Minari "
                "directory, an .npz), a Minari id or a D4RL name"
            )
        dataset = load_dataset(args.dataset, device=args.device)
        env = vecenvs.make(args.env_id, num_envs=1, device=args.device)
        dataset.check_env(env)
        dataset.action_space = env.single_action_space  # the env's bounds, which a D4RL file does not store
        env.close()
        return algo_cls.load(resume_from, dataset=dataset) if resume_from is not None else algo_cls(dataset, args.algo)
    world = distributed.current()  # only the on-policy family runs under torchrun (distributed.check_launch)
    if world is not None:
        args = dataclasses.replace(
            args, num_envs=world.local_num_envs(args.num_envs), seed=world.rank_seed(args.seed), device=str(world.device)
        )
    env_kwargs = {"compile": True} if args.env_compile else {}
    env = vecenvs.make(
        args.env_id, num_envs=args.num_envs, device=args.device, seed=args.seed, backend=args.backend, **env_kwargs
    )
    return algo_cls.load(resume_from, env=env) if resume_from is not None else algo_cls(env, args.algo)


def check_args(args: TrainArgs) -> None:
    """Reject nonsensical values before anything is built or written."""
    rules = [
        ("total_steps", args.total_steps >= 1, "a positive number of env steps"),
        ("num_envs", args.num_envs >= 1, "a positive number of env copies"),
        ("eval_every", args.eval_every >= 0, "env steps between evaluations, >= 0 (0: never)"),
        ("eval_episodes", args.eval_episodes >= 1, "a positive number of episodes"),
        ("checkpoint_every", args.checkpoint_every >= 0, "env steps between checkpoints, >= 0 (0: only at the end)"),
        ("torch_threads", args.torch_threads >= 0, "a number of threads, >= 0 (0: torch's default)"),
        ("online_steps", getattr(args, "online_steps", 0) >= 0, "a number of env steps, >= 0 (0: offline only)"),
    ]
    for name, ok, expected in rules:
        if not ok:
            raise ValueError(f"--{name.replace('_', '-')} must be {expected}, got {getattr(args, name)}")


def train(algo_cls: type[Algorithm], args: TrainArgs, argv: Sequence[str] = ()) -> Algorithm:
    """Run (or resume) one training run with parsed ``args`` (see :func:`parse`) and return the agent.

    On ``--resume`` the algorithm config comes from the checkpoint.
    """
    check_args(args)
    eval_env_kwargs = _check_capture_video(args) if args.capture_video else {}
    run_dir = Path(args.run_dir or default_run_dir(algo_cls, args))
    world = distributed.current()  # under torchrun: evaluation, logging and the summary are rank 0's
    is_main = world is None or world.is_main
    # One writer per run directory, for the life of the run: taken before the directory is checked, so two
    # runs started at once cannot both pass the check. Rank 0 writes for every rank under torchrun.
    with DirectoryLock(run_dir, "training run") if is_main else contextlib.nullcontext():
        return _train_locked(algo_cls, args, argv, run_dir, world, is_main, eval_env_kwargs)


def _train_locked(
    algo_cls: type[Algorithm],
    args: TrainArgs,
    argv: Sequence[str],
    run_dir: Path,
    world: distributed.World | None,
    is_main: bool,
    eval_env_kwargs: dict[str, Any],
) -> Algorithm:
    ckpt = run_dir / "checkpoint.pt"
    if is_main:
        for leftover in remove_temporary_files(run_dir, (f".{ckpt.name}.*.tmp",)):
            print(f"removed {leftover}, a partial checkpoint of an interrupted save")
    if not args.resume and ckpt.is_file():
        # a new run would mix its metrics with the old ones and overwrite the old checkpoint
        raise FileExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it, or another --run-dir "
            "(or delete that directory) to start a new one"
        )
    if not ckpt.is_file() and (run_dir / METRICS_FILE).exists():
        # stopped before its first checkpoint: nothing to resume, so it starts again, its files kept aside
        if is_main:
            aside = move_aside(run_dir, "stopped-before-checkpoint")[0]
            print(
                f"{run_dir} holds a run that stopped before its first checkpoint; starting it again from step 0 "
                f"(its files were moved to {aside})"
            )
        args = dataclasses.replace(args, resume=False)
    elif args.resume and not ckpt.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
    if world is not None:
        world.barrier()  # every rank has checked run_dir before rank 0 writes to it
    agent = build_agent(algo_cls, args, resume_from=ckpt if args.resume else None)
    if args.resume and is_main:
        print(f"resumed {algo_cls.__name__} from {ckpt} at env step {agent.global_step:,}")
    eval_env = None
    if args.eval_every and is_main:
        eval_env = vecenvs.make(
            args.env_id,
            num_envs=args.eval_episodes,
            device=args.device,
            seed=args.seed + 10_000,
            backend=args.backend,
            **eval_env_kwargs,
        )
    settings = {k: v for k, v in dataclasses.asdict(args).items() if k != "algo"}
    record = {
        "algo": algo_cls.__name__,
        **_jsonable(settings),
        "algo_config": _jsonable(dataclasses.asdict(agent.config)),
        "command": list(argv),
        "world_size": 1 if world is None else world.size,
        "torch_threads_used": torch.get_num_threads(),
    }  # threads change results as well as speed
    run_logger = RunLogger(run_dir, config=record, resume_step=agent.global_step if args.resume else None) if is_main else None
    with run_logger or contextlib.nullcontext() as logger:
        t0 = time.perf_counter()
        if args.capture_video and eval_env is not None:
            from policyopt.algos.run.video import RecordEvalVideo

            eval_env = RecordEvalVideo(eval_env, run_dir / "videos", step=lambda: agent.global_step, writer=logger.writer)
        learn = dict(
            logger=logger,
            eval_env=eval_env,
            eval_every=args.eval_every,
            checkpoint_path=ckpt,
            checkpoint_every=args.checkpoint_every,
            progress=args.progress and is_main,
            eval_seed=args.seed + 10_000,
        )
        online_steps = getattr(args, "online_steps", 0)
        if not getattr(agent, "resumes_online", False):  # an online checkpoint has finished its offline phase
            agent.learn(args.total_steps, **learn)
        if online_steps:
            agent.go_online(
                vecenvs.make(args.env_id, num_envs=args.num_envs, device=args.device, seed=args.seed, backend=args.backend)
            )
            agent.learn(args.total_steps + online_steps, **learn)
        elapsed = time.perf_counter() - t0
        # the final policy's return for the summary (and its video, while the TensorBoard writer is open)
        final_eval = agent.evaluate(eval_env, seed=args.seed + 10_000) if eval_env is not None else None
    summary = {agent.step_unit.replace(" ", "_"): agent.global_step, "seconds": round(elapsed, 1)}
    if agent.config.compile:
        summary["compile_seconds"] = round(agent.compile_seconds, 1)
    if eval_env is not None:
        summary["eval_return"] = round(final_eval["return_mean"], 2)
        if getattr(agent, "reference_scores", None) is not None:
            summary["eval_normalized_score"] = round(float(agent.normalized_score(summary["eval_return"])), 2)
    if is_main:
        print(json.dumps(summary))
    return agent


def _check_capture_video(args: TrainArgs) -> dict[str, Any]:
    """Fail before anything is built when ``--capture-video`` cannot work; the eval env's extra ``vecenvs.make`` kwargs."""
    if not args.eval_every:
        raise ValueError(
            "--capture-video records evaluation episodes, and --eval-every 0 turns evaluation off; "
            "pass --eval-every N (env steps between evaluations)"
        )
    from policyopt.algos.run.video import check_capture

    return check_capture(args.env_id, device=args.device, backend=args.backend)


def main(algo_cls: type[Algorithm], argv: list[str] | None = None) -> Algorithm:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and train."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(algo_cls, argv)
    # under torchrun: reject what cannot run data-parallel before joining the process group
    distributed.check_launch(
        algo_cls, args.num_envs, getattr(args.algo, "num_steps", None), getattr(args.algo, "num_minibatches", None)
    )
    if args.torch_threads > 0:  # train() checks the values before anything is built or written
        torch.set_num_threads(args.torch_threads)
    distributed.init(args.device)  # initialises nothing unless torchrun launched several processes
    try:
        agent = train(algo_cls, args, argv)
    except BaseException:
        distributed.shutdown(clean=False)
        raise
    distributed.shutdown()
    return agent


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d if isinstance(d, (int, float, str, bool, type(None))) else str(d)
