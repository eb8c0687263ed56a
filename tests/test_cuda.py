"""The CUDA path: envs, the Warp backend, compiled and graph-captured updates, checkpoints
across devices. Skipped without a GPU; ``scripts/gpu_check.sh`` runs them (``pytest -m cuda``)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, SAC, TD3, PPOConfig, SACConfig, TD3Config

pytestmark = [pytest.mark.cuda, pytest.mark.compile, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

OFF = dict(learning_starts=100, batch_size=64, actor_hidden=(32, 32), critic_hidden=(32, 32), buffer_size=2_000)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCarContinuous-v0"])
def test_classic_envs_match_on_cpu_and_cuda(env_id):
    cpu, gpu = (vecenvs.make(env_id, num_envs=64, device=d, seed=3) for d in ("cpu", "cuda"))
    o_cpu, _ = cpu.reset()
    o_gpu, _ = gpu.reset()
    torch.testing.assert_close(o_gpu.cpu(), o_cpu)
    space = cpu.single_action_space
    for _ in range(50):
        a = torch.randint(0, int(space.n), (64,)) if hasattr(space, "n") else torch.rand(64, *space.shape) * 2 - 1
        o_cpu, r_cpu, te_cpu, tr_cpu, _ = cpu.step(a)
        o_gpu, r_gpu, te_gpu, tr_gpu, _ = gpu.step(a.cuda())
        assert o_gpu.device.type == "cuda"
        torch.testing.assert_close(o_gpu.cpu(), o_cpu, rtol=1e-5, atol=1e-5)
        assert torch.equal(te_gpu.cpu(), te_cpu) and torch.equal(tr_gpu.cpu(), tr_cpu)


@pytest.mark.skipif(importlib.util.find_spec("mujoco_warp") is None, reason="needs mujoco-warp")
def test_warp_backend_steps_on_cuda():
    env = vecenvs.make("HalfCheetah-v5", num_envs=256, device="cuda", seed=0, backend="warp")
    obs, _ = env.reset()
    assert obs.device.type == "cuda" and obs.shape == (256, 17)
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(torch.rand(256, 6, device="cuda") * 2 - 1)
    assert torch.isfinite(obs).all() and torch.isfinite(reward).all()


@pytest.mark.parametrize(
    "algo, config, num_envs, steps",
    [
        (PPO, PPOConfig(num_steps=64, num_minibatches=4, update_epochs=2), 16, 4096),
        (SAC, SACConfig(**OFF), 1, 300),
        (TD3, TD3Config(**OFF), 1, 300),
    ],
    ids=["PPO", "SAC", "TD3"],
)
def test_compiled_graph_captured_updates_agree_with_eager_on_cuda(algo, config, num_envs, steps):
    eager = algo(vecenvs.make("Pendulum-v1", num_envs=num_envs, device="cuda", seed=0), config).learn(steps, progress=False)
    config.compile = True  # on CUDA: torch.compile with CUDA graphs
    compiled = algo(vecenvs.make("Pendulum-v1", num_envs=num_envs, device="cuda", seed=0), config).learn(steps, progress=False)
    assert compiled.compile_seconds > 0
    for name, module in eager.modules().items():
        other = compiled.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            torch.testing.assert_close(v, other[k], rtol=1e-4, atol=1e-4, msg=f"{name}.{k}")


@pytest.mark.parametrize(
    "algo, config",
    [(PPO, PPOConfig(num_steps=32, num_minibatches=2, update_epochs=1)), (SAC, SACConfig(**OFF))],
    ids=["PPO", "SAC"],
)
def test_checkpoints_load_across_devices(tmp_path, algo, config):
    env = vecenvs.make("Pendulum-v1", num_envs=2, device="cuda", seed=0)
    agent = algo(env, config).learn(256, progress=False)
    agent.save(tmp_path / "c.pt")
    on_cpu = algo.load(tmp_path / "c.pt", device="cpu")
    obs = torch.randn(8, 3)
    torch.testing.assert_close(on_cpu.act(obs, deterministic=True), agent.act(obs.cuda(), deterministic=True).cpu())
    # a CPU checkpoint continues training on CUDA
    on_cpu_agent = algo(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), config).learn(256, progress=False)
    on_cpu_agent.save(tmp_path / "cpu.pt")
    moved = algo.load(tmp_path / "cpu.pt", env=vecenvs.make("Pendulum-v1", num_envs=2, device="cuda", seed=0))
    moved.learn(512, progress=False)
    assert moved.global_step == 512
    assert all(p.device.type == "cuda" for m in moved.modules().values() for p in m.parameters())
