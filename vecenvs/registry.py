"""``vecenvs.make``: one entry point for every backend.

Native tensor envs register themselves here with the backends they offer. Any other
gymnasium id goes through :class:`vecenvs.adapter.GymnasiumVecEnv`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import torch
from gymnasium.vector import VectorEnv

from policyopt.vecenvs.core import Device, check_device, check_num_envs


@dataclass
class EnvSpec:
    """How to build one env id: a factory per backend, and how to pick the default."""

    env_id: str
    backends: dict[str, Callable[..., VectorEnv]]
    default_backend: Callable[[torch.device], str] = field(default=lambda device: "torch")


_REGISTRY: dict[str, EnvSpec] = {}


def register(
    env_id: str, backends: dict[str, Callable[..., VectorEnv]], default_backend: Callable[[torch.device], str] | None = None
) -> None:
    """Register a native env id. Each factory is called as ``f(num_envs=, device=, seed=, **kwargs)``."""
    spec = EnvSpec(env_id, dict(backends))
    if default_backend is not None:
        spec.default_backend = default_backend
    _REGISTRY[env_id] = spec


def registered_ids() -> list[str]:
    """The ids with a native tensor implementation."""
    return sorted(_REGISTRY)


def resolve_backend(env_id: str, device: Device = "cpu", backend: str | None = None) -> str:
    """The backend :func:`make` would build ``env_id`` with: a native one, or ``"gymnasium"`` (the adapter)."""
    if env_id in _REGISTRY:
        return backend or _REGISTRY[env_id].default_backend(check_device(device))
    return "gymnasium"


def make(
    env_id: str,
    num_envs: int = 1,
    device: Device = "cpu",
    seed: int | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> VectorEnv:
    """Make ``num_envs`` copies of ``env_id`` whose tensors live on ``device``.

    Native ids get the tensor implementation (``backend=None`` picks the default for the
    device); ``backend="gymnasium"`` forces the adapter. Other keyword arguments go to the
    env (for native classic control: ``compile``, ``dtype``, ``max_episode_steps``).
    Any id registered in gymnasium but not here is served by the gymnasium adapter.
    """
    from policyopt.vecenvs.adapter import GymnasiumVecEnv  # local: the adapter imports this module's users

    num_envs = check_num_envs(num_envs)
    device = check_device(device)
    if env_id in _REGISTRY:
        spec = _REGISTRY[env_id]
        name = backend or spec.default_backend(device)
        if name == "gymnasium" and "gymnasium" not in spec.backends:
            return GymnasiumVecEnv(env_id, num_envs=num_envs, device=device, seed=seed, **kwargs)
        if name not in spec.backends:
            raise ValueError(f"{env_id} has no backend {name!r}; available: {sorted(set(spec.backends) | {'gymnasium'})}")
        return spec.backends[name](num_envs=num_envs, device=device, seed=seed, **kwargs)
    if env_id in gym.registry:
        if backend not in (None, "gymnasium"):
            raise ValueError(f"{env_id} has no native implementation, so only backend='gymnasium' is available")
        return GymnasiumVecEnv(env_id, num_envs=num_envs, device=device, seed=seed, **kwargs)
    raise ValueError(
        f"unknown env id {env_id!r}.{_did_you_mean(env_id)} Native tensor envs: {', '.join(registered_ids())}. "
        "Any other id registered in gymnasium (e.g. 'LunarLander-v3', 'BipedalWalker-v3') goes "
        "through the gymnasium adapter; install the package that registers it (e.g. "
        "pip install 'gymnasium[box2d]')."
    )


def _did_you_mean(env_id: str) -> str:
    """' Did you mean ...?' over the native and gymnasium ids, or '' when nothing is close."""
    ids = sorted(set(_REGISTRY) | set(gym.registry))
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    if not close:  # also match ignoring case and the version suffix ("cartpole" -> CartPole-v1)
        lowered = {i.lower(): i for i in ids}
        stems = {i.lower().rsplit("-v", 1)[0]: i for i in ids}
        close = [lowered[m] for m in difflib.get_close_matches(env_id.lower(), list(lowered), n=3, cutoff=0.6)]
        close = close or [stems[m] for m in difflib.get_close_matches(env_id.lower(), list(stems), n=3, cutoff=0.6)]
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
