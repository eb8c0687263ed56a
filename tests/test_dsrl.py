"""DSRL (algos/offpolicy/dsrl.py): SAC in the noise space of a frozen diffusion or flow base beats the base on
Pendulum, every env action is the base's map of the stored noise, checkpoints carry the base (reload
without its file, exact resume), the errors for a wrong base, and Diffusion-BC's flow family, CLIs
included (pretrain a flow base, train DSRL on it, resume, scripts/evaluate.py on the run)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from policyopt import algos
from policyopt import vecenvs
from policyopt.algos import BC, SAC, BCConfig, DiffusionBC, DiffusionBCConfig, DiffusionQLConfig, SACConfig
from policyopt.algos.offpolicy.dsrl import DSRL, DSRLConfig
from policyopt.algos.run.train import main
from policyopt.buffers import OfflineDataset
from policyopt.nets.generative import DiffusionPolicy, FlowPolicy
from test_evaluate_cli import load_evaluate_module
from test_offline import undocumented_fields
from policyopt.vecenvs.core import TorchVecEnvWrapper

TINY_BC = dict(actor_hidden=(64, 64))
# SAC at the pendulum preset's learning rates, small networks and an early start
SMALL = dict(
    actor_hidden=(64, 64),
    critic_hidden=(64, 64),
    batch_size=128,
    buffer_size=20_000,
    learning_starts=500,
    actor_learning_rate=1e-3,
    critic_learning_rate=1e-3,
    alpha_learning_rate=1e-3,
)
QUICK = {**SMALL, "actor_hidden": (32, 32), "critic_hidden": (32, 32), "batch_size": 32, "learning_starts": 100}


def pendulum(n: int = 1, seed: int = 0):
    return vecenvs.make("Pendulum-v1", num_envs=n, seed=seed)


def random_pendulum_dataset(n_envs: int = 10, seed: int = 0) -> OfflineDataset:
    """One 200-step episode per copy of Pendulum-v1 under uniformly random torques: a poor behaviour policy."""
    env = pendulum(n_envs, seed)
    obs, _ = env.reset()
    gen = torch.Generator().manual_seed(seed)
    columns: dict[str, list[torch.Tensor]] = {"obs": [], "actions": [], "rewards": [], "next_obs": []}
    for _ in range(200):
        action = torch.rand(n_envs, 1, generator=gen) * 4 - 2
        next_obs, reward, _, _, info = env.step(action)
        for key, value in zip(columns, (obs, action, reward, info["final_obs"])):
            columns[key].append(value)
        obs = next_obs
    flat = {k: torch.stack(v, 1).flatten(0, 1).numpy() for k, v in columns.items()}  # copy-major: episode order
    timeouts = np.zeros(n_envs * 200, bool)
    timeouts[199::200] = True
    return OfflineDataset(
        flat["obs"],
        flat["actions"],
        flat["rewards"],
        np.zeros(n_envs * 200, bool),
        timeouts,
        flat["next_obs"],
        action_space=env.single_action_space,
    )


@pytest.fixture(scope="module")
def data():
    return random_pendulum_dataset()


@pytest.fixture(scope="module")
def bases(data, tmp_path_factory):
    """Checkpoints of a diffusion and a flow policy cloned from the random data (400 updates each)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bases")
    paths = {}
    for family in ("diffusion", "flow"):
        agent = DiffusionBC(data, DiffusionBCConfig(**TINY_BC, family=family)).learn(400, progress=False)
        paths[family] = agent.save(root / f"{family}.pt")
    return paths


# Measured (one core): the diffusion base returns -1499 (zero noise) and -1443 (sampled) on these 10
# episodes; DSRL after 3,000 env steps -844 in about 17 s (with seeds 1-3 for torch and the env: -937, -919, -912).
@pytest.mark.slow
def test_dsrl_improves_on_its_frozen_base(bases):
    base = DiffusionBC.load(bases["diffusion"])
    eval_env = pendulum(10, seed=99)
    sampled = base.evaluate(eval_env, seed=99)["return_mean"]
    base.config.eval_stochastic = False
    zero_noise = base.evaluate(eval_env, seed=99)["return_mean"]
    agent = DSRL(pendulum(seed=1), DSRLConfig(base=str(bases["diffusion"]), **SMALL)).learn(3_000, progress=False)
    ours = agent.evaluate(eval_env, seed=99)["return_mean"]
    assert ours > max(sampled, zero_noise) + 300, (ours, sampled, zero_noise)
    # the base stayed frozen: the same weights as its checkpoint, no gradient, eval mode
    for k, v in base.policy.state_dict().items():
        assert torch.equal(v, agent.base_policy.state_dict()[k]), k
    assert not any(p.requires_grad for p in agent.base_policy.parameters()) and not agent.base_policy.training
    assert isinstance(agent.base_policy, DiffusionPolicy)


class RecordActions(TorchVecEnvWrapper):
    """Keeps every (observation, action) pair the env is stepped with."""

    def __init__(self, env):
        super().__init__(env)
        self.obs, self.actions = [], []

    def reset(self, *, seed=None, options=None):
        self._last, info = self.env.reset(seed=seed, options=options)
        return self._last, info

    def step(self, actions):
        self.obs.append(self._last.clone())
        self.actions.append(actions.clone())
        out = self.env.step(actions)
        self._last = out[0]
        return out


@pytest.mark.parametrize("family", ["diffusion", "flow"])
def test_each_env_action_is_the_bases_map_of_the_stored_noise(bases, family):
    recorder = RecordActions(pendulum(2, seed=3))
    agent = DSRL(recorder, DSRLConfig(base=str(bases[family]), **{**QUICK, "learning_starts": 40}))
    agent.learn(120, progress=False)  # 20 random iterations, then 40 of SAC's own
    stored = agent.buffer.actions[:60]  # [iterations, copies, act_dim]: SAC's actions, noise / noise_bound
    assert stored.abs().max() <= 1.0 and stored.abs().max() > 0.9
    # the base as its own offline agent maps it: normalised obs, sample_from_noise, [-1, 1] -> env bounds
    base = DiffusionBC.load(bases[family])
    obs = torch.cat(recorder.obs).reshape(60 * 2, -1)
    noise = agent.config.noise_bound * stored.reshape(60 * 2, -1)
    expected = base.to_env_bounds(base.policy.sample_from_noise(base.obs_normalizer(obs), noise))
    torch.testing.assert_close(torch.cat(recorder.actions), expected, rtol=0, atol=1e-6)
    assert isinstance(agent.base_policy, FlowPolicy if family == "flow" else DiffusionPolicy)
    # act() takes the same road: SAC's mean noise through the base, in the env's bounds
    acted = agent.act(obs[:8], deterministic=True)
    mean = agent.policy.act(obs[:8], deterministic=True).clamp(-1, 1)
    torch.testing.assert_close(acted, base.to_env_bounds(base.policy.sample_from_noise(base.obs_normalizer(obs[:8]), 1.5 * mean)))


def test_the_checkpoint_reloads_without_the_base_file_and_acts_identically(bases, tmp_path):
    base_file = shutil.copy(bases["diffusion"], tmp_path / "base.pt")
    agent = DSRL(pendulum(seed=0), DSRLConfig(base=str(base_file), **QUICK)).learn(300, progress=False)
    agent.save(tmp_path / "dsrl.pt")
    (tmp_path / "base.pt").unlink()
    loaded = DSRL.load(tmp_path / "dsrl.pt")
    obs = torch.randn(64, 3)
    torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    torch.manual_seed(1)
    sampled = agent.act(obs)
    torch.manual_seed(1)
    torch.testing.assert_close(loaded.act(obs), sampled, rtol=0, atol=0)
    assert isinstance(loaded.base_policy, DiffusionPolicy) and not loaded.base_policy.training
    assert not any(p.requires_grad for p in loaded.base_policy.parameters())
    # a partial load takes SAC's actor and still has the whole base, from the DSRL checkpoint
    partial = DSRL.load(tmp_path / "dsrl.pt", modules=["policy"])
    torch.testing.assert_close(partial.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    assert loaded.evaluate(pendulum(2, seed=5))["return_mean"] == agent.evaluate(pendulum(2, seed=5))["return_mean"]


def test_exact_resume_with_the_buffer_and_the_base(bases, tmp_path):
    cfg = DSRLConfig(base=str(bases["flow"]), **QUICK)
    straight = DSRL(pendulum(2), cfg).learn(500, progress=False)
    first = DSRL(pendulum(2), cfg).learn(250, progress=False)
    first.save(tmp_path / "ckpt.pt")
    resumed = DSRL.load(tmp_path / "ckpt.pt", env=pendulum(2, seed=123))  # the env's state comes from the checkpoint
    assert len(resumed.buffer) == 250
    resumed.learn(500, progress=False)
    assert resumed.global_step == straight.global_step == 500
    for name, module in straight.modules().items():
        for (k, p), q in zip(module.state_dict().items(), resumed.modules()[name].state_dict().values()):
            assert torch.equal(p, q), (name, k)
    assert torch.equal(straight.log_alpha, resumed.log_alpha)
    assert torch.equal(straight.buffer.actions, resumed.buffer.actions)


def test_a_base_that_is_not_a_generative_policy_is_named(data, bases, tmp_path):
    SAC(pendulum(), SACConfig(actor_hidden=(8,), critic_hidden=(8,))).save(tmp_path / "sac.pt")
    BC(data, BCConfig(actor_hidden=(8,))).save(tmp_path / "bc.pt")
    with pytest.raises(ValueError, match=r"SAC checkpoint.*SquashedGaussianActor.*no sample_from_noise.*diffusion or flow"):
        DSRL(pendulum(), DSRLConfig(base=str(tmp_path / "sac.pt")))
    with pytest.raises(ValueError, match=r"BC checkpoint.*DeterministicActor.*no sample_from_noise"):
        DSRL(pendulum(), DSRLConfig(base=str(tmp_path / "bc.pt")))
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        DSRL(pendulum(), DSRLConfig(base=str(tmp_path / "missing.pt")))
    with pytest.raises(ValueError, match="needs a base policy.*--base CHECKPOINT"):
        DSRL(pendulum(), DSRLConfig())
    with pytest.raises(ValueError, match="trained on observations.*the env has"):  # a Pendulum base on MountainCar
        DSRL(vecenvs.make("MountainCarContinuous-v0", num_envs=1), DSRLConfig(base=str(bases["diffusion"])))
    with pytest.raises(ValueError, match="exceeds the 5 steps"):  # base_steps beyond the diffusion's K
        DSRL(pendulum(), DSRLConfig(base=str(bases["diffusion"]), base_steps=6))
    with pytest.raises(ValueError, match="noise_bound must be > 0"):
        DSRLConfig(noise_bound=0.0)


def test_the_flow_family_trains_and_saves_a_flow_policy(data, tmp_path):
    records = []
    agent = DiffusionBC(data, DiffusionBCConfig(**TINY_BC, family="flow"))
    agent.learn(300, progress=False, log_every=50, callback=lambda a, r: records.append(r["train/bc_loss"]))
    assert isinstance(agent.policy, FlowPolicy) and agent.policy.default_steps == 10
    assert records[-1] < 0.8 * records[0], records  # the flow-matching loss falls
    loaded = DiffusionBC.load(agent.save(tmp_path / "flow.pt"))
    assert isinstance(loaded.policy, FlowPolicy) and loaded.config.family == "flow"
    obs = torch.randn(16, 3)
    torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    assert DiffusionBC(data, DiffusionBCConfig(**TINY_BC, family="flow", sample_steps=4)).policy.default_steps == 4
    with pytest.raises(ValueError, match="unknown family 'gan'; available: diffusion, flow"):
        DiffusionBCConfig(family="gan")
    with pytest.raises(ValueError, match="Diffusion-BC's option; DiffusionQLConfig trains a diffusion policy"):
        DiffusionQLConfig(family="flow")


def test_cli_pretrains_a_flow_base_trains_dsrl_resumes_and_evaluates(data, tmp_path, capsys):
    dataset = data.save_npz(tmp_path / "pendulum-random.npz")
    base_run = tmp_path / "base"
    main(
        DiffusionBC,
        [
            "--dataset",
            str(dataset),
            "--env-id",
            "Pendulum-v1",
            "--total-steps",
            "50",
            "--eval-every",
            "0",
            "--run-dir",
            str(base_run),
            "--no-progress",
            "--algo.family",
            "flow",
            "--algo.actor-hidden",
            "16",
            "16",
        ],
    )
    assert isinstance(DiffusionBC.load(base_run / "checkpoint.pt").policy, FlowPolicy)
    run = tmp_path / "dsrl"
    common = [
        "--env-id",
        "Pendulum-v1",
        "--run-dir",
        str(run),
        "--eval-every",
        "150",
        "--eval-episodes",
        "2",
        "--no-progress",
        "--num-envs",
        "1",
        "--algo.learning-starts",
        "50",
        "--algo.batch-size",
        "16",
        "--algo.actor-hidden",
        "16",
        "16",
        "--algo.critic-hidden",
        "16",
        "16",
    ]
    agent = main(DSRL, [*common, "--base", str(base_run / "checkpoint.pt"), "--total-steps", "150"])
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "DSRL" and config["algo_config"]["base"] == str(base_run / "checkpoint.pt")
    shutil.rmtree(base_run)  # the DSRL run needs its own checkpoint only
    resumed = main(DSRL, ["--run-dir", str(run), "--total-steps", "300", "--resume", "--no-progress"])
    assert resumed.global_step == 300 and agent.global_step == 150 and isinstance(resumed.base_policy, FlowPolicy)
    evaluate = load_evaluate_module()
    assert algos.ALGORITHMS["dsrl"] is DSRL  # what scripts/evaluate.py finds the checkpoint's class in
    capsys.readouterr()
    result = evaluate.cli([str(run), "--episodes", "2"])
    assert result["algo"] == "DSRL" and result["env_id"] == "Pendulum-v1" and np.isfinite(result["return_mean"])


def test_every_option_has_help_and_the_cli_lists_base(capsys):
    missing = undocumented_fields(DSRLConfig)
    assert not missing, f"DSRLConfig fields without a one-line doc: {sorted(missing)}"
    assert not undocumented_fields(DiffusionBCConfig)
    with pytest.raises(SystemExit):
        main(DSRL, ["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--base" in out and "--algo.base" in out and "--algo.noise-bound" in out and "--algo.base-steps" in out
