"""Named hyperparameter sets, ``<Algo>Config.preset(name)``: one place for every tuned number.

Each entry overrides the config's defaults. Sources: CleanRL (``ppo.py``,
``ppo_continuous_action.py``), the SPO repository, sb3-contrib and rl-zoo; the fast
classic-control sets were tuned here with ``scripts/bench_onpolicy.py``.
"""

from __future__ import annotations

from typing import Any

# The classic-control presets run eagerly (compile=False): their runs last seconds to a minute,
# and compiling (10-30 s on 2 cores with a cold cache) does not pay back within them. The
# MuJoCo ones keep the on-policy default, compile=True, which measured 1.5-2x faster there.

# rl-zoo's PPO Pendulum-v1 recipe (gSDE redrawn every 4 steps, gamma 0.9, no value clipping) on
# 16 envs x 256 steps, with minibatches of 128 and an annealed lr: -200 within 25-49k steps on
# 5 of 5 seeds. Zoo's minibatches of 64 and a constant lr were as fast on most seeds but stalled
# near -340 on 1 of 5, and a constant lr drifted back to about -300 by 200k steps.
_PENDULUM_GSDE: dict[str, Any] = dict(
    num_steps=256,
    learning_rate=1e-3,
    num_minibatches=32,
    update_epochs=10,
    gamma=0.9,
    gae_lambda=0.95,
    use_sde=True,
    sde_sample_freq=4,
    clip_vloss=False,
    anneal_lr=True,
    compile=False,
)

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "PPOConfig": {
        "mujoco": {},  # the defaults are CleanRL's MuJoCo settings
        "classic": dict(
            num_steps=128,
            learning_rate=2.5e-4,
            num_minibatches=4,
            update_epochs=4,
            ent_coef=0.01,
            normalize_obs=False,
            normalize_reward=False,
            compile=False,
        ),  # CleanRL ppo.py
        # 8 envs x 128 steps (RECOMMENDED_NUM_ENVS); 16 x 64 was faster per step but missed seed 0
        "cartpole": dict(
            num_steps=128,
            learning_rate=1e-3,
            num_minibatches=4,
            update_epochs=10,
            ent_coef=0.0,
            normalize_reward=False,
            compile=False,
        ),
        "pendulum": _PENDULUM_GSDE,
    },
    "SPOConfig": {
        # The official repository's MuJoCo settings (mujoco/main.py): 8 envs x 256 steps, 4
        # minibatches of 512, the 7-layer actor, PyTorch's Adam eps, and an lr annealed over 1e7
        # steps (its run length). It treats truncation as termination; we bootstrap, as everywhere.
        "mujoco": dict(
            num_steps=256, num_minibatches=4, actor_hidden=(256, 256, 128, 128, 64, 64), adam_eps=1e-8, anneal_lr_steps=10_000_000
        ),
        # CleanRL's PPO MuJoCo settings with SPO's loss, to compare the two losses in one harness
        "mujoco-ppo": {},
        # 8 envs x 128 steps (RECOMMENDED_NUM_ENVS); 16 x 64 was faster per step but missed seed 0
        "cartpole": dict(
            num_steps=128,
            learning_rate=1e-3,
            num_minibatches=4,
            update_epochs=10,
            ent_coef=0.0,
            normalize_reward=False,
            compile=False,
        ),
        "pendulum": _PENDULUM_GSDE,
    },
    "TRPOConfig": {
        # rl-zoo's MuJoCo recipe (hyperparams/trpo.yml, used with 2 envs: --num-envs 2), which
        # produced the published sb3-contrib numbers: 2 x 1024 steps, CG 25, 20 critic epochs
        # of 128, critic lr 1e-3, obs and reward normalization. (rl-zoo's current HalfCheetah-v4
        # entry also sets target_kl 0.04; pass --algo.max-kl 0.04 for that.)
        "mujoco": dict(
            num_steps=1024, cg_iters=25, cg_damping=0.1, critic_epochs=20, critic_batch_size=128, critic_learning_rate=1e-3
        ),
        "cartpole": dict(num_steps=256, normalize_reward=False, compile=False),  # 8 envs x 256: a 2048-sample batch
        # 16 envs x 128 with gSDE: 65-82k steps to -200 (white noise, 16 x 256: 131k); max_kl 0.02 was unstable
        "pendulum": dict(num_steps=128, gamma=0.9, use_sde=True, sde_sample_freq=4, compile=False),
    },
    "SACConfig": {
        "mujoco": {},  # the defaults are SB3's and CleanRL's MuJoCo settings
        # rl-zoo's Pendulum-v1 SAC (lr 1e-3, 20k steps), starting to learn after 1,000 random steps
        "pendulum": dict(learning_starts=1_000, actor_learning_rate=1e-3, critic_learning_rate=1e-3, alpha_learning_rate=1e-3),
    },
    "TD3Config": {
        "mujoco": {},  # the defaults are CleanRL's MuJoCo settings
        # rl-zoo's Pendulum-v1 TD3 (lr 1e-3), starting to learn after 1,000 random steps
        "pendulum": dict(learning_starts=1_000, learning_rate=1e-3),
    },
}


# Copies of the env the fast classic-control presets were tuned with (batched tensor envs
# make many copies cheap); a preset only holds config fields, so this lives beside them.
RECOMMENDED_NUM_ENVS: dict[tuple[str, str], int] = {
    ("PPO", "CartPole-v1"): 8,
    ("PPO", "Pendulum-v1"): 16,
    ("SPO", "CartPole-v1"): 8,
    ("SPO", "Pendulum-v1"): 16,
    ("TRPO", "CartPole-v1"): 8,
    ("TRPO", "Pendulum-v1"): 16,
}


def preset(config_cls: type, name: str) -> Any:
    """``config_cls(**PRESETS[config_cls.__name__][name])`` with a clear error for unknown names."""
    table = PRESETS.get(config_cls.__name__, {})
    if name not in table:
        raise ValueError(f"unknown preset {name!r} for {config_cls.__name__}; available: {sorted(table)}")
    return config_cls(**table[name])
