"""The generative offline algorithms (Diffusion-BC/QL, EDP, Consistency-BC/AC, FQL): each Q-guided method
beats Diffusion-BC on a mixed toy bandit, EDP's action approximation is predict_x0 of one corruption,
candidate resampling, exact resume, the configs' --help and the CLI, and the NaN guard."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from policyopt.algos import (
    ALGORITHMS,
    EDP,
    FQL,
    ConsistencyAC,
    ConsistencyACConfig,
    ConsistencyBC,
    ConsistencyBCConfig,
    DiffusionBC,
    DiffusionBCConfig,
    DiffusionQL,
    DiffusionQLConfig,
    EDPConfig,
    FQLConfig,
    TrainingDivergedError,
)
from policyopt.algos.offline.generative.edp import action_approximation
from policyopt.algos.offline.generative.base import normalized_q_loss, select_candidates
from policyopt.nets.generative import DiffusionPolicy
from test_offline import (
    assert_exact_resume,
    bandit,
    best_action,
    trajectories,
    undocumented_fields,
)  # the offline family's toy data and doc check

TINY = dict(actor_hidden=(64, 64), critic_hidden=(64, 64), reward_convention="none")
EMA_NOW = dict(ema_start=0, ema_every=1)  # runs of hundreds of updates: the EMA copy must move from the start


def bandit_return(agent, deterministic: bool, seed: int = 123) -> float:
    obs = np.random.default_rng(seed).normal(size=(2000, 3)).astype(np.float32)
    torch.manual_seed(seed)
    return float(-np.abs(agent.act(obs, deterministic=deterministic) - best_action(obs)).mean())


@pytest.fixture(scope="module")
def mixed():
    return bandit(n_good=600, n_bad=2400)  # 20% near-optimal actions, the rest uniform


@pytest.fixture(scope="module")
def diffusion_bc(mixed):
    torch.set_num_threads(1)
    return DiffusionBC(mixed, DiffusionBCConfig(**TINY)).learn(600, progress=False)


# Measured (600 updates, seed 0; deterministic acting unless noted): Diffusion-BC -0.43 (sampled -0.50),
# Diffusion-QL -0.09, EDP-td3 -0.09, EDP-iql -0.33, FQL -0.18, Consistency-AC sampled -0.11 (its
# zero-noise action is a 1-step map the 2-step Q term never trains, so it is compared sampled).
@pytest.mark.parametrize(
    "cls, config, deterministic",
    [
        (DiffusionQL, DiffusionQLConfig(**TINY, **EMA_NOW), True),
        (EDP, EDPConfig(num_timesteps=20, sample_steps=5, **TINY, **EMA_NOW), True),
        (EDP, EDPConfig(variant="iql", num_timesteps=20, sample_steps=5, beta=30.0, **TINY, **EMA_NOW), True),
        (ConsistencyAC, ConsistencyACConfig(**TINY, **EMA_NOW), False),
        (FQL, FQLConfig(alpha=1.0, **TINY), True),
    ],
    ids=["diffusion_ql", "edp_td3", "edp_iql", "consistency_ac", "fql"],
)
@pytest.mark.slow
def test_q_guided_methods_beat_diffusion_bc_on_a_mixed_bandit(mixed, diffusion_bc, cls, config, deterministic):
    agent = cls(mixed, config).learn(600, progress=False)
    ours, baseline = bandit_return(agent, deterministic), bandit_return(diffusion_bc, deterministic)
    assert ours > baseline + 0.05, (ours, baseline)


# --- EDP's action approximation -----------------------------------------------------------------------
def test_edp_action_approximation_is_predict_x0_and_inverts_the_corruption_at_zero_noise():
    torch.manual_seed(0)
    policy = DiffusionPolicy(3, 2, num_timesteps=1000, hidden=(32, 32))
    obs, actions = torch.randn(64, 3), torch.rand(64, 2) * 2 - 1
    k, noise = torch.randint(0, 1000, (64,)), torch.randn(64, 2)
    loss, a0_hat = action_approximation(policy, obs, actions, k, noise)
    # one denoiser call gives exactly what predict_x0 gives on the same corrupted action
    torch.testing.assert_close(a0_hat, policy.predict_x0(policy.corrupt(actions, k, noise), k, obs))
    assert loss.shape == (64,)
    with torch.no_grad():  # a network that predicts zero noise: a0_hat inverts the corruption only with the true noise
        policy.net.net[-1].weight.zero_()
        policy.net.net[-1].bias.zero_()
    loss, a0_hat = action_approximation(policy, obs, actions, torch.zeros(64, dtype=torch.long), torch.zeros(64, 2))
    torch.testing.assert_close(a0_hat, actions)
    assert loss.abs().max() == 0


def test_the_normalised_q_term_ignores_the_q_scale():
    q, other = torch.tensor([2.0, -4.0]), torch.tensor([1.0, 3.0])
    assert normalized_q_loss(q, other).item() == pytest.approx(1.0 / 2.0)  # -mean(q) / mean|q'|
    assert normalized_q_loss(100 * q, 100 * other).item() == pytest.approx(0.5)


# --- candidate resampling -----------------------------------------------------------------------------
def test_select_candidates_tends_to_the_argmax_as_the_temperature_goes_to_zero():
    q = torch.randn(500, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(select_candidates(q, 0.0), q.argmax(-1))
    assert torch.equal(select_candidates(q, 1e-4, torch.Generator().manual_seed(1)), q.argmax(-1))
    hot = select_candidates(q, 1e3, torch.Generator().manual_seed(1))
    assert (hot != q.argmax(-1)).float().mean() > 0.9  # a high temperature is close to uniform


class _PeakedQ(torch.nn.Module):
    """A stand-in critic ensemble of one: Q(s, a) = -(a_0 - 0.3)^2."""

    def forward(self, obs, actions):
        return -(actions[:, 0] - 0.3).square()[None]


def test_candidate_resampling_acts_with_the_highest_q_candidate(mixed):
    agent = DiffusionQL(mixed, DiffusionQLConfig(**TINY, act_candidates=16, act_temperature=0.0)).learn(20, progress=False)
    agent.critic_target = _PeakedQ()
    obs = torch.as_tensor(mixed.observations[:50])
    torch.manual_seed(7)
    acted = agent.act(obs, deterministic=False)
    torch.manual_seed(7)
    candidates = agent.policy.act(agent.obs_normalizer(obs).repeat_interleave(16, 0), deterministic=False).clamp(-1, 1)
    best = candidates.view(50, 16, -1)[torch.arange(50), (-(candidates[:, 0] - 0.3).square()).view(50, 16).argmax(-1)]
    torch.testing.assert_close(acted, agent._low + (best + 1) * agent._half_range)
    assert agent.config.act_candidates == 16 and "act_candidates" in dataclasses.asdict(agent.config)  # logged with the run


@pytest.mark.parametrize("cls, config_cls", [(DiffusionBC, DiffusionBCConfig), (ConsistencyBC, ConsistencyBCConfig)])
def test_candidate_resampling_without_a_critic_is_an_error(cls, config_cls):
    with pytest.raises(ValueError, match=f"act_candidates=4 scores candidate actions with a critic, and {cls.__name__} has none"):
        cls(trajectories(), config_cls(act_candidates=4))


# --- exact resume ---------------------------------------------------------------------------------------
SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32, weighting="rw")
EMA_SOON = dict(ema_start=5, ema_every=3)
RESUMABLE = [
    (DiffusionBC, DiffusionBCConfig(**SMALL)),
    (DiffusionQL, DiffusionQLConfig(max_q_backup=True, max_q_backup_samples=3, **SMALL, **EMA_SOON)),
    (EDP, EDPConfig(num_timesteps=50, sample_steps=4, **SMALL, **EMA_SOON)),
    (EDP, EDPConfig(variant="iql", num_timesteps=50, sample_steps=4, **SMALL, **EMA_SOON)),
    (ConsistencyBC, ConsistencyBCConfig(**SMALL, **EMA_SOON)),
    (ConsistencyAC, ConsistencyACConfig(**SMALL, **EMA_SOON)),
    (FQL, FQLConfig(**SMALL)),
]
RESUME_IDS = ["diffusion_bc", "diffusion_ql", "edp_td3", "edp_iql", "consistency_bc", "consistency_ac", "fql"]


@pytest.mark.parametrize("cls, config", RESUMABLE, ids=RESUME_IDS)
def test_exact_resume_including_the_sampler(tmp_path, cls, config):
    data = trajectories()
    resumed = assert_exact_resume(cls, data, config, tmp_path / "a.pt")
    loaded = cls.load(resumed.save(tmp_path / "b.pt"))  # without the dataset: acts on raw observations
    obs = data.observations[:4].numpy()
    torch.manual_seed(0)
    a = loaded.act(obs, deterministic=True)
    torch.manual_seed(0)
    np.testing.assert_array_equal(a, resumed.act(obs, deterministic=True))


@pytest.mark.parametrize("cls", [DiffusionBC, DiffusionQL, EDP, ConsistencyBC, ConsistencyAC, FQL])
def test_the_papers_defaults_train_and_act(cls):
    data = trajectories()
    agent = cls(data).learn(2, progress=False)
    action = agent.act(data.observations[:2].numpy(), deterministic=False)
    assert action.shape == (2, 3) and np.isfinite(action).all() and agent.config.act_candidates == 1


def test_nan_in_an_update_is_named_and_the_checkpoint_stays(tmp_path):
    agent = DiffusionQL(trajectories(), DiffusionQLConfig(**SMALL))
    ckpt = tmp_path / "c.pt"
    agent.learn(10, checkpoint_path=ckpt, checkpoint_every=5, progress=False)
    good = ckpt.read_bytes()
    with torch.no_grad():
        agent.critic.members[0].net[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="NaN or inf in the critic_loss"):
        agent.learn(100, checkpoint_path=ckpt, checkpoint_every=5, log_every=2, progress=False)
    assert ckpt.read_bytes() == good


# --- configs and the CLI ----------------------------------------------------------------------------
SCRIPTS = {
    "diffusion_bc": DiffusionBC,
    "diffusion_ql": DiffusionQL,
    "edp": EDP,
    "consistency_bc": ConsistencyBC,
    "consistency_ac": ConsistencyAC,
    "fql": FQL,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_option_has_help_and_each_script_lists_it(name, capsys):
    from policyopt.algos.run.train import main

    cls = SCRIPTS[name]
    assert ALGORITHMS[name] is cls
    script = Path(__file__).resolve().parent.parent / "scripts" / f"train_{name}.py"
    assert runpy.run_path(str(script))[cls.__name__] is cls  # not run as __main__: the script's imports only
    missing = undocumented_fields(cls.config_class)
    assert not missing, f"{cls.config_class.__name__} fields without a one-line doc: {sorted(missing)}"
    with pytest.raises(SystemExit):
        main(cls, ["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--dataset" in out and "--algo.weighting" in out and "--algo.act-candidates" in out


def test_train_cli_trains_and_resumes(tmp_path):
    from policyopt.algos.run.train import main

    path = trajectories().save_d4rl(tmp_path / "toy-hopper.hdf5")
    argv = [
        "--dataset",
        str(path),
        "--env-id",
        "Hopper-v5",
        "--total-steps",
        "6",
        "--eval-every",
        "0",
        "--run-dir",
        str(tmp_path / "run"),
        "--no-progress",
        "--algo.batch-size",
        "16",
        "--algo.num-timesteps",
        "10",
        "--algo.sample-steps",
        "3",
        "--algo.actor-hidden",
        "16",
        "16",
        "--algo.critic-hidden",
        "16",
        "16",
        "--algo.variant",
        "iql",
        "--algo.weighting",
        "aw",
    ]
    agent = main(EDP, argv)
    assert agent.global_step == 6 and (tmp_path / "run" / "checkpoint.pt").is_file()
    resumed = main(EDP, [*argv[:4], "--total-steps", "9", *argv[6:], "--resume"])
    assert resumed.global_step == 9 and resumed.config.variant == "iql" and resumed.config.weighting == "aw"

    # scripts/evaluate.py on the run, as recorded and with candidate resampling (the offline table's resample step)
    from test_evaluate_cli import load_evaluate_module

    cli = load_evaluate_module().cli
    plain = cli([str(tmp_path / "run"), "--episodes", "2", "--seed", "5"])
    assert plain["algo"] == "EDP" and plain["act_candidates"] == 1
    resampled = cli([str(tmp_path / "run"), "--episodes", "2", "--seed", "5", "--act-candidates", "4", "--act-temperature", "0"])
    assert (resampled["act_candidates"], resampled["act_temperature"]) == (4, 0.0)
    assert (
        cli([str(tmp_path / "run"), "--episodes", "2", "--seed", "5", "--act-candidates", "4", "--act-temperature", "0"])[
            "return_mean"
        ]
        == resampled["return_mean"]
    )
    with pytest.raises(SystemExit, match="--act-candidates must be a positive"):
        cli([str(tmp_path / "run"), "--act-candidates", "0"])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown variant 'crr'; available: td3, iql"):
        EDPConfig(variant="crr")
    with pytest.raises(ValueError, match="unknown q_aggregate"):
        FQLConfig(q_aggregate="max")
    with pytest.raises(ValueError, match="act_candidates must be >= 1"):
        DiffusionQLConfig(act_candidates=0)
    with pytest.raises(ValueError, match="initial_scales <= num_scales"):
        ConsistencyACConfig(initial_scales=10, num_scales=5)


def test_the_online_consistency_target_is_the_policy_itself(mixed):
    # "online" (improved CT) matches the policy without gradient; "ema" the EMA copy, so only it sees the copy's weights
    losses = {}
    for target in ("ema", "online"):
        agent = ConsistencyBC(mixed, ConsistencyBCConfig(**SMALL, consistency_target=target))
        batch = agent.prepare(agent.sampler.sample(32))
        with torch.no_grad():
            for p in agent.policy_ema.parameters():
                p.add_(1.0)  # a copy unlike the policy
        torch.manual_seed(0)
        with_copy = agent.consistency_loss(batch, 0.5).item()
        agent.policy_ema.load_state_dict(agent.policy.state_dict())
        torch.manual_seed(0)
        losses[target] = (with_copy, agent.consistency_loss(batch, 0.5).item())
    assert losses["online"][0] == losses["online"][1] and losses["ema"][0] != losses["ema"][1]
    assert losses["ema"][1] == losses["online"][1]  # the copy equal to the policy: the same loss either way
    with pytest.raises(ValueError, match="unknown consistency_target 'teacher'; available: ema, online"):
        ConsistencyBCConfig(consistency_target="teacher")
