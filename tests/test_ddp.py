"""Data-parallel PPO/SPO (algos/core/distributed.py): two gloo processes on the CPU train as one process on
the global batch would and hold the same normaliser statistics; a run writes its files from rank 0
only, and resumed under torchrun it matches an uninterrupted one bit for bit.

How the single-process reference lines up with DDP minibatches: each rank permutes its own samples
(here with the torch seed 1234 + rank, set just before the update) and splits them into
``num_minibatches`` equal chunks; global minibatch ``j`` is the concatenation of the ranks' chunk ``j``.
The reference is one PPO on all envs whose ``buffer.minibatches`` yields exactly those global
minibatches, rebuilt from the same seeds (rank r's env e is the reference's env ``r * L + e``).
Negative controls (gradients not averaged; advantages normalised per rank) must miss the reference.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from policyopt import vecenvs
from policyopt.algos import PPO, SPO, TRPO
from policyopt.algos.core import distributed
from policyopt.algos.onpolicy.ppo import PPOConfig
from policyopt.algos.onpolicy.spo import SPOConfig
from policyopt.algos.run.train import main, parse, train
from policyopt.vecenvs.wrappers import NormalizeReward, RunningMeanStd

ROOT = Path(__file__).resolve().parents[1]
WORLD, T, N = 2, 8, 4  # 2 ranks of L = 2 envs: rollouts of T * N = 32, minibatches of 16 = 2 x 8
L = N // WORLD
PERM_SEED = 1234
CONFIGS = {"PPO": (PPO, PPOConfig), "SPO": (SPO, SPOConfig)}
# the training runs' flags: 4 global envs (2 per rank), rollouts of 64 env steps
COMMON = [
    "--env-id",
    "CartPole-v1",
    "--num-envs",
    "4",
    "--no-progress",
    "--eval-every",
    "64",
    "--eval-episodes",
    "2",
    "--checkpoint-every",
    "64",
    "--algo.num-steps",
    "16",
    "--algo.num-minibatches",
    "2",
    "--algo.update-epochs",
    "2",
    "--algo.no-compile",
    "--algo.no-anneal-lr",
]


def _config(name: str) -> PPOConfig:
    return CONFIGS[name][1](num_steps=T, num_minibatches=2, update_epochs=2, compile=False, anneal_lr=False, seed=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a fixed rollout, written into a buffer column by column -------------------------------------
def _rollout(agent: PPO) -> dict[str, torch.Tensor]:
    """A global rollout of N envs: random observations and outcomes, the agent's own actions and values."""
    g = torch.Generator().manual_seed(7)
    obs, final_obs = torch.randn(T, N, 3, generator=g), torch.randn(T, N, 3, generator=g)
    with torch.no_grad():
        torch.manual_seed(7)
        actions, stored = agent.policy.explore(obs.flatten(0, 1))
        return {
            "obs": obs,
            "actions": actions.view(T, N, -1),
            "log_prob": stored["log_prob"].view(T, N),
            "rewards": torch.randn(T, N, generator=g),
            "terminated": torch.rand(T, N, generator=g) < 0.1,
            "truncated": torch.rand(T, N, generator=g) < 0.1,
            "values": agent.critic(obs),
            "final_obs": final_obs,
            "final_values": agent.critic(final_obs),
            "last_values": torch.randn(N, generator=g),
        }


def _fill(agent: PPO, r: dict[str, torch.Tensor], cols: slice) -> None:
    buf, cfg = agent.buffer, agent.config
    buf.reset()
    for t in range(T):
        buf.add(
            r["obs"][t, cols],
            r["actions"][t, cols],
            r["rewards"][t, cols],
            r["terminated"][t, cols],
            r["truncated"][t, cols],
            r["values"][t, cols],
            r["final_obs"][t, cols],
            {"log_prob": r["log_prob"][t, cols]},
        )
    buf.compute_advantages(r["last_values"][cols], r["final_values"][:, cols], cfg.gamma, cfg.gae_lambda)


def _params(agent: PPO) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in agent.modules().values() for p in m.parameters()])


# --- what each rank runs (spawned) --------------------------------------------------------------
class _NoGradientAveraging(distributed.World):
    def average_gradients(self, params):  # the bug the equivalence test must catch
        pass


class _LocalAdvantageMoments(distributed.World):
    def minibatch_moments(self, advantages):  # the bug the equivalence test must catch
        return torch.stack([a.mean() for a in advantages]), torch.stack([a.std() for a in advantages])


def _update_on_rank(name: str, world: distributed.World, variant: type[distributed.World] | None) -> dict:
    algo_cls = CONFIGS[name][0]
    agent = algo_cls(vecenvs.make("Pendulum-v1", num_envs=L, seed=world.rank_seed(0)), _config(name))
    initial = _params(agent)
    _fill(agent, _rollout(agent), slice(world.rank * L, (world.rank + 1) * L))
    if variant is not None:
        agent.world = variant(**dataclasses.asdict(world))
    torch.manual_seed(PERM_SEED + world.rank)
    metrics = agent.update(agent.buffer, 0.0)
    return {"initial": initial, "final": _params(agent), "metrics": {k: float(v) for k, v in metrics.items()}}


def _rank_checks(rank: int, port: int, out: str) -> None:
    """Everything two ranks check, in one process group; results to ``out/rank<r>.pt``, run dirs under ``out``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    world = distributed.init("cpu")
    res: dict = {}
    try:
        for name in CONFIGS:
            for variant in (None, _NoGradientAveraging, _LocalAdvantageMoments):
                res[name, getattr(variant, "__name__", "ddp")] = _update_on_rank(name, world, variant)
        # normalisers: batches of this rank's own data (same shapes on both ranks), a masked one, a scalar one
        g = torch.Generator().manual_seed(100 + rank)
        rms, scalar = distributed.SyncedRunningMeanStd(world, (4,)), distributed.SyncedRunningMeanStd(world, ())
        for n in (3, 1, 5):
            rms.update(torch.randn(n, 4, generator=g))
        rms.update(torch.randn(4, 4, generator=g), torch.tensor([True, False, rank == 0, True]))
        scalar.update(torch.randn(6, generator=g))
        res["rms"], res["scalar"] = rms.state_dict(), scalar.state_dict()
        # an agent's rollout: observation and reward normalisers see every rank's envs
        agent = PPO(vecenvs.make("CartPole-v1", num_envs=L, seed=world.rank_seed(0)), _config("PPO"))
        agent.collect()
        env = agent.env
        while not isinstance(env, NormalizeReward):
            env = env.env
        res["agent"] = {
            "obs_rms": agent.obs_rms.state_dict(),
            "reward_rms": env.rms.state_dict(),
            "steps": agent.steps_per_iteration,
            "synced": isinstance(agent.obs_rms, distributed.SyncedRunningMeanStd),
        }
        try:
            TRPO(vecenvs.make("CartPole-v1", num_envs=L), TRPO.config_class(compile=False))
        except ValueError as e:
            res["trpo_error"] = str(e)
        # training runs as torchrun's processes run them (train(), in the group joined above): an
        # uninterrupted one, and the first half of one that the torchrun test resumes
        for run, steps in (("whole", "128"), ("cut", "64")):
            argv = COMMON + ["--run-dir", str(Path(out) / run), "--total-steps", steps]
            train(PPO, parse(PPO, argv), argv)
    finally:
        distributed.shutdown()
    torch.save(res, Path(out) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> Path:
    """Every per-rank check, in one spawn of two gloo processes (process start-up dominates the time)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_checks, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return out


@pytest.fixture(scope="module")
def ranks(spawned) -> list[dict]:
    return [torch.load(spawned / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


# --- 1. the update equals one process on the concatenated minibatches -----------------------------
def _reference(name: str) -> dict:
    """One process on all N envs, its minibatch j the concatenation of the ranks' minibatch j."""
    algo_cls = CONFIGS[name][0]
    agent = algo_cls(vecenvs.make("Pendulum-v1", num_envs=N, seed=0), _config(name))
    initial = _params(agent)
    _fill(agent, _rollout(agent), slice(None))
    buf, flat_all = agent.buffer, agent.buffer.flat
    gens = [torch.Generator().manual_seed(PERM_SEED + r) for r in range(WORLD)]

    def global_minibatches(num_minibatches, generator=None):
        flat = flat_all()
        chunks = []
        for r, g in enumerate(gens):  # rank r's sample t * L + e is the reference's t * N + r * L + e
            local = torch.randperm(T * L, generator=g)
            chunks.append(torch.tensor_split((local // L) * N + r * L + local % L, num_minibatches))
        for j in range(num_minibatches):
            idx = torch.cat([c[j] for c in chunks])
            yield {k: v[idx] for k, v in flat.items()}

    buf.minibatches = global_minibatches
    metrics = agent.update(buf, 0.0)
    return {"initial": initial, "final": _params(agent), "metrics": {k: float(v) for k, v in metrics.items()}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_update_equals_one_process_on_the_global_minibatches(ranks, name):
    ref = _reference(name)
    ddp = [r[name, "ddp"] for r in ranks]
    assert torch.equal(ddp[0]["initial"], ref["initial"]) and torch.equal(ddp[1]["initial"], ref["initial"])
    assert torch.equal(ddp[0]["final"], ddp[1]["final"])  # the ranks hold one agent
    moved = (ref["final"] - ref["initial"]).abs().max()
    assert moved > 1e-3  # the update did something to compare
    torch.testing.assert_close(ddp[0]["final"], ref["final"], rtol=1e-4, atol=1e-6)
    for k, v in ref["metrics"].items():
        assert ddp[0]["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    # the test can fail: without gradient averaging, or with per-rank advantage moments, it does
    for bug in ("_NoGradientAveraging", "_LocalAdvantageMoments"):
        assert (ranks[0][name, bug]["final"] - ref["final"]).abs().max() > 1e-4, bug


# --- 2. normalisers --------------------------------------------------------------------------------
def test_normalizer_statistics_are_the_global_batch_on_every_rank(ranks):
    gens = [torch.Generator().manual_seed(100 + r) for r in range(WORLD)]
    rms, scalar = RunningMeanStd((4,)), RunningMeanStd(())
    for n in (3, 1, 5):
        rms.update(torch.cat([torch.randn(n, 4, generator=g) for g in gens]))
    x = torch.cat([torch.randn(4, 4, generator=g) for g in gens])
    rms.update(x, torch.tensor([[True, False, r == 0, True] for r in range(WORLD)]).flatten())
    scalar.update(torch.cat([torch.randn(6, generator=g) for g in gens]))
    for r in ranks:  # bitwise: the same merge of the same concatenated batch
        for k, v in rms.state_dict().items():
            assert torch.equal(r["rms"][k], v), k
        for k, v in scalar.state_dict().items():
            assert torch.equal(r["scalar"][k], v), k
    a, b = ranks[0]["agent"], ranks[1]["agent"]
    assert a["synced"] and a["steps"] == T * N
    for which in ("obs_rms", "reward_rms"):
        for k in a[which]:
            assert torch.equal(a[which][k], b[which][k]), (which, k)
    assert float(a["obs_rms"]["count"]) == pytest.approx(1e-4 + (T + 1) * N)  # the reset and T steps of all N envs
    assert float(a["reward_rms"]["count"]) == pytest.approx(1e-4 + T * N)
    assert "TRPO does not support data-parallel training" in ranks[0]["trpo_error"]


# --- 3. end to end under torchrun -------------------------------------------------------------------
def _torchrun(*args: str) -> str:
    """``torchrun --standalone --nproc-per-node 2 scripts/train_ppo.py COMMON args``; its output."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(WORLD),
        "scripts/train_ppo.py",
        *COMMON,
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_torchrun_resumes_exactly_and_only_rank0_writes(spawned):
    cut, whole = spawned / "cut", spawned / "whole"  # written by the spawned ranks (train(), as under torchrun)
    config = json.loads((whole / "config.json").read_text())
    assert config["world_size"] == WORLD and config["num_envs"] == 4
    assert sorted(p.name for p in whole.iterdir() if not p.name.startswith("events.")) == [
        ".lock",
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]
    assert len(list(whole.glob("events.out.tfevents.*"))) == 1  # one writer: rank 0
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 64, 128]

    out = _torchrun("--run-dir", str(cut), "--total-steps", "128", "--resume")
    assert out.count("resumed PPO") == 1 and out.count('"env_steps": 128') == 1  # rank 0 reports, once
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (cut, whole))
    assert a["global_step"] == b["global_step"] == 128 and a["data_parallel"]["world_size"] == WORLD
    for name in b["modules"]:
        for k, v in b["modules"][name].items():
            assert torch.equal(a["modules"][name][k], v), (name, k)
    for k, v in b["extra"]["obs_rms"].items():
        assert torch.equal(a["extra"]["obs_rms"][k], v), k
    for ra, rb in zip(a["data_parallel"]["ranks"], b["data_parallel"]["ranks"]):
        assert torch.equal(ra["rng"], rb["rng"]) and torch.equal(ra["extra"]["obs"], rb["extra"]["obs"])
    per_rank = b["data_parallel"]["ranks"]
    assert not torch.equal(per_rank[0]["extra"]["obs"], per_rank[1]["extra"]["obs"])  # the ranks' envs differ
    resumed = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [0, 64, 128]
    drop = ("time", "train/sps")
    assert {k: v for k, v in resumed[-1].items() if k not in drop} == {k: v for k, v in rows[-1].items() if k not in drop}


# --- 4. launches that cannot run data-parallel -------------------------------------------------------
def test_launch_errors_name_the_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc-per-node 2 sets it; the check runs before joining
    run = ["--run-dir", str(tmp_path / "r"), "--no-progress", "--total-steps", "64"]
    with pytest.raises(ValueError, match=r"--num-envs divisible by 2, got 3.*e.g. --num-envs 2 or 4"):
        main(PPO, run + ["--num-envs", "3"])
    with pytest.raises(ValueError, match=r"5 \* 2 = 10, divisible by algo.num_minibatches=4.*--algo.num-minibatches 2 or 5"):
        main(SPO, run + ["--num-envs", "4", "--algo.num-steps", "5", "--algo.num-minibatches", "4"])
    with pytest.raises(ValueError, match="TRPO does not support data-parallel training.*WORLD_SIZE=2"):
        main(TRPO, run)
    assert distributed.current() is None and not (tmp_path / "r").exists()
