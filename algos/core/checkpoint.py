"""Checkpoints: atomic writes of plain data, loading that runs no code, and a plain description of the env's spaces.

A checkpoint holds only tensors and plain Python data (dicts, lists, tuples, strings, numbers, None):
:func:`atomic_save` refuses anything else, and :func:`load_checkpoint` reads with
``torch.load(weights_only=True)``, whose unpickler builds nothing but those types. So loading a
checkpoint, even one from a stranger, imports and calls nothing the file names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import gymnasium as gym
import numpy as np
import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so a crash mid-write leaves the previous checkpoint intact. ``obj``
    must be plain data (:func:`check_plain`), so that :func:`load_checkpoint` can read it without pickle.
    """
    check_plain(obj)
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


PLAIN_LEAVES = (type(None), bool, int, float, str, torch.Tensor, torch.Size, torch.dtype, torch.device)


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the entry when ``obj`` holds anything but dicts (string keys), lists,
    tuples and :data:`PLAIN_LEAVES`: what ``torch.load(weights_only=True)`` reads back without pickle."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; checkpoint keys are strings or ints")
            check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, PLAIN_LEAVES):
        raise TypeError(
            f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds only tensors "
            "and plain data (dict, list, tuple, str, int, float, bool, None), so it loads without running code: "
            "store it as one of those (a NumPy array as a tensor)"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`, running no code from the file
    (``weights_only=True``), with a clear error when it is not one. ``mmap`` maps the tensors
    instead of reading them, for a cheap look at the counters and the config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:  # an object other than tensors and plain data: refused, never built
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "GLOBAL" in ln or "global" in ln), lines[-1] if lines else "")
        raise ValueError(
            f"{path} is refused: it holds objects other than tensors and plain data, which loading would "
            f"have to run code to build ({first}). policyopt's own checkpoints hold only plain data; if you "
            "trust this file's author, read it yourself with torch.load, weights_only off, and keep only "
            "the tensors you need"
        ) from None
    except Exception as e:  # truncated or foreign file
        raise ValueError(f"{path} is not a readable policyopt checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "algo" not in ckpt:
        raise ValueError(f"{path} is not a policyopt checkpoint (no 'algo' entry)")
    return ckpt


C = TypeVar("C")


def config_from_dict(config_cls: type[C], data: Any, where: str) -> C:
    """``config_cls(**data)``, after checking ``data`` as a file's contents: a dict whose keys are the
    config's fields (a missing field takes its default) and whose values have the fields' types.

    ``where`` names the source (``"runs/x/config.json's algo_config"``); every error is a ``ValueError``
    naming it, the key and the expected type, never a raw ``TypeError`` or ``KeyError``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of {config_cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; {config_cls.__name__} has {sorted(fields)}")
    hints = typing.get_type_hints(config_cls)
    for key, value in data.items():
        if not _matches(value, hints.get(key, Any)):
            raise ValueError(f"{where}: {key!r} is {value!r} ({type(value).__name__}); expected {_type_name(hints[key])}")
    try:
        return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} is not a valid {config_cls.__name__}: {e}") from e


def _matches(value: Any, tp: Any) -> bool:
    """Whether a value read from a file (JSON types, or a checkpoint's plain types) fits the annotation ``tp``."""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp).replace("typing.", "")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file's contents, with a ``ValueError`` naming the file (and ``what`` it should be) when it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); expected {what}") from None


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
    for name, mine, theirs in (
        ("observation", agent_obs, env.single_observation_space),
        ("action", agent_act, env.single_action_space),
    ):
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
    from policyopt.nets.spec import build_module  # nets.spec imports nothing of algos; local to keep this module light

    try:
        state = load_checkpoint(path, map_location="cpu")
    except FileNotFoundError:
        raise FileNotFoundError(f"{user}'s pretrained checkpoint {path} does not exist; pass {advice}") from None
    source = f"{path} ({state['algo']} checkpoint)"
    spec, modules = state.get("policy_spec"), state.get("modules", {})
    policy = build_module(spec) if spec is not None else None
    if not isinstance(policy, expected):
        raise ValueError(
            f"{user}'s pretrained {source} has a {state.get('policy_class')} policy; expected a "
            f"{expected.__module__}.{expected.__qualname__}: pass {advice}"
        )
    if modules.get("obs_normalizer") is None:
        raise ValueError(
            f"{user}'s pretrained {source} has no 'obs_normalizer' module; expected an offline checkpoint "
            "(its policy sees observations normalised by the dataset's statistics): pass " + advice
        )
    policy.load_state_dict(modules["policy"])
    return PretrainedPolicy(
        policy,
        modules["obs_normalizer"],
        space_from_description(state["observation_space"]),
        space_from_description(state["action_space"]),
        source,
    )


def check_pretrained_fits(
    source: str, trained_obs: gym.Space, trained_act: gym.Space, env_obs: gym.Space, env_act: gym.Space, advice: str
) -> None:
    """A pretrained policy acts on the env only with the same observation shape and the same action shape and
    bounds: its ``[-1, 1]`` actions are mapped to the bounds, so other bounds would misread them."""
    same_obs = tuple(trained_obs.shape) == tuple(env_obs.shape)
    same_act = (
        isinstance(trained_act, gym.spaces.Box)
        and isinstance(env_act, gym.spaces.Box)
        and tuple(trained_act.shape) == tuple(env_act.shape)
        and bool(np.allclose(trained_act.low, env_act.low) and np.allclose(trained_act.high, env_act.high))
    )
    if not (same_obs and same_act):
        raise ValueError(
            f"{source} was trained on observations {trained_obs} and actions {trained_act}, but the env has "
            f"{env_obs} and {env_act}; {advice}"
        )
