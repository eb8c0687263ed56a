"""scripts/bench_generative_online.py: --quick prints every table with every row (all sections, on a tiny Hopper
dataset), pretrained checkpoints can be given instead of a dataset, a missing dataset says what to run, the
Gaussian-BC adapter makes PPO act as its BC checkpoint, and every method of a table is evaluated at the same steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policyopt import vecenvs
from policyopt.algos import BC, PPO, BCConfig, PPOConfig
from policyopt.buffers import OfflineDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import bench_generative_online as bench
finally:
    sys.path.remove(str(ROOT / "scripts"))

SCRATCH_ROWS = ("Gaussian PPO", "FPO", "DPPO (K'=10)")
ROWS = ("Gaussian PPO", "FPO", "DPPO (K'=10)", "DSRL (SAC)")  # fine-tuning and throughput


def hopper_dataset(path: Path, copies: int = 4, steps: int = 100, seed: int = 0) -> Path:
    """Random-action Hopper-v5 transitions (episodes end where the env terminates them), written as an .npz."""
    env = vecenvs.make("Hopper-v5", num_envs=copies, seed=seed)
    obs, _ = env.reset()
    gen = torch.Generator().manual_seed(seed)
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts")}
    for t in range(steps):
        action = torch.rand(copies, 3, generator=gen) * 2 - 1
        next_obs, reward, terminated, truncated, info = env.step(action)
        timeout = truncated | torch.full_like(truncated, t == steps - 1)  # each copy's last step ends its episode
        for k, v in zip(cols, (obs, action, reward, info["final_obs"], terminated, timeout & ~terminated)):
            cols[k].append(v)
        obs = next_obs
    flat = {k: torch.stack(v, 1).flatten(0, 1).numpy() for k, v in cols.items()}  # copy-major: episode order
    data = OfflineDataset(
        flat["obs"],
        flat["actions"],
        flat["rewards"],
        flat["terminals"],
        flat["timeouts"],
        flat["next_obs"],
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
    )
    return data.save_npz(path)


def table(out: str, title: str) -> tuple[str, list[list[str]]]:
    """The header and the rows (as cells) of the one table whose title starts with ``title``."""
    lines = out.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(title)]
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append(line)
    assert body[1].startswith("|---"), body
    return body[0], [[c.strip() for c in row.strip("|").split("|")] for row in body[2:]]


def check_curve_table(out: str, title: str, methods: tuple[str, ...], extra: int = 0) -> None:
    header, rows = table(out, title)
    assert "| return @ 0 | return @ 32 | return @ 64 | final, each seed | train s | env steps/s |" in header, header
    assert [r[0] for r in rows] == list(methods)
    for r in rows:
        assert len(r) == 7 + extra and not any("failed" in c for c in r), r
        assert all(c != "-" for c in r), r  # every cell measured, even at tiny sizes


@pytest.mark.slow
def test_quick_prints_every_table(tmp_path, capsys):
    data = hopper_dataset(tmp_path / "hopper-tiny.npz")
    results = bench.main(
        ["--quick", "--dataset", str(data), "--checkpoint-dir", str(tmp_path / "bases"), "--json", str(tmp_path / "out.json")]
    )
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("# bench_generative_online: ") and f"torch {torch.__version__}" in first and "thread" in first
    assert "command: `python " in out and "(quick: tiny sizes, not a measurement)" in out
    for env_id in bench.SCRATCH_ENVS:
        check_curve_table(out, f"**From scratch on {env_id}**", SCRATCH_ROWS)
    check_curve_table(out, "**Fine-tuning on Hopper-v5 from BC-pretrained policies**", ROWS, extra=2)
    _, rows = table(out, "**Fine-tuning on Hopper-v5")
    assert [r[1] for r in rows] == [
        "Gaussian BC (adapter)",
        "flow Diffusion-BC",
        "Diffusion-BC (K = 10)",
        "Diffusion-BC (K = 10), frozen",
    ]
    header, rows = table(out, "**Throughput on Hopper-v5**")
    assert header.startswith("| method | compile | env steps/s | updates/s | rollout share |"), header
    assert [(r[0], r[1]) for r in rows] == [(m, c) for c in ("off", "on") for m in ROWS]
    for r in rows:
        assert len(r) == 7 and "failed" not in " ".join(r) and float(r[2].replace(",", "")) > 0, r
        assert r[5].endswith("x") and (r[4] == "-") == (r[0] == "DSRL (SAC)"), r
    targets = out[out.index("Targets (the issue's)") :].splitlines()[1:]
    targets = [t for t in targets if t.startswith("- ")]
    assert len(targets) == 10, targets  # 2 FPO-vs-PPO, Pendulum, DPPO fine-tuning, 4 throughput, 2 training-run ratios
    assert all("**met**" in t or "**not met**" in t for t in targets), targets
    # the bases were kept, and the JSON holds every run
    assert sorted(p.name for p in (tmp_path / "bases").iterdir()) == ["diffusion-seed0.pt", "flow-seed0.pt", "gaussian-seed0.pt"]
    saved = json.loads((tmp_path / "out.json").read_text())
    assert len(saved["runs"]) == len(results["runs"]) == 3 * 3 + 4 and len(saved["throughput"]) == 8
    assert all(len(r["curve"]) == 3 and not r["error"] for r in saved["runs"])

    # the same bases given as checkpoints ({seed} -> 0): no dataset needed, no pretraining
    bases = tmp_path / "bases"
    bench.main(
        [
            "--quick",
            "--only",
            "finetune",
            "--dataset",
            str(tmp_path / "missing.hdf5"),
            "--diffusion-bc",
            str(bases / "diffusion-seed{seed}.pt"),
            "--flow-bc",
            str(bases / "flow-seed{seed}.pt"),
            "--gaussian-bc",
            str(bases / "gaussian-seed{seed}.pt"),
        ]
    )
    out = capsys.readouterr().out
    check_curve_table(out, "**Fine-tuning on Hopper-v5 from BC-pretrained policies** (given checkpoints", ROWS, extra=2)
    assert "pretrained Diffusion-BC" not in out and all(r[2] == "given" for r in table(out, "**Fine-tuning")[1])
    assert "- FPO vs Gaussian PPO on Hopper-v5: not measured" in out


def test_missing_dataset_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="python scripts/make_dataset.py --env-id Hopper-v5 --out-dir datasets --levels medium"):
        bench.main(["--only", "finetune", "--dataset", str(tmp_path / "hopper-medium-v5.hdf5")])


def test_gaussian_bc_adapter_acts_as_its_bc_checkpoint(tmp_path):
    torch.manual_seed(0)
    data = OfflineDataset.load(hopper_dataset(tmp_path / "hopper.npz"))
    env = vecenvs.make("Hopper-v5", num_envs=2, seed=0)
    data.action_space = env.single_action_space
    bc = BC(data, BCConfig(actor_hidden=(32, 32), batch_size=32, compile=False)).learn(50, progress=False)
    path = bc.save(tmp_path / "bc.pt")
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1, compile=False)
    with pytest.raises(ValueError, match="does not fit"):  # why the adapter exists: PPO cannot load BC's actor itself
        PPO(env, cfg).load_modules(path, ["policy"])
    policy, normalizer = bench.BCGaussianPolicy.from_bc_checkpoint(
        path, env.single_observation_space, env.single_action_space, log_std_init=-1.0
    )
    agent = PPO(env, cfg, policy=policy)
    agent.freeze_obs_normalization(normalizer)
    obs = data.observations[:64]
    torch.testing.assert_close(agent.act(obs, deterministic=True), bc.act(obs, deterministic=True), atol=1e-4, rtol=0)
    assert torch.equal(policy.log_std.detach(), torch.full((3,), -1.0))
    stats = {k: v.clone() for k, v in agent.obs_rms.state_dict().items()}
    agent.learn(agent.steps_per_iteration, progress=False)
    assert all(torch.equal(agent.obs_rms.state_dict()[k], v) for k, v in stats.items())  # the dataset's, frozen
    with pytest.raises(ValueError, match="wraps a BC checkpoint's DeterministicActor"):
        bench.BCGaussianPolicy.from_bc_checkpoint(
            agent.save(tmp_path / "ppo.pt"), env.single_observation_space, env.single_action_space, -1.0
        )


def test_checkpoints_fall_on_every_methods_iterations():
    points = bench.grid_checkpoints(100_000, 4, [4096, 1024])
    assert len(points) == 4 and all(p % 4096 == 0 for p in points) and points[-1] == 102_400
    assert points == sorted(set(points))
    assert bench.grid_checkpoints(64, 2, [32, 1]) == [32, 64]
    assert bench.grid_checkpoints(10, 4, [32]) == [32]  # a budget below one iteration: one evaluation, after it
    assert np.all(np.diff(bench.grid_checkpoints(51_200, 4, [2048, 1])) > 0)
