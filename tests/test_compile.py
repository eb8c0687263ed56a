"""Compiled update steps (``config.compile``) agree with eager ones and keep exact resume.

torch.compile fuses and reorders float ops, so compiled and eager runs are not bitwise equal;
random ops draw from torch's generator in both (``fallback_random``), so they agree to float
rounding: within 1e-5 after these short runs (measured: about 6e-8), and 1e-4 for TRPO,
whose conjugate-gradient solve amplifies the critic's rounding differences (measured: 3e-5).
"""

from __future__ import annotations

import pytest

from policyopt import vecenvs
from policyopt.algos import PPO, SAC, TD3, TRPO, PPOConfig, SACConfig, TD3Config, TRPOConfig

pytestmark = pytest.mark.compile

TOL = 1e-5
OFF = dict(learning_starts=100, batch_size=64, actor_hidden=(32, 32), critic_hidden=(32, 32), buffer_size=2_000)


def pendulum(n: int = 1):
    return vecenvs.make("Pendulum-v1", num_envs=n, seed=0)


def assert_close_agents(a, b, atol: float) -> float:
    worst = 0.0
    for name, module in a.modules().items():
        other = b.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            diff = float((v - other[k]).abs().max()) if v.numel() else 0.0
            assert diff <= atol, f"{name}.{k} differs by {diff}"
            worst = max(worst, diff)
    return worst


CASES = [
    (PPO, PPOConfig(num_steps=64, num_minibatches=4, update_epochs=2), 4, 512, TOL),
    (TRPO, TRPOConfig(num_steps=64, critic_epochs=2, critic_batch_size=64), 4, 512, 1e-4),
    (SAC, SACConfig(**OFF), 1, 300, TOL),
    (TD3, TD3Config(**OFF), 1, 300, TOL),
]


@pytest.mark.parametrize("algo, config, num_envs, steps, tol", CASES, ids=[c[0].__name__ for c in CASES])
def test_compiled_agrees_with_eager(algo, config, num_envs, steps, tol):
    eager = algo(pendulum(num_envs), config).learn(steps, progress=False)
    config.compile = True
    compiled = algo(pendulum(num_envs), config).learn(steps, progress=False)
    assert compiled.compile_seconds > 0  # it really compiled, and says how long it took
    assert_close_agents(eager, compiled, tol)
    assert eager.global_step == compiled.global_step


def test_compiled_resume_is_exact(tmp_path):
    config = SACConfig(**OFF, compile=True)
    straight = SAC(pendulum(), config).learn(300, progress=False)
    first = SAC(pendulum(), config).learn(150, progress=False)
    first.save(tmp_path / "c.pt")
    resumed = SAC.load(tmp_path / "c.pt", env=pendulum()).learn(300, progress=False)
    assert resumed.config.compile
    assert_close_agents(straight, resumed, 0.0)
