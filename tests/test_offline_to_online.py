"""Offline-to-online fine-tuning (OfflineAlgorithm.go_online, --online-steps): IQL and ReBRAC keep
their losses and go on with the off-policy loop on a native env, their batches mixing the dataset
with their own transitions; exact resume in the online phase; the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import IQL, TD3BC, IQLConfig, ReBRAC, ReBRACConfig, TD3BCConfig
from policyopt.buffers import OfflineDataset, ReplayBuffer

SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32)


def hopper_like(seed: int = 0, n: int = 300) -> OfflineDataset:
    """Random transitions with Hopper-v5's shapes (obs 11, actions 3), two episodes and a partial one."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[99], timeouts[199] = True, True
    return OfflineDataset(
        obs,
        rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        terminals,
        timeouts,
        np.roll(obs, -1, 0),
        metadata={"ref_min_score": 0.0, "ref_max_score": 100.0},
    )


@pytest.mark.parametrize("cls, config", [(IQL, IQLConfig(**SMALL)), (ReBRAC, ReBRACConfig(**SMALL))])
def test_offline_then_online_end_to_end(cls, config):
    data = hopper_like()
    agent = cls(data, config).learn(20, progress=False)
    assert not agent.online and agent.buffer is None
    agent.go_online(vecenvs.make("Hopper-v5", num_envs=2, seed=0))
    records = []
    agent.learn(
        420,
        progress=False,
        log_every=10,
        callback=lambda a, r: records.append(r),
        eval_env=vecenvs.make("Hopper-v5", num_envs=2, seed=1),
        eval_every=200,
    )
    assert agent.online and agent.global_step == 420
    assert len(agent.buffer) == 400  # 200 iterations of 2 copies
    assert agent.buffer.next_actions is not None
    assert any("train/critic_loss" in r for r in records) and any("charts/episodic_return" in r for r in records)
    assert any("eval/normalized_score" in r for r in records)
    # exploration stays inside the action space
    low, high = data.action_space.low, data.action_space.high
    stored = agent.buffer.actions[: agent.buffer.rows_filled].reshape(-1, 3).numpy()
    assert (stored >= low - 1e-6).all() and (stored <= high + 1e-6).all()


def own_rows(agent, batch) -> int:
    """How many of a prepared batch's rows are the agent's own transitions (matched by observation)."""
    raw = batch["obs"] * agent.obs_normalizer.std + agent.obs_normalizer.mean
    own = agent.buffer.obs[: agent.buffer.rows_filled].reshape(-1, raw.shape[1])
    return int((torch.cdist(raw, own, compute_mode="donot_use_mm_for_euclid_dist").min(1).values < 1e-3).sum())


def test_batches_mix_the_dataset_and_the_agents_transitions():
    data = hopper_like()
    agent = ReBRAC(data, ReBRACConfig(**SMALL)).go_online(vecenvs.make("Hopper-v5", num_envs=1, seed=0))
    assert agent.config.online_mixing == 0.5  # ReBRAC's fine-tuning: half and half
    agent.learn(5, progress=False)
    batch = agent._mixed_batch()
    assert batch["obs"].shape == (32, 11) and own_rows(agent, batch) == 16

    iql = IQL(data, IQLConfig(**SMALL)).go_online(vecenvs.make("Hopper-v5", num_envs=1, seed=0))
    assert iql.config.online_mixing is None  # in proportion, as one buffer seeded with the dataset
    iql.learn(30, progress=False)
    assert own_rows(iql, iql._mixed_batch()) == round(32 * 30 / (30 + 300))


def test_online_rewards_follow_the_reward_convention():
    data = hopper_like()
    agent = IQL(data, IQLConfig(**SMALL, online_mixing=1.0)).go_online(vecenvs.make("Hopper-v5", num_envs=1, seed=0))
    agent.learn(3, progress=False)
    scale, bias = (agent.dataset.metadata["reward_transform"][k] for k in ("scale", "bias"))
    torch.manual_seed(5)
    batch = agent._mixed_batch()  # all 32 from the agent's own transitions
    torch.manual_seed(5)
    own = agent.buffer.sample(32)
    torch.testing.assert_close(batch["rewards"], own["rewards"] * scale + bias)


@pytest.mark.parametrize("cls, config", [(IQL, IQLConfig(**SMALL)), (ReBRAC, ReBRACConfig(**SMALL))])
def test_exact_resume_in_the_online_phase(tmp_path, cls, config):
    data = hopper_like()

    def env():
        return vecenvs.make("Hopper-v5", num_envs=2, seed=3)

    straight = cls(data, config).learn(10, progress=False).go_online(env()).learn(40, progress=False)
    first = cls(data, config).learn(10, progress=False).go_online(env())
    first.learn(40, progress=False, log_every=2, callback=lambda a, r: a.global_step < 24)
    assert first.global_step == 24
    first.save(tmp_path / "o.pt")
    resumed = cls.load(tmp_path / "o.pt", dataset=data)
    assert resumed.resumes_online and not resumed.online
    resumed.go_online(env()).learn(40, progress=False)
    assert resumed.global_step == 40 and len(resumed.buffer) == len(straight.buffer) == 30
    for name, module in straight.modules().items():
        for (k, p), q in zip(module.state_dict().items(), resumed.modules()[name].state_dict().values()):
            assert torch.equal(p, q), (name, k)
    assert torch.equal(straight.buffer.obs, resumed.buffer.obs)


def test_go_online_checks_the_env():
    agent = TD3BC(hopper_like(), TD3BCConfig(**SMALL))
    with pytest.raises(ValueError, match=r"Walker2d-v5.*shape \(17,\)"):
        agent.go_online(vecenvs.make("Walker2d-v5", num_envs=1))
    with pytest.raises(ValueError, match="online_mixing"):
        IQLConfig(online_mixing=1.5)


def test_replay_buffer_stores_next_actions_only_when_asked():
    buf = ReplayBuffer(10, 2, (1,), (1,), store_next_actions=True)
    z = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="next_actions"):
        buf.add(z, z, torch.zeros(2), z, torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool))
    buf.add(z, z, torch.zeros(2), z, torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool), next_actions=z + 0.5)
    assert (buf.sample(8)["next_actions"] == 0.5).all()
    restored = ReplayBuffer(10, 2, (1,), (1,), store_next_actions=True)
    restored.load_state_dict(buf.state_dict())
    assert torch.equal(restored.next_actions, buf.next_actions)
    plain = ReplayBuffer(10, 2, (1,), (1,))
    with pytest.raises(ValueError, match="next_actions"):
        plain.add(z, z, torch.zeros(2), z, torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool), next_actions=z)


def test_cli_online_steps_end_to_end_and_resume_into_the_online_phase(tmp_path):
    from policyopt.algos.run.train import main

    path = hopper_like().save_d4rl(tmp_path / "toy-hopper.hdf5")
    run = tmp_path / "run"
    argv = [
        "--dataset",
        str(path),
        "--env-id",
        "Hopper-v5",
        "--total-steps",
        "20",
        "--online-steps",
        "20",
        "--eval-every",
        "10",
        "--eval-episodes",
        "2",
        "--checkpoint-every",
        "10",
        "--run-dir",
        str(run),
        "--no-progress",
        "--algo.batch-size",
        "32",
        "--algo.actor-hidden",
        "32",
        "32",
        "--algo.critic-hidden",
        "32",
        "32",
    ]
    agent = main(IQL, argv)
    assert agent.online and agent.global_step == 40 and len(agent.buffer) == 20
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 40 and any("charts/episodic_return" in r for r in rows)
    more = [a if a != "20" or argv[i - 1] != "--online-steps" else "30" for i, a in enumerate(argv)]
    resumed = main(IQL, [*more, "--resume"])
    assert resumed.global_step == 50 and len(resumed.buffer) == 30
