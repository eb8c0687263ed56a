"""Checkpoints: atomic writes and a plain description of the env's spaces."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so a crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give it the mode of the run's other files
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`, with a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated or foreign file
        raise ValueError(f"{path} is not a readable policyopt checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "algo" not in ckpt:
        raise ValueError(f"{path} is not a policyopt checkpoint (no 'algo' entry)")
    return ckpt


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A single-env Box or Discrete space as plain data, so checkpoints need no pickled spaces."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "dtype": str(space.dtype)}
    raise ValueError(f"cannot describe space {space}: only Box and Discrete are supported")


def space_from_description(d: dict[str, Any]) -> gym.Space:
    if d["type"] == "Discrete":
        return gym.spaces.Discrete(d["n"], start=d["start"])
    return gym.spaces.Box(np.array(d["low"], dtype=d["dtype"]), np.array(d["high"], dtype=d["dtype"]), dtype=d["dtype"])


def space_shape(space: gym.Space) -> tuple[int, ...]:
    """The shape of one element: () for Discrete."""
    return () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)


def check_spaces(agent_obs: gym.Space, agent_act: gym.Space, env: Any, agent_name: str = "the agent") -> None:
    """Raise ``ValueError`` naming both when ``env``'s single-env spaces differ from the agent's."""
    for name, mine, theirs in (("observation", agent_obs, env.single_observation_space), ("action", agent_act, env.single_action_space)):
        try:
            same = describe_space(mine) == describe_space(theirs)
        except ValueError:
            same = False
        if not same:
            env_name = getattr(getattr(env, "spec", None), "id", None) or type(getattr(env, "unwrapped", env)).__name__
            raise ValueError(
                f"{agent_name} was trained on {name} space {mine} (shape {space_shape(mine)}), but the env "
                f"({env_name}) has {theirs} (shape {space_shape(theirs)}): use an env with the same spaces as the training env"
            )
