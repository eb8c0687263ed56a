"""scripts/make_dataset.py: the D4RL recipe at tiny sizes on Hopper-v5, every level, all formats; one build
per output folder, and the cleanup of what a killed build left."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")
pytest.importorskip("mjbatch")

import tyro  # noqa: E402

from policyopt import vecenvs  # noqa: E402
from policyopt.algos.run.d4rl_recipe import DatasetRecipe, collect, uniform_actions  # noqa: E402
from policyopt.buffers.dataset import OfflineDataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_dataset  # noqa: E402
from lock_holder import hold_lock  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ["random", "medium", "expert", "medium-replay", "medium-expert", "random-expert-0.05", "random-medium-0.05"]
# what makes the README's commands tiny: later flags override earlier ones
TINY = [
    "--size",
    "1500",
    "--train-steps",
    "8192",
    "--checkpoint-every",
    "2048",
    "--num-envs",
    "8",
    "--ref-episodes",
    "3",
    "--formats",
    "d4rl",
    "minari",
    "npz",
    "--no-progress",
]


def readme_commands() -> list[list[str]]:
    lines = (ROOT / "docs" / "datasets.md").read_text().splitlines()
    return [shlex.split(line)[2:] for line in lines if line.startswith("python scripts/make_dataset.py ")]


def test_readme_documents_the_three_standard_builds():
    commands = readme_commands()
    assert [c[c.index("--env-id") + 1] for c in commands] == ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"]
    for args in commands:
        recipe = tyro.cli(DatasetRecipe, args=args)
        assert list(recipe.levels) == LEVELS and recipe.size == 1_000_000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets")
    paths = make_dataset.main([*readme_commands()[0], *TINY, "--out-dir", str(out)])  # the README's Hopper build, tiny
    return out, paths


@pytest.mark.slow
def test_every_level_is_written_with_its_card_and_reference_scores(built):
    out, paths = built
    assert sorted(paths) == sorted(LEVELS)
    for level in LEVELS:
        d = OfflineDataset.load(paths[level])
        card = json.loads((out / f"hopper-{level}-v5.json").read_text())
        assert card["level"] == level and card["transitions"] == d.num_transitions and card["episodes"] == d.num_episodes
        assert card["seeds"]["train"] == 0 and card["env_id"] == "Hopper-v5"
        lo, hi = d.reference_scores()
        assert lo == card["ref_min_score"] and hi == card["ref_max_score"] and hi > lo
        d.check_env(vecenvs.make("Hopper-v5"))
        assert bool((d.actions.abs() <= 1.0).all())
        # the other formats hold the same data
        for other in (out / f"hopper-{level}-v5.npz", out / "minari" / "policyopt" / "hopper" / f"{level.replace('.', '_')}-v5"):
            e = OfflineDataset.load(other)
            assert torch.equal(e.observations, d.observations) and torch.equal(e.rewards, d.rewards)


def test_level_sizes_and_composition(built):
    _, paths = built
    ds = {lv: OfflineDataset.load(p) for lv, p in paths.items()}
    for level in ("random", "medium", "expert"):
        assert ds[level].num_transitions == 1500
    assert ds["medium-expert"].num_transitions == 3000
    torch.testing.assert_close(ds["medium-expert"].observations[:1500], ds["medium"].observations)
    torch.testing.assert_close(ds["medium-expert"].observations[1500:], ds["expert"].observations)
    # medium-replay: whole training episodes up to the medium checkpoint, in order of finishing
    assert 0 < ds["medium-replay"].num_transitions <= 8192
    assert ds["expert"].episode_returns.mean() > ds["random"].episode_returns.mean()
    for level, ratio in (("random-expert-0.05", 0.05), ("random-medium-0.05", 0.05)):
        mix = ds[level].metadata["mix"]
        n = 1500  # the good level's size
        longest = int(ds[level.split("-")[1]].episode_lengths.max())
        assert int(ratio * n) < mix["good_transitions"] <= int(ratio * n) + longest
        assert ds[level].num_transitions == mix["good_transitions"] + mix["bad_transitions"]
        assert abs(mix["good_transitions"] / ds[level].num_transitions - ratio) < longest / n + 0.02


def test_collect_marks_the_time_limit_as_timeouts():
    env = vecenvs.make("Pendulum-v1", num_envs=4, seed=1)  # 200-step time limit, never terminates
    d = collect(env, uniform_actions(env, 0), 1000, metadata={"env_id": "Pendulum-v1"})
    assert d.num_transitions == 1000 and d.num_episodes == 5
    assert d.episode_lengths.tolist() == [200] * 5
    assert int(d.timeouts.sum()) == 5 and int(d.terminals.sum()) == 0
    # stored next observations at the limit are the true final ones, not the reset observation
    ends = d.episode_starts + d.episode_lengths - 1
    assert not torch.equal(d.next_observations[ends[:-1]], d.observations[ends[:-1] + 1])
    low, high = env.single_action_space.low, env.single_action_space.high
    assert bool((d.actions >= torch.as_tensor(low)).all() and (d.actions <= torch.as_tensor(high)).all())
    assert float(d.actions.std()) > 0.5  # uniform over [-2, 2], std 1.15


def test_recipe_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"unknown level\(s\) \['medium-random'\]"):
        DatasetRecipe(levels=("medium-random",))
    with pytest.raises(ValueError, match="unknown format"):
        DatasetRecipe(formats=("csv",))
    with pytest.raises(ValueError, match="no native batched env"):
        DatasetRecipe(env_id="LunarLander-v3")
    with pytest.raises(ValueError, match="size must be >= 1"):
        DatasetRecipe(size=0)
    assert np.isclose(DatasetRecipe().medium_score, 100 / 3)


# --- one writer per output folder ------------------------------------------------------------------------
# a random level only: no behaviour agent to train, a few seconds per build
QUICK = ["--levels", "random", "--size", "200", "--ref-episodes", "1", "--num-envs", "4", "--no-progress"]


@pytest.mark.slow
def test_a_second_build_into_the_same_folder_fails_naming_the_first(tmp_path):
    out = tmp_path / "datasets"
    command = [sys.executable, str(ROOT / "scripts" / "make_dataset.py"), *QUICK, "--out-dir", str(out)]
    with hold_lock(out, "dataset build") as pid:
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        _, err = second.communicate(timeout=300)
        assert second.returncode != 0
        assert re.search(rf"make_dataset.py: {re.escape(str(out))} is in use by another dataset build \(PID {pid} ", err), err
        assert "Traceback" not in err and not list(out.glob("*.hdf5"))  # a plain message; nothing written
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)  # the holder has gone
    assert done.returncode == 0, done.stderr
    assert OfflineDataset.load(out / "hopper-random-v5.hdf5").num_transitions == 200


def test_a_build_removes_the_partial_files_a_killed_build_left(tmp_path, capsys):
    out = tmp_path / "datasets"
    partial = [
        out / "hopper-random-v5.hdf5.tmp",
        out / "hopper-medium-v5.npz.tmp.npz",
        out / "hopper-random-v5.json.tmp",
        out / "minari/policyopt/hopper/random-v5/data/main_data.hdf5.tmp",
        out / "minari/policyopt/hopper/random-v5/data/metadata.json.tmp",
        out / "behaviour/Hopper-v5-ppo-seed0/.step000002048.pt.k2j4_x.tmp",
    ]
    others = [out / "notes.tmp", out / "hopper-random-v5.hdf5.bak", out / "behaviour/Hopper-v5-ppo-seed0/step000002048.pt"]
    for path in partial + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"cut short")
    paths = make_dataset.main([*QUICK, "--formats", "d4rl", "minari", "--out-dir", str(out)])
    printed = capsys.readouterr().out
    for path in partial:
        assert not path.exists() and f"removed {path}, a partial file of an interrupted build" in printed
    assert all(path.read_bytes() == b"cut short" for path in others)  # not names the recipe writes: kept
    assert OfflineDataset.load(paths["random"]).num_transitions == 200
    assert json.loads((out / "hopper-random-v5.json").read_text())["transitions"] == 200
