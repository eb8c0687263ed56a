"""MuJoCo locomotion (Hopper, HalfCheetah, Walker2d, Ant, Humanoid; Gymnasium v5 and v4) as
batched tensor environments.

Importing this package registers the ids ``"<Task>-v5"`` and ``"<Task>-v4"`` with
:func:`vecenvs.make`, with backends ``"cpu"`` (MuJoCo C on threads via mjbatch; the default
on a CPU device) and ``"warp"`` (MuJoCo Warp; the default on CUDA). It imports neither
mujoco nor warp: a backend imports its packages when an env is made, and says which
``pip install 'policyopt[...]'`` extra is missing.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from policyopt.vecenvs.core import Device, check_device, check_num_envs
from policyopt.vecenvs.mujoco.tasks import TASKS, VERSIONS, make_task
from policyopt.vecenvs.registry import register

__all__ = ["TASKS", "VERSIONS", "ENV_IDS", "make_mujoco", "make_task"]

ENV_IDS = tuple(f"{t}-{v}" for t in TASKS for v in VERSIONS)
BACKENDS = ("cpu", "warp")


def _default_backend(device: torch.device) -> str:
    return "warp" if device.type == "cuda" else "cpu"


def make_mujoco(
    env_id: str,
    num_envs: int = 1,
    device: Device = "cpu",
    seed: int | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> "MujocoVecEnv":  # noqa: F821 - imported lazily
    """Make ``num_envs`` copies of a MuJoCo locomotion task, e.g. ``make_mujoco("Hopper-v5", 64)``.

    ``kwargs``: ``dtype``, ``max_episode_steps`` (default 1000), ``backend_options`` (cpu:
    ``num_threads``; warp: ``graph``, ``nconmax``, ``njmax``), and Gymnasium's task
    arguments (``ctrl_cost_weight``, ``reset_noise_scale``, ``xml_file``, ...).
    """
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown MuJoCo task id {env_id!r}; available: {', '.join(ENV_IDS)}")
    num_envs = check_num_envs(num_envs)
    device = check_device(device)
    backend = backend or _default_backend(device)
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown MuJoCo backend {backend!r}; available: {', '.join(BACKENDS)} (and 'gymnasium' through vecenvs.make)"
        )
    from policyopt.vecenvs.mujoco.base import MujocoVecEnv

    return MujocoVecEnv(env_id, backend, num_envs=num_envs, device=device, seed=seed, **kwargs)


for _id in ENV_IDS:
    register(
        _id,
        {b: partial(make_mujoco, _id, backend=b) for b in BACKENDS},
        default_backend=_default_backend,
    )
