"""Checkpoints: atomic writes and a plain description of the env's spaces."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

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


class PretrainedPolicy(NamedTuple):
    """The policy of an offline checkpoint, to fine-tune or steer online: the module with its weights,
    the dataset normaliser's state (``mean``, ``std``) its inputs were normalised with, and the spaces it
    was trained on (its ``[-1, 1]`` actions map to ``action_space``'s bounds)."""

    policy: torch.nn.Module
    obs_normalizer: dict[str, torch.Tensor]
    observation_space: gym.Space
    action_space: gym.Space
    source: str


def load_pretrained_policy(path: str | os.PathLike, user: str, expected: type, advice: str) -> PretrainedPolicy:
    """The ``policy`` module of an offline checkpoint, which must be an ``expected`` with an ``obs_normalizer``.

    ``user`` names who loads it (for messages), ``advice`` says which checkpoint to pass. ``FileNotFoundError``
    when there is no file; ``ValueError`` naming what the checkpoint holds otherwise."""
    from nets.spec import build_module  # nets.spec imports nothing of algos; local to keep this module light

    try:
        state = load_checkpoint(path, map_location="cpu")
    except FileNotFoundError:
        raise FileNotFoundError(f"{user}'s pretrained checkpoint {path} does not exist; pass {advice}") from None
    source = f"{path} ({state['algo']} checkpoint)"
    spec, modules = state.get("policy_spec"), state.get("modules", {})
    policy = build_module(spec) if spec is not None else None
    if not isinstance(policy, expected):
        raise ValueError(f"{user}'s pretrained {source} has a {state.get('policy_class')} policy; expected a "
                         f"{expected.__module__}.{expected.__qualname__}: pass {advice}")
    if modules.get("obs_normalizer") is None:
        raise ValueError(f"{user}'s pretrained {source} has no 'obs_normalizer' module; expected an offline checkpoint "
                         "(its policy sees observations normalised by the dataset's statistics): pass " + advice)
    policy.load_state_dict(modules["policy"])
    return PretrainedPolicy(policy, modules["obs_normalizer"], space_from_description(state["observation_space"]),
                            space_from_description(state["action_space"]), source)


def check_pretrained_fits(source: str, trained_obs: gym.Space, trained_act: gym.Space, env_obs: gym.Space,
                          env_act: gym.Space, advice: str) -> None:
    """A pretrained policy acts on the env only with the same observation shape and the same action shape and
    bounds: its ``[-1, 1]`` actions are mapped to the bounds, so other bounds would misread them."""
    same_obs = tuple(trained_obs.shape) == tuple(env_obs.shape)
    same_act = (isinstance(trained_act, gym.spaces.Box) and isinstance(env_act, gym.spaces.Box)
                and tuple(trained_act.shape) == tuple(env_act.shape)
                and bool(np.allclose(trained_act.low, env_act.low) and np.allclose(trained_act.high, env_act.high)))
    if not (same_obs and same_act):
        raise ValueError(f"{source} was trained on observations {trained_obs} and actions {trained_act}, but the env has "
                         f"{env_obs} and {env_act}; {advice}")
