"""Evaluate a checkpoint: mean deterministic return over N episodes.

    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0/checkpoint.pt --episodes 20
    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0 --episodes 20   # the run dir: its checkpoint.pt

Protocol: ``--episodes N`` copies of the env are made with ``vecenvs.make(..., seed=SEED)``
and reset with ``SEED``; each copy runs exactly one episode to its end (termination or
truncation) with the policy's deterministic action (the mean, or the most likely action),
and observation normalisation frozen at the checkpoint's statistics. The result is the
mean and std of the N undiscounted returns; the same checkpoint, N and seed give the same
numbers. The env id defaults to the ``env_id`` in the run's config.json beside the
checkpoint. Prints one JSON object: env_id, algo, episodes, seed, return_mean, return_std,
length_mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import tyro

import vecenvs
from algos import ALGORITHMS
from algos.checkpoint import load_checkpoint

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class Args:
    checkpoint: tyro.conf.Positional[Path]
    """a checkpoint.pt, or a run directory holding one"""
    env_id: str | None = None
    """default: the env_id in config.json beside the checkpoint"""
    episodes: int = 10
    """episodes to average (one per env copy)"""
    device: str = "cpu"
    """torch device of the agent and the env (cpu, cuda, ...)"""
    seed: int = 12345
    """seed of the evaluation env"""
    backend: str | None = None
    """env backend (None: the default for the device)"""


def checkpoint_path(path: Path) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run directory; exits when there is none."""
    if path.is_dir():
        if not (path / CHECKPOINT_FILE).is_file():
            raise SystemExit(f"no {CHECKPOINT_FILE} in run directory {path}; expected {path / CHECKPOINT_FILE}")
        return path / CHECKPOINT_FILE
    if not path.is_file():
        raise SystemExit(f"checkpoint {path} does not exist; expected a checkpoint.pt or a run directory holding one")
    return path


def validate(args: Args) -> None:
    """Reject nonsensical arguments before anything is loaded."""
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be a positive number of episodes, got {args.episodes}")
    if args.seed < 0:
        raise SystemExit(f"--seed must be a non-negative integer, got {args.seed}")
    if args.env_id is not None and not args.env_id.strip():
        raise SystemExit("--env-id is empty; expected an env id such as CartPole-v1")
    try:
        vecenvs.check_device(args.device)
    except ValueError as e:
        raise SystemExit(f"--device: {e}") from None


def env_id_from_config(checkpoint: Path) -> str:
    """The ``env_id`` of the run's config.json beside ``checkpoint``."""
    config_file = checkpoint.parent / "config.json"
    if not config_file.is_file():
        raise SystemExit(f"--env-id is needed: no config.json beside {checkpoint}")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{config_file} is not valid JSON ({e}); pass --env-id") from None
    env_id = config.get("env_id") if isinstance(config, dict) else None
    if not isinstance(env_id, str) or not env_id:
        raise SystemExit(f"{config_file} has no \"env_id\" string; pass --env-id")
    return env_id


def main(args: Args) -> dict[str, Any]:
    validate(args)
    checkpoint = checkpoint_path(args.checkpoint)
    env_id = args.env_id or env_id_from_config(checkpoint)
    try:
        algo = load_checkpoint(checkpoint)["algo"]
    except ValueError as e:
        raise SystemExit(str(e)) from None
    by_name = {cls.__name__: cls for cls in ALGORITHMS.values()}
    if algo not in by_name:
        raise SystemExit(f"{checkpoint} holds a {algo} checkpoint; this script evaluates {', '.join(by_name)}")
    agent = by_name[algo].load(checkpoint, device=args.device)
    try:
        env = vecenvs.make(env_id, num_envs=args.episodes, device=args.device, seed=args.seed, backend=args.backend)
    except ValueError as e:
        raise SystemExit(f"cannot make the evaluation env: {e}") from None
    try:
        agent.check_env(env)
    except ValueError as e:
        source = "--env-id" if args.env_id else f"the env_id of {checkpoint.parent / 'config.json'}"
        raise SystemExit(f"{checkpoint} cannot be evaluated on {env_id} ({source}): {e}") from None
    result = {"env_id": env_id, "algo": algo, "episodes": args.episodes, "seed": args.seed, **agent.evaluate(env, seed=args.seed)}
    print(json.dumps(result))
    return result


def cli(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return main(tyro.cli(Args, args=argv, description=__doc__))


if __name__ == "__main__":
    cli()
