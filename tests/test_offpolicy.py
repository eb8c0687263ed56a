"""SAC and TD3: learning, exact resume with the buffer, truncation, partial loads, bad input, NaN guard."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from policyopt import vecenvs
from policyopt.algos import SAC, TD3, PPO, SACConfig, TD3Config, PPOConfig, TrainingDivergedError
from policyopt.algos.run.train import main
from policyopt.nets import SquashedGaussianActor

SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64, learning_starts=200, buffer_size=5_000)


def pendulum(n: int = 1, seed: int = 0):
    return vecenvs.make("Pendulum-v1", num_envs=n, seed=seed)


def params(agent) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v for m, mod in agent.modules().items() for k, v in mod.state_dict().items()}


@pytest.mark.parametrize("algo, config", [(SAC, SACConfig), (TD3, TD3Config)])
def test_exact_resume_with_the_buffer(tmp_path, algo, config):
    cfg = config(**SMALL)
    straight = algo(pendulum(2), cfg).learn(800, progress=False)
    first = algo(pendulum(2), cfg).learn(400, progress=False)
    first.save(tmp_path / "ckpt.pt")
    resumed = algo.load(tmp_path / "ckpt.pt", env=pendulum(2, seed=123))  # the env's state comes from the checkpoint
    assert len(resumed.buffer) == 400
    resumed.learn(800, progress=False)
    assert resumed.global_step == straight.global_step == 800
    a, b = params(straight), params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if algo is SAC:
        assert torch.equal(straight.log_alpha, resumed.log_alpha)


def test_resume_without_the_buffer_refills_before_updating(tmp_path):
    agent = SAC(pendulum(), SACConfig(**{**SMALL, "save_buffer": False})).learn(300, progress=False)
    agent.save(tmp_path / "c.pt")
    loaded = SAC.load(tmp_path / "c.pt", env=pendulum())
    assert len(loaded.buffer) == 0
    before = loaded.gradient_steps_done
    loaded.learn(450, progress=False)  # 150 new transitions < learning_starts: no update yet
    assert loaded.gradient_steps_done == before
    loaded.learn(600, progress=False)
    assert loaded.gradient_steps_done > before


def test_truncation_is_stored_apart_from_termination():
    agent = SAC(pendulum(), SACConfig(**{**SMALL, "learning_starts": 10_000}))
    agent.learn(201, progress=False)  # Pendulum truncates at 200 steps and never terminates
    buf = agent.buffer
    assert not buf.terminated[:201].any()
    assert buf.truncated[:201, 0].nonzero().flatten().tolist() == [199]
    # the stored next obs of the truncated step is the episode's last obs, not the reset one
    assert not torch.equal(buf.next_obs[199], buf.obs[200])
    assert torch.equal(buf.next_obs[198], buf.obs[199])
    batch = buf.sample(512)
    assert float(batch["terminated"].max()) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("algo, config", [(SAC, SACConfig), (TD3, TD3Config)])
def test_learns_pendulum(algo, config):
    torch.set_num_threads(1)
    cfg = config(
        **{**config.preset("pendulum").__dict__, "actor_hidden": (64, 64), "critic_hidden": (64, 64), "buffer_size": 20_000}
    )
    agent = algo(pendulum(seed=1), cfg)
    before = agent.evaluate(pendulum(10, seed=99))["return_mean"]
    agent.learn(7_000, progress=False)
    after = agent.evaluate(pendulum(10, seed=99))["return_mean"]
    assert before < -900  # the untrained policy
    assert after > -400, (before, after)  # generous: the -200 target is measured by bench_learner.py


@pytest.mark.parametrize("algo", [SAC, TD3])
def test_discrete_actions_are_rejected_at_construction(algo):
    with pytest.raises(ValueError, match="continuous actions.*Discrete"):
        algo(vecenvs.make("CartPole-v1", num_envs=1), None)


def test_unknown_module_names_are_listed(tmp_path):
    SAC(pendulum(), SACConfig(**SMALL)).save(tmp_path / "c.pt")
    with pytest.raises(KeyError, match=r"unknown module\(s\) \['actor'\].*has \['policy', 'critic', 'critic_target'\]"):
        SAC.load(tmp_path / "c.pt", modules=["actor"])
    agent = SAC(pendulum(), SACConfig(**SMALL))
    with pytest.raises(KeyError, match="policy_target"):
        TD3(pendulum(), TD3Config(**SMALL)).load_modules(tmp_path / "c.pt", ["policy_target"])
    del agent


def test_partial_load_takes_only_the_named_modules(tmp_path):
    trained = SAC(pendulum(), SACConfig(**SMALL)).learn(400, progress=False)
    trained.save(tmp_path / "c.pt")
    fresh = SAC(pendulum(), SACConfig(**{**SMALL, "seed": 5}))
    critic_before = {k: v.clone() for k, v in fresh.critic.state_dict().items()}
    fresh.load_modules(tmp_path / "c.pt", ["policy"])
    for k, v in trained.policy.state_dict().items():
        assert torch.equal(fresh.policy.state_dict()[k], v)
    for k, v in fresh.critic.state_dict().items():
        assert torch.equal(v, critic_before[k])
    assert fresh.global_step == 0  # counters and optimisers untouched
    # and the classmethod form: a fresh agent with only the policy loaded
    only_policy = SAC.load(tmp_path / "c.pt", env=pendulum(), modules=["policy"])
    assert only_policy.global_step == 0 and len(only_policy.buffer) == 0
    obs = torch.randn(4, 3)
    assert torch.equal(only_policy.act(obs, deterministic=True), trained.act(obs, deterministic=True))


class WideActor(SquashedGaussianActor):
    """A user's own actor: a different constructor, recorded automatically for checkpoints."""

    def __init__(self, obs_dim: int, act_dim: int, width: int = 48) -> None:
        super().__init__(obs_dim, act_dim, hidden=(width,), activation="tanh")
        self.width = width


def test_custom_policy_round_trips(tmp_path):
    agent = SAC(pendulum(), SACConfig(**SMALL), policy=WideActor(3, 1, width=24)).learn(300, progress=False)
    agent.save(tmp_path / "c.pt")
    loaded = SAC.load(tmp_path / "c.pt", trusted_classes=[WideActor])  # a user's class: rebuilt when allowed
    assert type(loaded.policy) is WideActor and loaded.policy.width == 24
    obs = torch.randn(5, 3)
    assert torch.equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_nan_stops_with_the_update_named_and_the_checkpoint_intact(tmp_path):
    agent = TD3(pendulum(), TD3Config(**SMALL))
    ckpt = tmp_path / "c.pt"
    agent.learn(400, checkpoint_path=ckpt, checkpoint_every=200, progress=False)
    good = ckpt.read_bytes()
    original = agent._critic_loss

    def poisoned(batch):
        loss, q = original(batch)
        return loss * float("nan"), q

    agent._critic_loss = poisoned
    with pytest.raises(TrainingDivergedError, match="critic_loss"):
        agent.learn(1_000, checkpoint_path=ckpt, checkpoint_every=200, progress=False)
    assert ckpt.read_bytes() == good


def test_train_script_runs_and_resumes(tmp_path):
    run = tmp_path / "run"
    common = [
        "--env-id",
        "Pendulum-v1",
        "--run-dir",
        str(run),
        "--eval-every",
        "300",
        "--eval-episodes",
        "2",
        "--no-progress",
        "--algo.learning-starts",
        "100",
        "--algo.batch-size",
        "32",
        "--algo.actor-hidden",
        "16",
        "16",
        "--algo.critic-hidden",
        "16",
        "16",
    ]
    main(SAC, common + ["--total-steps", "300"])
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "SAC" and config["num_envs"] == 1 and config["algo_config"]["learning_starts"] == 100
    resumed = main(SAC, ["--run-dir", str(run), "--total-steps", "600", "--resume", "--no-progress"])
    assert resumed.global_step == 600 and resumed.config.batch_size == 32


def test_log_every_batches_records():
    records = []
    SAC(pendulum(), SACConfig(**SMALL)).learn(1_000, progress=False, log_every=250, callback=lambda a, r: records.append(r))
    assert len(records) == 4
    assert "train/critic_loss" in records[-1] and "charts/episodic_return" in records[-1]


def test_custom_stochastic_policy_round_trips_through_ppo(tmp_path):
    from policyopt.nets import GaussianPolicy

    class TinyGaussian(GaussianPolicy):
        def __init__(self, obs_dim: int, act_dim: int) -> None:
            super().__init__(obs_dim, act_dim, hidden=(8,), log_std_init=-0.5)

    globals()["TinyGaussian"] = TinyGaussian  # importable from this module, as a user's class would be
    TinyGaussian.__qualname__ = "TinyGaussian"
    agent = PPO(pendulum(2), PPOConfig(num_steps=32, num_minibatches=2, update_epochs=1), policy=TinyGaussian(3, 1))
    agent.learn(64, progress=False)
    agent.save(tmp_path / "p.pt")
    loaded = PPO.load(tmp_path / "p.pt", trusted_classes=[__name__])  # a module prefix the user trusts
    assert type(loaded.policy).__name__ == "TinyGaussian"
    obs = torch.randn(3, 3)
    assert torch.equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_a_policy_that_cannot_be_rebuilt_asks_for_policy(tmp_path):
    class Unrecorded(nn.Module):  # a plain module: no RecordsInit, no init_kwargs
        def __init__(self):
            super().__init__()
            self.inner = SquashedGaussianActor(3, 1, hidden=(8,))

        def sample(self, obs):
            return self.inner.sample(obs)

        def act(self, obs, deterministic=False):
            return self.inner.act(obs, deterministic)

    agent = SAC(pendulum(), SACConfig(**SMALL), policy=Unrecorded())
    agent.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"Unrecorded policy.*policy=\.\.\."):
        SAC.load(tmp_path / "c.pt")
    loaded = SAC.load(tmp_path / "c.pt", policy=Unrecorded())
    obs = torch.randn(2, 3)
    assert torch.equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_a_run_that_ends_before_learning_starts_says_so():
    """--total-steps below learning_starts trains nothing (DSRL's 3,000 against 5,000): a warning says so."""
    agent = SAC(pendulum(), SACConfig(**{**SMALL, "learning_starts": 100}))
    with pytest.warns(RuntimeWarning, match=r"training ends at 50 env steps, before learning starts at 100 \(learning_starts\)"):
        agent.learn(50, progress=False)
    assert agent.gradient_steps_done == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reaching learning_starts updates: no warning
        agent.learn(100, progress=False)
    assert agent.gradient_steps_done > 0
