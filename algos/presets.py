"""Named hyperparameter sets, ``<Algo>Config.preset(name)``: one place for every tuned number.

Each entry overrides the config's defaults. Sources: CleanRL (``ppo.py``,
``ppo_continuous_action.py``), the SPO repository, sb3-contrib and rl-zoo; the fast
classic-control sets were tuned here with ``scripts/bench_onpolicy.py``.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "PPOConfig": {
        "mujoco": {},  # the defaults are CleanRL's MuJoCo settings
        "classic": dict(num_steps=128, learning_rate=2.5e-4, num_minibatches=4, update_epochs=4, ent_coef=0.01,
                        normalize_obs=False, normalize_reward=False),  # CleanRL ppo.py
        # 8 envs x 128 steps (RECOMMENDED_NUM_ENVS); 16 x 64 was faster per step but missed seed 0
        "cartpole": dict(num_steps=128, learning_rate=1e-3, num_minibatches=4, update_epochs=10, ent_coef=0.0,
                         normalize_reward=False),
        # 16 envs x 256 steps, minibatches of 64 (rl-zoo's many small steps); the lr is annealed
        # because a constant 1e-3 lets the policy drift away again after it has learned
        "pendulum": dict(num_steps=256, learning_rate=1e-3, num_minibatches=64, update_epochs=10,
                         gamma=0.9, gae_lambda=0.95),
    },
    "SPOConfig": {
        "mujoco": {},
        "deep": dict(actor_hidden=(256, 256, 128, 128, 64, 64), num_minibatches=4),  # the paper's 7-layer actor
        # 8 envs x 128 steps (RECOMMENDED_NUM_ENVS); 16 x 64 was faster per step but missed seed 0
        "cartpole": dict(num_steps=128, learning_rate=1e-3, num_minibatches=4, update_epochs=10, ent_coef=0.0,
                         normalize_reward=False),
        "pendulum": dict(num_steps=256, learning_rate=1e-3, num_minibatches=64, update_epochs=10,
                         gamma=0.9, gae_lambda=0.95),
    },
    "TRPOConfig": {
        "mujoco": {},  # sb3-contrib defaults
        "cartpole": dict(num_steps=256, normalize_reward=False),  # 8 envs x 256: a 2048-sample batch
        "pendulum": dict(num_steps=256, gamma=0.9),  # 16 envs x 256; max_kl 0.02 was unstable on Pendulum
    },
}


# Copies of the env the fast classic-control presets were tuned with (batched tensor envs
# make many copies cheap); a preset only holds config fields, so this lives beside them.
RECOMMENDED_NUM_ENVS: dict[tuple[str, str], int] = {
    ("PPO", "CartPole-v1"): 8, ("PPO", "Pendulum-v1"): 16,
    ("SPO", "CartPole-v1"): 8, ("SPO", "Pendulum-v1"): 16,
    ("TRPO", "CartPole-v1"): 8, ("TRPO", "Pendulum-v1"): 16,
}


def preset(config_cls: type, name: str) -> Any:
    """``config_cls(**PRESETS[config_cls.__name__][name])`` with a clear error for unknown names."""
    table = PRESETS.get(config_cls.__name__, {})
    if name not in table:
        raise ValueError(f"unknown preset {name!r} for {config_cls.__name__}; available: {sorted(table)}")
    return config_cls(**table[name])
