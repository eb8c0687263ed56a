"""The command-line training run every ``scripts/train_<algo>.py`` shares.

It builds the env with :func:`vecenvs.make`, a separate evaluation env, the run logger
and the algorithm, then trains with periodic evaluation and atomic checkpoints.
``--resume`` continues a run exactly from ``<run_dir>/checkpoint.pt``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import tyro

import vecenvs
from algos.logger import RunLogger
from algos.onpolicy import OnPolicyAlgorithm, OnPolicyConfig


@dataclass
class TrainArgs:
    """What every training script takes besides the algorithm's own config."""

    env_id: str = "CartPole-v1"
    num_envs: int = 8
    device: str = "cpu"
    seed: int = 0
    total_steps: int = 1_000_000
    run_dir: Path | None = None
    """default: runs/<algo>/<env_id>/seed<seed>"""
    eval_every: int = 50_000
    """env steps between evaluations (0: never)"""
    eval_episodes: int = 10
    checkpoint_every: int = 100_000
    resume: bool = False
    """continue the run in run_dir from its checkpoint"""
    progress: bool = True
    backend: str | None = None
    """env backend (None: the default for the device; 'gymnasium' forces the adapter)"""
    env_compile: bool = False
    """torch.compile the native env's step (faster stepping after a few seconds of compiling; not for backend 'gymnasium')"""
    torch_threads: int = 1
    """CPU threads for torch; small RL networks run fastest on one (0: torch's default)"""
    preset: str | None = None
    """start from a named hyperparameter preset of the algorithm (e.g. classic, mujoco, pendulum)"""
    algo: OnPolicyConfig = field(default_factory=OnPolicyConfig)


def parse(algo_cls: type[OnPolicyAlgorithm], argv: list[str] | None = None, description: str | None = None) -> TrainArgs:
    """Parse the CLI; ``--preset NAME`` first replaces the algorithm config's defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_cls = algo_cls.config_class
    preset = None
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            preset = argv[i + 1]
        elif a.startswith("--preset="):
            preset = a.split("=", 1)[1]
    config = config_cls.preset(preset) if preset and hasattr(config_cls, "preset") else config_cls()
    args_cls = dataclasses.make_dataclass(
        f"{algo_cls.__name__}Args", [("algo", config_cls, field(default_factory=lambda: config))], bases=(TrainArgs,)
    )
    args_cls.__doc__ = description or algo_cls.__doc__
    return tyro.cli(args_cls, args=argv)


def explicit_algo_fields(algo_cls: type[OnPolicyAlgorithm], argv: Sequence[str]) -> list[str]:
    """The config fields a command line sets: its ``--algo.*`` flags and what its ``--preset`` changes."""
    fields = [a.split("=", 1)[0][len("--algo."):].replace("-", "_") for a in argv if a.startswith("--algo.")]
    for i, a in enumerate(argv):
        name = argv[i + 1] if a == "--preset" and i + 1 < len(argv) else a.split("=", 1)[1] if a.startswith("--preset=") else None
        if name:
            preset, default = algo_cls.config_class.preset(name), algo_cls.config_class()
            fields += [f.name for f in dataclasses.fields(default) if getattr(preset, f.name) != getattr(default, f.name)]
    return fields


def train(algo_cls: type[OnPolicyAlgorithm], args: TrainArgs, explicit: Sequence[str] = ()) -> OnPolicyAlgorithm:
    """Run (or resume) one training run and return the trained agent.

    On ``--resume`` the checkpoint's algorithm config is used; a field in ``explicit`` (set on the
    command line) that disagrees with it is an error rather than silently ignored.
    """
    run_dir = args.run_dir or Path("runs") / algo_cls.__name__.lower() / args.env_id / f"seed{args.seed}"
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    config = dataclasses.replace(args.algo, seed=args.seed)
    env_kwargs = {"compile": True} if args.env_compile else {}
    env = vecenvs.make(args.env_id, num_envs=args.num_envs, device=args.device, seed=args.seed, backend=args.backend, **env_kwargs)
    eval_env = None
    if args.eval_every and args.eval_episodes:
        eval_env = vecenvs.make(args.env_id, num_envs=args.eval_episodes, device=args.device, seed=args.seed + 10_000, backend=args.backend)
    if args.resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        agent = algo_cls.load(ckpt, env=env)
        clash = [f"{f}={getattr(args.algo, f)!r} (checkpoint: {getattr(agent.config, f)!r})"
                 for f in dict.fromkeys(explicit) if f != "seed" and getattr(args.algo, f) != getattr(agent.config, f)]
        if clash:
            raise ValueError(
                f"--resume continues with the algorithm config stored in {ckpt}; the command line asks for "
                f"{', '.join(clash)}. Drop those flags, or start a new run (another --run-dir) to change the config."
            )
        print(f"resumed {algo_cls.__name__} from {ckpt} at env step {agent.global_step:,}")
    else:
        agent = algo_cls(env, config)
    record = {"algo": algo_cls.__name__, **_jsonable(dataclasses.asdict(args)), "algo_config": _jsonable(dataclasses.asdict(agent.config))}
    with RunLogger(run_dir, config=record, resume_step=agent.global_step if args.resume else None) as logger:
        t0 = time.perf_counter()
        agent.learn(
            args.total_steps, logger=logger, eval_env=eval_env, eval_every=args.eval_every,
            checkpoint_path=ckpt, checkpoint_every=args.checkpoint_every, progress=args.progress,
        )
        elapsed = time.perf_counter() - t0
    summary = {"env_steps": agent.global_step, "seconds": round(elapsed, 1)}
    if eval_env is not None:
        summary["eval_return"] = round(agent.evaluate(eval_env)["return_mean"], 2)
    print(json.dumps(summary))
    return agent


def main(algo_cls: type[OnPolicyAlgorithm], argv: list[str] | None = None) -> OnPolicyAlgorithm:
    args = parse(algo_cls, argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    return train(algo_cls, args, explicit_algo_fields(algo_cls, sys.argv[1:] if argv is None else argv))


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d if isinstance(d, (int, float, str, bool, type(None))) else str(d)
