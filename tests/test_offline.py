"""The offline family (algos/offline/base.py) with BC, TD3+BC and IQL: losses against hand computations,
learning on a toy contextual bandit where they must beat BC, reweighting, exact resume with the
sampler's state, loading to act, the training CLI, and the errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import BC, IQL, TD3BC, BCConfig, IQLConfig, TD3BCConfig, TrainingDivergedError
from policyopt.algos.offline.iql import awr_weights, expectile_loss
from policyopt.algos.offline.td3bc import td3bc_actor_loss
from policyopt.buffers import OfflineDataset


# --- a toy contextual bandit: one-step episodes, reward -|a - a*(s)|, a*(s) = 0.8 tanh(s0 - s1) ---------
def best_action(obs: np.ndarray) -> np.ndarray:
    return 0.8 * np.tanh(obs[:, :1] - obs[:, 1:2])


def bandit(n_good: int, n_bad: int, seed: int = 0, obs_dim: int = 3) -> OfflineDataset:
    """Good transitions act near a*(s); bad ones uniformly. Every episode is one terminal step."""
    rng = np.random.default_rng(seed)
    n = n_good + n_bad
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    actions[:n_good] = np.clip(best_action(obs[:n_good]) + 0.05 * rng.normal(size=(n_good, 1)), -1, 1)
    rewards = -np.abs(actions - best_action(obs))[:, 0].astype(np.float32)
    order = rng.permutation(n)
    return OfflineDataset(
        obs[order],
        actions[order],
        rewards[order],
        np.ones(n, bool),
        np.zeros(n, bool),
        rng.normal(size=(n, obs_dim)).astype(np.float32),
        metadata={"ref_min_score": -1.0, "ref_max_score": 0.0},
    )


# One-step episodes make IQL's 1000 / return-range reward scaling a factor of 500 (locomotion: about
# 0.3), which saturates its advantage weights; the bandit tests keep the rewards as they are.
SMALL = dict(actor_hidden=(64, 64), critic_hidden=(64, 64), reward_convention="none")


def bandit_return(agent, seed: int = 123) -> float:
    obs = np.random.default_rng(seed).normal(size=(2000, 3)).astype(np.float32)
    actions = agent.act(obs, deterministic=True)
    return float(-np.abs(actions - best_action(obs)).mean())


# --- losses against hand computations ---------------------------------------------------------------
def test_expectile_loss_by_hand():
    diff = torch.tensor([2.0, -1.0, 0.5, -3.0])
    by_hand = (0.7 * 4.0 + 0.3 * 1.0 + 0.7 * 0.25 + 0.3 * 9.0) / 4
    assert expectile_loss(diff, 0.7).item() == pytest.approx(by_hand)
    assert expectile_loss(diff, 0.5).item() == pytest.approx(0.5 * diff.square().mean().item())


def test_awr_weights_clip():
    w = awr_weights(torch.tensor([0.0, 1.0, 10.0]), beta=3.0, max_weight=100.0)
    assert w.tolist() == pytest.approx([1.0, math.exp(3.0), 100.0])


def test_td3bc_lambda_normalizes_the_q_scale():
    q, pi, a = torch.tensor([2.0, -4.0]), torch.tensor([[0.5], [0.0]]), torch.tensor([[0.0], [1.0]])
    lmbda = 2.5 / 3.0  # alpha / mean |Q|
    by_hand = -lmbda * (-1.0) + (0.25 + 1.0) / 2
    assert td3bc_actor_loss(q, pi, a, 2.5).item() == pytest.approx(by_hand)
    # scaling Q by 100 leaves the loss's Q term unchanged
    assert td3bc_actor_loss(100 * q, pi, a, 2.5).item() == pytest.approx(by_hand)


# --- learning ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cls, config", [(TD3BC, TD3BCConfig(alpha=10.0)), (IQL, IQLConfig(beta=10.0))])
def test_value_based_methods_beat_bc_on_a_mixed_bandit(cls, config):
    data = bandit(n_good=600, n_bad=2400)
    bc = BC(data, BCConfig(**SMALL)).learn(1000, progress=False)
    agent = cls(data, dataclasses.replace(config, **SMALL)).learn(1000, progress=False)
    assert bandit_return(agent) > bandit_return(bc) + 0.05, (bandit_return(agent), bandit_return(bc))


@pytest.mark.slow
def test_aw_beats_uniform_for_iql_on_a_random_expert_mix():
    data = bandit(n_good=150, n_bad=2850)  # 5% good: a random-expert-0.05 in miniature
    uniform = IQL(data, IQLConfig(**SMALL)).learn(1000, progress=False)
    aw = IQL(data, IQLConfig(weighting="aw", **SMALL)).learn(1000, progress=False)
    # measured: AW -0.03, uniform -0.13 (seeds 0-2)
    assert bandit_return(aw) > bandit_return(uniform) + 0.05, (bandit_return(aw), bandit_return(uniform))


def test_bc_clones_the_data():
    data = bandit(n_good=2000, n_bad=0)
    bc = BC(data, BCConfig(**SMALL)).learn(1000, progress=False)
    assert bandit_return(bc) > -0.1


# --- the family -------------------------------------------------------------------------------------
def trajectories(seed: int = 0, obs_dim: int = 11, act_dim: int = 3) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    n = 400
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[[49, 130, 260]], timeouts[[199, 399]] = True, True
    return OfflineDataset(
        obs,
        rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        terminals,
        timeouts,
        np.roll(obs, -1, 0),
        metadata={"ref_min_score": 0.0, "ref_max_score": 100.0},
    )


def assert_exact_resume(cls, data, config, path):
    """A 40-update run stopped at update 20, saved to ``path`` and resumed equals the straight run:
    every module bit for bit and the sampler's next draws. Returns the resumed agent."""
    straight = cls(data, config).learn(40, progress=False)
    # stopped at update 20 of a 40-update run (schedules see the same progress as the straight run)
    first = cls(data, config).learn(40, progress=False, log_every=1, callback=lambda a, r: a.global_step < 20)
    assert first.global_step == 20
    first.save(path)
    resumed = cls.load(path, dataset=data).learn(40, progress=False)
    for name, module in straight.modules().items():
        for (k, p), q in zip(module.state_dict().items(), resumed.modules()[name].state_dict().values()):
            assert torch.equal(p, q), (name, k)
    assert resumed.global_step == 40
    assert torch.equal(straight.sampler.sample_indices(64), resumed.sampler.sample_indices(64))
    return resumed


@pytest.mark.parametrize("cls, config_cls", [(BC, BCConfig), (TD3BC, TD3BCConfig), (IQL, IQLConfig)])
def test_exact_resume_including_the_sampler(tmp_path, cls, config_cls):
    assert_exact_resume(cls, trajectories(), config_cls(weighting="rw", batch_size=32), tmp_path / "a.pt")


def test_load_without_the_dataset_acts_on_raw_observations(tmp_path):
    data = trajectories()
    agent = TD3BC(data, TD3BCConfig(batch_size=32)).learn(30, progress=False)
    agent.save(tmp_path / "t.pt")
    loaded = TD3BC.load(tmp_path / "t.pt")
    obs = data.observations[:5].numpy() * 3 + 1
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
    torch.testing.assert_close(loaded.obs_normalizer.mean, data.observation_stats()[0])
    assert loaded.reference_scores == (0.0, 100.0)
    with pytest.raises(RuntimeError, match="loaded without a dataset"):
        loaded.learn(40, progress=False)


def test_evaluate_reports_the_normalized_score_on_a_native_env():
    data = trajectories()
    agent = IQL(data, IQLConfig(batch_size=32))
    records = []
    agent.learn(
        20,
        eval_env=vecenvs.make("Hopper-v5", num_envs=2, seed=0),
        eval_every=10,
        progress=False,
        callback=lambda a, r: records.append(r),
    )
    evals = [r for r in records if "eval/return" in r]
    assert len(evals) == 2
    assert evals[-1]["eval/normalized_score"] == pytest.approx(evals[-1]["eval/return"])  # refs 0 / 100


def test_the_reward_convention_rewrites_a_copy():
    data = trajectories()
    before = data.rewards.clone()
    agent = IQL(data, IQLConfig())  # iql-locomotion by default
    assert torch.equal(data.rewards, before)
    spread = agent.sampler.dataset.episode_returns
    assert float(spread.max() - spread.min()) == pytest.approx(1000.0, rel=1e-4)


def test_default_temperatures_follow_hong_et_al():
    data = trajectories()
    assert IQL(data, IQLConfig(weighting="aw")).sampler.temperature == 0.1
    assert TD3BC(data, TD3BCConfig(weighting="rw")).sampler.temperature == 0.1
    assert IQL(data, IQLConfig(weighting="rw", temperature=0.5)).sampler.temperature == 0.5


# --- errors -----------------------------------------------------------------------------------------
def test_unknown_weighting_lists_the_names():
    with pytest.raises(ValueError, match="unknown weighting 'prioritized'; available: uniform, rw, aw, topk"):
        IQLConfig(weighting="prioritized")


def test_eval_env_of_another_shape_is_named():
    agent = BC(trajectories(obs_dim=11, act_dim=3))
    with pytest.raises(ValueError, match=r"observations .*shape \(11,\).*Walker2d-v5.*shape \(17,\)"):
        agent.evaluate(vecenvs.make("Walker2d-v5", num_envs=1))


def test_normalized_score_without_references_says_how_to_add_them():
    data = trajectories()
    data.metadata.clear()
    agent = BC(data)
    with pytest.raises(ValueError, match="ref_min_score.*ref_max_score.*make_dataset.py"):
        agent.normalized_score(10.0)


def test_nan_in_an_update_is_named_and_the_checkpoint_stays(tmp_path):
    data = trajectories()
    agent = TD3BC(data, TD3BCConfig(batch_size=32))
    ckpt = tmp_path / "c.pt"
    agent.learn(20, checkpoint_path=ckpt, checkpoint_every=10, progress=False)
    good = ckpt.read_bytes()
    with torch.no_grad():
        agent.critic.members[0].net[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="NaN or inf in the critic_loss"):
        agent.learn(2000, checkpoint_path=ckpt, checkpoint_every=10, log_every=5, progress=False)
    assert ckpt.read_bytes() == good


# --- the training CLI ---------------------------------------------------------------------------------
def test_train_cli_trains_evaluates_and_resumes(tmp_path):
    from policyopt.algos.run.train import main

    path = trajectories().save_d4rl(tmp_path / "toy-hopper.hdf5")
    run = tmp_path / "run"
    argv = [
        "--dataset",
        str(path),
        "--env-id",
        "Hopper-v5",
        "--total-steps",
        "30",
        "--eval-every",
        "15",
        "--eval-episodes",
        "2",
        "--checkpoint-every",
        "15",
        "--run-dir",
        str(run),
        "--no-progress",
        "--algo.batch-size",
        "32",
        "--algo.weighting",
        "aw",
    ]
    agent = main(IQL, argv)
    assert agent.global_step == 30 and (run / "checkpoint.pt").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/normalized_score" in r for r in rows)
    resumed = main(IQL, [*argv[:4], "--total-steps", "45", *argv[6:], "--resume"])
    assert resumed.global_step == 45 and resumed.config.weighting == "aw"
    with pytest.raises(ValueError, match="pass --dataset"):
        main(BC, ["--env-id", "Hopper-v5", "--total-steps", "5", "--run-dir", str(tmp_path / "nodata"), "--no-progress"])


def undocumented_fields(config_class: type) -> set[str]:
    """The config's fields without a docstring line under them (those become --help)."""
    import ast
    import inspect

    documented = set()
    for klass in config_class.__mro__:
        if dataclasses.is_dataclass(klass):
            body = ast.parse(inspect.getsource(klass)).body[0].body
            documented |= {
                s.target.id
                for s, after in zip(body, body[1:])
                if isinstance(s, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            }
    return {f.name for f in dataclasses.fields(config_class)} - documented


@pytest.mark.parametrize("name", ["bc", "td3bc", "iql", "cql", "rebrac"])
def test_every_offline_option_has_help_and_the_cli_lists_it(name, capsys):
    from policyopt.algos import ALGORITHMS
    from policyopt.algos.run.train import main

    cls = ALGORITHMS[name]
    missing = undocumented_fields(cls.config_class)
    assert not missing, f"{cls.config_class.__name__} fields without a one-line doc: {sorted(missing)}"
    with pytest.raises(SystemExit):
        main(cls, ["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--dataset" in out and "--algo.weighting" in out


def test_actions_outside_the_box_need_the_envs_bounds_not_a_silent_clip():
    data = trajectories()
    data.actions = data.actions * 2.0  # as a file of [-2, 2] actions with no stored space loads
    wide = OfflineDataset(
        data.observations.numpy(),
        data.actions.numpy(),
        data.rewards.numpy(),
        data.terminals.numpy(),
        data.timeouts.numpy(),
        data.next_observations.numpy(),
    )
    with pytest.raises(ValueError, match="needs a bounded action space.*dataset.action_space = env.single_action_space"):
        BC(wide)
    import gymnasium as gym

    wide.action_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
    batch = BC(wide).prepare(wide.batch(torch.arange(50)))
    torch.testing.assert_close(batch["actions"], wide.actions[:50] / 2.0)  # scaled, not clipped
    IQL(wide)  # its reward convention rewrites a copy: rewards and metadata of the caller's dataset stay
    assert "reward_transform" not in wide.metadata


def test_run_dirs_name_the_whole_dataset():
    from types import SimpleNamespace

    from policyopt.algos.run.train import default_run_dir

    def run_dir(spec):
        return default_run_dir(IQL, SimpleNamespace(env_id="Hopper-v5", seed=0, dataset=spec))

    assert run_dir("datasets/hopper-medium-v5.hdf5").parts[-2] == "hopper-medium-v5"
    assert run_dir("mujoco/hopper/medium-v0") != run_dir("mujoco/walker2d/medium-v0")
