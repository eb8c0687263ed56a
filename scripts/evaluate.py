"""Evaluate a checkpoint: mean deterministic return over N episodes.

    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0/checkpoint.pt --episodes 20

The env id defaults to the one in the run's config.json beside the checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

import vecenvs
from algos import ALGORITHMS
from algos.checkpoint import load_checkpoint


@dataclass
class Args:
    checkpoint: tyro.conf.Positional[Path]
    env_id: str | None = None
    episodes: int = 10
    device: str = "cpu"
    seed: int = 12345
    backend: str | None = None


def main(args: Args) -> dict[str, float]:
    env_id = args.env_id
    config_file = args.checkpoint.parent / "config.json"
    if env_id is None:
        if not config_file.is_file():
            raise SystemExit(f"--env-id is needed: no config.json beside {args.checkpoint}")
        env_id = json.loads(config_file.read_text())["env_id"]
    algo = load_checkpoint(args.checkpoint)["algo"]
    by_name = {cls.__name__: cls for cls in ALGORITHMS.values()}
    if algo not in by_name:
        raise SystemExit(f"{args.checkpoint} holds a {algo} checkpoint; this script evaluates {', '.join(by_name)}")
    agent_cls = by_name[algo]
    agent = agent_cls.load(args.checkpoint, device=args.device)
    env = vecenvs.make(env_id, num_envs=args.episodes, device=args.device, seed=args.seed, backend=args.backend)
    result = agent.evaluate(env, seed=args.seed)
    print(json.dumps({"env_id": env_id, "algo": algo, **result}))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
