"""FPO from a pretrained flow policy (``FPOConfig.pretrained``): it starts as the flow Diffusion-BC checkpoint acts
(same weights, the dataset's observation normaliser, frozen), saves and reloads without the checkpoint's file, trains
from the command line, and names what is wrong with a checkpoint it cannot fine-tune."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import PPO, DiffusionBC, DiffusionBCConfig, PPOConfig
from policyopt.algos.core.checkpoint import load_checkpoint
from policyopt.algos.onpolicy.fpo import FPO, FPOConfig
from policyopt.algos.run.train import main
from policyopt.buffers import OfflineDataset
from policyopt.nets.generative import FlowPolicy

# small and fast on-policy runs (tests/conftest.py runs them eagerly)
SMALL = dict(num_steps=16, num_minibatches=2, update_epochs=1, critic_hidden=(16, 16), num_mc_samples=4)
BC_HIDDEN = (16, 16)  # not FPO's default 4x32: the checkpoint's architecture must win


def pendulum_dataset(action_space=None) -> OfflineDataset:
    """200 Pendulum-shaped transitions (two 100-step episodes) with random torques; the obs statistics are far from
    (0, 1), so an agent that ignored the dataset's normaliser would act differently."""
    env = vecenvs.make("Pendulum-v1", num_envs=1)
    rng = np.random.default_rng(0)
    n = 200
    obs = (rng.normal(size=(n, 3)) * [0.5, 0.5, 3.0] + [0.2, 0.0, 1.0]).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[99] = timeouts[199] = True
    return OfflineDataset(
        obs,
        rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        np.zeros(n, bool),
        timeouts,
        np.roll(obs, -1, 0),
        observation_space=env.single_observation_space,
        action_space=action_space or env.single_action_space,
    )


@pytest.fixture(scope="module")
def flow_bc(tmp_path_factory):
    """A flow Diffusion-BC agent after 300 updates, and its checkpoint."""
    torch.set_num_threads(1)
    bc = DiffusionBC(pendulum_dataset(), DiffusionBCConfig(family="flow", actor_hidden=BC_HIDDEN, batch_size=32))
    bc.learn(300, progress=False)
    return bc, bc.save(tmp_path_factory.mktemp("flow") / "flow_bc.pt")


def test_fpo_starts_as_its_pretrained_flow_policy(flow_bc):
    bc, path = flow_bc
    agent = FPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), FPOConfig(**SMALL, pretrained=str(path)))
    flow = agent.policy.flow
    assert type(flow) is FlowPolicy and flow.net.state_dict().keys() == bc.policy.net.state_dict().keys()
    for k, v in bc.policy.state_dict().items():
        assert torch.equal(flow.state_dict()[k], v), k
    # the same normalisation of raw observations, the same actions: zero noise, and sampled from the same noise
    obs = torch.randn(16, 3) * torch.tensor([0.5, 0.5, 3.0]) + torch.tensor([0.2, 0.0, 1.0])
    torch.testing.assert_close(agent.act(obs, deterministic=True), bc.act(obs, deterministic=True), atol=1e-4, rtol=0)
    torch.manual_seed(1)
    sampled_fpo = agent.act(obs, deterministic=False)
    torch.manual_seed(1)
    torch.testing.assert_close(sampled_fpo, bc.act(obs, deterministic=False), atol=1e-4, rtol=0)
    # the normaliser is the dataset's and stays frozen while FPO trains
    norm = bc.obs_normalizer
    torch.testing.assert_close(agent.obs_rms.mean.float(), norm.mean)
    torch.testing.assert_close((agent.obs_rms.var + 1e-8).sqrt().float(), norm.std)
    stats = {k: v.clone() for k, v in agent.obs_rms.state_dict().items()}
    agent.learn(2 * agent.steps_per_iteration, progress=False)
    assert all(torch.equal(agent.obs_rms.state_dict()[k], v) for k, v in stats.items())
    assert any(not torch.equal(flow.state_dict()[k], v) for k, v in bc.policy.state_dict().items())  # it did train


def test_fpo_pretrained_saves_and_reloads_without_the_checkpoint(flow_bc, tmp_path):
    bc, path = flow_bc
    copy = tmp_path / "bc.pt"
    copy.write_bytes(path.read_bytes())
    agent = FPO(vecenvs.make("Pendulum-v1", num_envs=2, seed=0), FPOConfig(**SMALL, pretrained=str(copy), fpo_plus=True))
    agent.learn(agent.steps_per_iteration, progress=False)
    agent.save(tmp_path / "fpo.pt")
    copy.unlink()  # a reload must not need the pretrained file
    obs = torch.randn(8, 3)
    for loaded in (
        FPO.load(tmp_path / "fpo.pt"),
        FPO.load(tmp_path / "fpo.pt", env=vecenvs.make("Pendulum-v1", num_envs=2, seed=1)),
    ):
        assert loaded.config.pretrained == str(copy) and loaded.policy.per_pair_ratio
        torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    stats = {k: v.clone() for k, v in loaded.obs_rms.state_dict().items()}
    loaded.learn(loaded.global_step + loaded.steps_per_iteration, progress=False)
    assert all(torch.equal(loaded.obs_rms.state_dict()[k], v) for k, v in stats.items())  # still frozen after the reload


def test_train_fpo_cli_fine_tunes_a_flow_checkpoint(flow_bc, tmp_path):
    bc, path = flow_bc
    agent = main(
        FPO,
        [
            "--env-id",
            "Pendulum-v1",
            "--num-envs",
            "2",
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--total-steps",
            "32",
            "--eval-every",
            "0",
            "--algo.num-steps",
            "16",
            "--algo.num-minibatches",
            "2",
            "--algo.update-epochs",
            "1",
            "--algo.critic-hidden",
            "16",
            "16",
            "--algo.pretrained",
            str(path),
        ],
    )
    assert agent.global_step == 32 and agent.policy.flow.net.state_dict().keys() == bc.policy.net.state_dict().keys()
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_fpo_pretrained_errors(flow_bc, tmp_path):
    _, path = flow_bc
    env = vecenvs.make("Pendulum-v1", num_envs=2)
    with pytest.raises(ValueError, match="pretrained needs normalize_obs=True"):
        FPOConfig(pretrained=str(path), normalize_obs=False)
    with pytest.raises(FileNotFoundError):
        FPO(env, FPOConfig(**SMALL, pretrained=str(tmp_path / "missing.pt")))
    # not a flow policy: a diffusion one (DPPO's), and an on-policy agent's
    data = pendulum_dataset()
    DiffusionBC(data, DiffusionBCConfig(actor_hidden=BC_HIDDEN, batch_size=32)).save(tmp_path / "diffusion.pt")
    with pytest.raises(
        ValueError,
        match=r"FPO's pretrained .*DiffusionBC checkpoint\) has a policyopt.nets.generative.diffusion:DiffusionPolicy policy; expected a policyopt.nets.generative.flow.FlowPolicy.*DiffusionPolicy is DPPO's",
    ):
        FPO(env, FPOConfig(**SMALL, pretrained=str(tmp_path / "diffusion.pt")))
    PPO(env, PPOConfig(num_steps=16, num_minibatches=2)).save(tmp_path / "ppo.pt")
    with pytest.raises(
        ValueError,
        match="PPO checkpoint\\) has a policyopt.nets.policies:GaussianPolicy policy; expected a policyopt.nets.generative",
    ):
        FPO(env, FPOConfig(**SMALL, pretrained=str(tmp_path / "ppo.pt")))
    # other spaces: another env's observations, or other action bounds than the env's
    with pytest.raises(ValueError, match=r"trained on observations Box.*\(3,\).* but the env has Box.*\(2,\)"):
        FPO(vecenvs.make("MountainCarContinuous-v0", num_envs=2), FPOConfig(**SMALL, pretrained=str(path)))
    import gymnasium as gym

    unit = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    DiffusionBC(pendulum_dataset(action_space=unit), DiffusionBCConfig(family="flow", actor_hidden=BC_HIDDEN)).save(
        tmp_path / "unit.pt"
    )
    with pytest.raises(ValueError, match="the \\[-1, 1\\] action map needs the same bounds"):
        FPO(env, FPOConfig(**SMALL, pretrained=str(tmp_path / "unit.pt")))
    # a flow checkpoint without the dataset's normaliser
    state = load_checkpoint(path, map_location="cpu")
    del state["modules"]["obs_normalizer"]
    torch.save(state, tmp_path / "no_norm.pt")
    with pytest.raises(ValueError, match="has no 'obs_normalizer' module"):
        FPO(env, FPOConfig(**SMALL, pretrained=str(tmp_path / "no_norm.pt")))
