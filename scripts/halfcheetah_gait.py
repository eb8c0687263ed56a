"""Which way up a HalfCheetah policy runs: upright, or flipped onto its back.

    python scripts/halfcheetah_gait.py runs/mujoco1m/spo/HalfCheetah-v4/default/seed2 --episodes 20 --seed 2
    python scripts/halfcheetah_gait.py runs/mujoco1m/*/HalfCheetah-v4/default/seed*     # every run of the table

HalfCheetah has a well-known local optimum: the cheetah flips onto its back and runs there. It is
a stable gait, but a slower one than running upright. A run that learns it plateaus, and its mean
action can fail to complete the flip, which leaves the cheetah stuck in place. So the returns of
one checkpoint split into two groups.
This script evaluates each run's final checkpoint as ``evaluate.py`` does: ``--episodes`` env copies
reset with ``--seed``, acting with the mean action, or with samples of the policy under ``--stochastic``.
It prints one Markdown row per run: the mean return, how many episodes were spent mostly on the
back (upside down, cos(pitch) < 0, for more than half the steps; the root's pitch is observation 1),
and each episode's return with its upside-down fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import tyro

from policyopt.algos.run import evaluate as evaluate_script  # noqa: E402  (checkpoint_path, load_agent: how evaluate.py loads a run)
from policyopt import vecenvs  # noqa: E402
from policyopt.algos.core.evaluation import evaluate  # noqa: E402

PITCH = 1  # HalfCheetah's observation is qpos[1:] then qvel: [rootz, rooty (pitch), joints..., velocities]


@dataclass
class Args:
    run_dirs: tyro.conf.Positional[list[Path]]
    """run directories (or checkpoint.pt files) of HalfCheetah runs"""
    episodes: int = 10
    """episodes per run (one per env copy)"""
    seed: int = 12345
    """seed of the evaluation env"""
    stochastic: bool = False
    """act with samples of the policy, not its mean"""
    env_id: str | None = None
    """default: the env_id of each run's config.json"""


def upside_down(obs: torch.Tensor) -> torch.Tensor:
    """Per env copy: whether the cheetah's torso is upside down (pitch past +-90 degrees, any number of turns)."""
    return torch.cos(obs[..., PITCH]) < 0


def gait(checkpoint: Path, env_id: str, episodes: int, seed: int, stochastic: bool) -> dict[str, Any]:
    """The final checkpoint's returns, and the fraction of each episode's steps spent upside down."""
    agent = evaluate_script.load_agent(checkpoint)
    env = vecenvs.make(env_id, num_envs=episodes, seed=seed)
    agent.check_env(env)
    flipped: list[torch.Tensor] = []

    def act(obs: torch.Tensor) -> torch.Tensor:
        flipped.append(upside_down(obs))
        return agent.act(obs, deterministic=not stochastic)

    result = evaluate(act, env, seed=seed)
    # every copy runs to the time limit (HalfCheetah never terminates); act also sees a few steps past it
    steps = int(result["length_mean"])
    fraction = torch.stack(flipped[:steps]).double().mean(0).tolist()
    return {
        "run": str(checkpoint.parent),
        "env_id": env_id,
        "return_mean": result["return_mean"],
        "returns": result["returns"],
        "upside_down": fraction,
        "on_back": sum(f > 0.5 for f in fraction),
    }


def main(args: Args) -> list[dict[str, Any]]:
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be a positive number of episodes, got {args.episodes}")
    rows = []
    print("| run | mean return | episodes on its back | each episode: return (fraction of steps upside down) |")
    print("|---|---:|---:|---|")
    for run in args.run_dirs:
        checkpoint = evaluate_script.checkpoint_path(run)
        env_id = args.env_id or evaluate_script.env_id_from_config(checkpoint)
        if not env_id.startswith("HalfCheetah"):
            raise SystemExit(
                f"{run} is a run on {env_id}; this script reads HalfCheetah's pitch (pass --env-id HalfCheetah-v5 to override)"
            )
        row = gait(checkpoint, env_id, args.episodes, args.seed, args.stochastic)
        episodes = ", ".join(f"{r:.0f} ({f:.2f})" for r, f in zip(row["returns"], row["upside_down"]))
        print(f"| {row['run']} | {row['return_mean']:.0f} | {row['on_back']} of {args.episodes} | {episodes} |", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
