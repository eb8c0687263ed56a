"""Loading a checkpoint runs no code: hostile checkpoints (a pickle payload; a policy spec naming
``os:system``, ``builtins:exec``, ``subprocess:Popen``, a module that acts on import, or a class that
is not a module) are refused and a marker file proves nothing ran. Every algorithm's honest checkpoint
holds only plain data and round-trips bit for bit, and a user's own policy is rebuilt only when allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import ALGORITHMS, PPO, PPOConfig
from policyopt.algos.core.checkpoint import atomic_save, load_checkpoint
from policyopt.buffers import OfflineDataset
from policyopt.nets import UntrustedClassError, build_module, trusted_classes

ROOT = Path(__file__).resolve().parents[1]


def pendulum(n: int = 2, seed: int = 0):
    return vecenvs.make("Pendulum-v1", num_envs=n, seed=seed)


def honest_ppo(tmp_path: Path) -> Path:
    agent = PPO(pendulum(), PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, actor_hidden=(8,), critic_hidden=(8,)))
    return agent.learn(16, progress=False).save(tmp_path / "honest.pt")


class Payload:
    """Unpickles as a call of ``func(*args)``: what a hostile checkpoint hides in an extra entry."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def tampered(src: Path, dst: Path, **changes) -> Path:
    state = torch.load(src, weights_only=True)
    state.update(changes)
    torch.save(state, dst)  # torch.save pickles anything: an attacker's file need not be plain
    return dst


# --- hostile checkpoints -------------------------------------------------------------------------------
def test_a_pickle_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tampered(honest_ppo(tmp_path), tmp_path / "evil.pt", extra_entry=Payload(os.system, f"touch {marker}"))
    with pytest.raises(ValueError, match="refused: it holds objects other than tensors and plain data"):
        PPO.load(evil)
    assert not marker.exists()
    # the evaluation script, as a user runs it, fails (non-zero) and runs nothing either
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(evil), "--env-id", "Pendulum-v1", "--episodes", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0 and "refused" in done.stderr + done.stdout
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os:system", "builtins:exec", "subprocess:Popen", "posix:system"])
def test_a_spec_naming_a_callable_outside_the_library_is_refused_before_any_call(tmp_path, name):
    marker = tmp_path / "pwned"
    args = {
        "os:system": [f"touch {marker}"],
        "posix:system": [f"touch {marker}"],
        "builtins:exec": [f"open({str(marker)!r}, 'w').close()"],
        "subprocess:Popen": [["touch", str(marker)]],
    }[name]
    state = torch.load(honest_ppo(tmp_path), weights_only=True)
    state["policy_spec"] = {"class": name, "args": args, "kwargs": {}}
    atomic_save(state, tmp_path / "evil.pt")  # plain data: only the spec is hostile
    with pytest.raises(UntrustedClassError) as err:
        PPO.load(tmp_path / "evil.pt")
    message = str(err.value)
    assert repr(name) in message and "trusted_classes=[TheClass]" in message and "policy=module" in message
    assert not marker.exists()


def test_a_module_outside_the_library_is_not_even_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_policies.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Policy(torch.nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UntrustedClassError, match="evil_policies:Policy"):
        build_module({"class": "evil_policies:Policy", "args": [], "kwargs": {}})
    assert not marker.exists() and "evil_policies" not in sys.modules


@pytest.mark.parametrize(
    "spec",
    [
        {
            "class": "policyopt.algos.core.logger:RunLogger",
            "args": ["MARKER"],
            "kwargs": {},
        },  # a library class, but no nn.Module: it makes a directory
        {
            "class": "policyopt.nets.spec:importlib.import_module",
            "args": ["antigravity"],
            "kwargs": {},
        },  # a function reached through a module
        {"class": "policyopt.nets.spec:_trusted.set", "args": [["os"]], "kwargs": {}},  # a private name
        {"class": "policyopt.nets.spec:RecordsInit", "args": [], "kwargs": {}},  # records, but is no module
    ],
)
def test_a_library_name_that_is_not_a_recording_module_class_is_refused(tmp_path, spec):
    spec = json.loads(json.dumps(spec).replace("MARKER", str(tmp_path / "made")))
    with pytest.raises(UntrustedClassError):
        build_module(spec)
    assert not (tmp_path / "made").exists() and "antigravity" not in sys.modules


def test_a_malformed_spec_is_a_named_error():
    with pytest.raises(ValueError, match="a module spec is"):
        build_module({"class": 3})


# --- a user's own policy: rebuilt only when allowed ----------------------------------------------------
def my_policy_class():
    from policyopt.nets import GaussianPolicy

    class UserGaussian(GaussianPolicy):
        """Stands for a class in the user's own package."""

    UserGaussian.__module__, UserGaussian.__qualname__ = __name__, "UserGaussian"
    return UserGaussian


UserGaussian = my_policy_class()


def test_a_users_policy_needs_their_say_so_and_then_round_trips(tmp_path):
    env = pendulum()
    policy = UserGaussian(3, 1, hidden=(8,))
    agent = PPO(env, PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, critic_hidden=(8,)), policy=policy)
    path = agent.learn(16, progress=False).save(tmp_path / "mine.pt")
    with pytest.raises(UntrustedClassError, match=f"'{__name__}:UserGaussian'"):
        PPO.load(path)
    obs = torch.randn(5, 3)
    for allowed in ([UserGaussian], [__name__]):  # the class, or a module prefix
        loaded = PPO.load(path, trusted_classes=allowed)
        assert type(loaded.policy) is UserGaussian
        torch.testing.assert_close(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    given = PPO.load(path, policy=UserGaussian(3, 1, hidden=(8,)))  # the third way
    torch.testing.assert_close(given.act(obs, deterministic=True), agent.act(obs, deterministic=True), rtol=0, atol=0)
    with trusted_classes([UserGaussian]):  # the context form, for loaders deeper down (pretrained policies)
        assert type(build_module(load_checkpoint(path)["policy_spec"])) is UserGaussian
    with pytest.raises(TypeError, match="trusted_classes takes classes or module-prefix strings"):
        PPO.load(path, trusted_classes=[3])
    # scripts/evaluate.py: refused with the flag to pass, then evaluated with it
    from test_evaluate_cli import load_evaluate_module

    evaluate = load_evaluate_module()
    with pytest.raises(SystemExit, match="--trust MODULE_PREFIX"):
        evaluate.main(evaluate.Args(path, env_id="Pendulum-v1", episodes=1))
    assert evaluate.main(evaluate.Args(path, env_id="Pendulum-v1", episodes=1, trust=(__name__,)))["episodes"] == 1


# --- every algorithm's honest checkpoint: plain data, bit for bit --------------------------------------
def pendulum_dataset() -> OfflineDataset:
    env = pendulum(1)
    rng = np.random.default_rng(0)
    n = 200
    obs = (rng.normal(size=(n, 3)) * [0.5, 0.5, 3.0]).astype(np.float32)
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
        action_space=env.single_action_space,
        metadata={"ref_min_score": -1500.0, "ref_max_score": 0.0},
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from policyopt.algos import DiffusionBC, DiffusionBCConfig

    root = tmp_path_factory.mktemp("bases")
    data = pendulum_dataset()
    return {
        family: DiffusionBC(data, DiffusionBCConfig(family=family, actor_hidden=(16, 16), batch_size=16, num_timesteps=5))
        .learn(4, progress=False)
        .save(root / f"{family}.pt")
        for family in ("diffusion", "flow")
    }


SMALL_NETS = dict(actor_hidden=(16, 16), critic_hidden=(16, 16))


def small_agent(name: str, bases: dict[str, Path]):
    cls = ALGORITHMS[name]
    fields = {f for f in cls.config_class.__dataclass_fields__}
    kw = {
        k: v
        for k, v in {
            **SMALL_NETS,
            "batch_size": 16,
            "num_steps": 8,
            "num_minibatches": 2,
            "update_epochs": 1,
            "learning_starts": 4,
            "buffer_size": 64,
            "num_timesteps": 5,
            "sample_steps": 2,
            "num_mc_samples": 2,
        }.items()
        if k in fields
    }
    if name == "dppo":
        kw.update(pretrained=str(bases["diffusion"]), ft_denoising_steps=2)
    if name == "fpo":
        kw.update(pretrained=str(bases["flow"]))
    if name == "dsrl":
        kw.update(base=str(bases["diffusion"]))
    config = cls.config_class(**kw)
    source = pendulum_dataset() if cls.trains_on_dataset else pendulum()
    return cls(source, config), source


def assert_same_state(a: dict, b: dict, where: str = "") -> None:
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), where


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithms_checkpoint_is_plain_data_and_round_trips_bit_for_bit(name, bases, tmp_path):
    agent, source = small_agent(name, bases)
    agent.learn(2 * agent.steps_per_iteration, progress=False)
    path = agent.save(tmp_path / f"{name}.pt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    cls = ALGORITHMS[name]
    loaded = cls.load(path, dataset=source) if cls.trains_on_dataset else cls.load(path, env=source)
    assert_same_state(loaded.state_dict(), agent.state_dict(), name)


def test_a_checkpoint_of_release_0_1_with_its_old_class_paths_still_loads(tmp_path):
    """0.1 recorded the library's classes by their paths before the policyopt namespace (``nets.policies:...``,
    ``algos.fql:OneStepActor``); they are renamed on load, and still checked against the allow-list."""
    path = honest_ppo(tmp_path)
    state = torch.load(path, weights_only=True)
    assert state["policy_spec"]["class"] == "policyopt.nets.policies:GaussianPolicy"
    state["policy_spec"]["class"] = state["policy_class"] = "nets.policies:GaussianPolicy"
    old = atomic_save(state, tmp_path / "v0_1.pt")
    obs = torch.randn(4, 3)
    torch.testing.assert_close(
        PPO.load(old).act(obs, deterministic=True), PPO.load(path).act(obs, deterministic=True), rtol=0, atol=0
    )
    from policyopt.nets.spec import current_class_path

    assert current_class_path("algos.fql:OneStepActor") == "policyopt.algos.offline.generative.fql:OneStepActor"
    assert current_class_path("os:system") == "os:system"  # anything else is left to the allow-list
