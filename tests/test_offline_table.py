"""The README's offline tables come from results/offline.jsonl through scripts/offline_table.py, and
the commands it records are the training CLI's own."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    from policyopt.algos.run import offline_table

    return offline_table


def test_the_results_pages_tables_match_the_results_file():
    ot = _script()
    records = ot.results_table.load(ROOT / "results" / "offline.jsonl")
    assert records and all(
        {"table", "algo", "dataset", "weighting", "seed", "command", "commit", "final", "curve"} <= set(r) for r in records
    )
    assert all(r["final"] == r["curve"][-1][1] for r in records)  # the final checkpoint's score, never the best
    assert ot.readme_table((ROOT / "docs" / "results-offline.md").read_text()) == ot.render(records)


def test_recorded_commands_parse_as_the_training_cli(tmp_path):
    from policyopt.algos import ALGORITHMS
    from policyopt.algos.run.train import parse

    ot = _script()
    for algo in ot.UPDATES:
        cmd = ot.command_for(algo, "hopper-medium-replay-v5", "aw", 3, Path("datasets"), tmp_path / algo)
        args = parse(ALGORITHMS[algo], shlex.split(shlex.join(cmd))[2:])
        assert args.total_steps == ot.UPDATES[algo] and args.seed == 3 and args.algo.weighting == "aw"
        assert args.env_id == "Hopper-v5" and args.eval_episodes == 10
    rebrac = parse(
        ALGORITHMS["rebrac"], ot.command_for("rebrac", "hopper-medium-replay-v5", "uniform", 0, Path("d"), tmp_path)[2:]
    )
    assert (rebrac.algo.actor_bc_coef, rebrac.algo.critic_bc_coef) == (0.05, 0.5)  # CORL's for that dataset


def test_render_averages_seeds_and_check_fails_on_drift(tmp_path):
    ot = _script()
    rows = [
        {
            "table": "mixed",
            "algo": "iql",
            "dataset": "hopper-random-expert-0.05-v5",
            "weighting": "aw",
            "seed": s,
            "command": "c",
            "commit": "x",
            "final": f,
            "curve": [[5000, f]],
            "references": [1.0, 2.0],
        }
        for s, f in ((0, 40.0), (1, 60.0))
    ]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = ot.render(ot.results_table.load(results))
    assert "| IQL (5,000), AW | 50.0 (n=2) |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{ot.MARKER}\n{table}\n{ot.MARKER}\n")
    ot.main(ot.Render(results=results, check=readme))
    readme.write_text(f"x\n{ot.MARKER}\n{table.replace('50.0', '51.0')}\n{ot.MARKER}\n")
    with pytest.raises(SystemExit, match="differ"):
        ot.main(ot.Render(results=results, check=readme))


def test_a_table_states_its_build_and_refuses_two(tmp_path):
    ot = _script()
    row = {
        "table": "generative",
        "algo": "diffusion_ql",
        "dataset": "hopper-medium-v5",
        "weighting": "uniform",
        "seed": 0,
        "command": "c",
        "commit": "x",
        "final": 30.0,
        "curve": [[5000, 30.0]],
        "references": [16.7, 3113.1],
    }
    resampled = {**row, "candidates": 50, "final": 35.0, "curve": [[5000, 35.0]]}
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in (row, resampled)))
    table = ot.render(ot.results_table.load(results))  # the two records are two cells: candidates is part of the key
    assert "files with reference returns (random / expert): hopper 16.7 / 3113.1" in table
    assert "| Diffusion-QL (5,000) | 30.0 |" in table and "| Diffusion-QL (5,000), 50 candidates | 35.0 |" in table
    other = {**row, "dataset": "hopper-medium-replay-v5", "references": [16.7, 2537.8]}
    results.write_text("".join(json.dumps(r) + "\n" for r in (row, other)))
    with pytest.raises(SystemExit, match="mixes builds"):
        ot.render(ot.results_table.load(results))


def test_resample_commands_parse_as_the_evaluate_cli():
    import tyro

    from test_evaluate_cli import load_evaluate_module

    Args = load_evaluate_module().Args
    ot = _script()
    cmd = [
        "scripts/evaluate.py",
        "runs/offline/fql/hopper-medium-v5/uniform-seed0",
        "--episodes",
        str(ot.EVAL_EPISODES),
        "--seed",
        "10000",
        "--act-candidates",
        str(ot.RESAMPLE["candidates"]),
        "--act-temperature",
        "1.0",
    ]
    args = tyro.cli(Args, args=cmd[1:])
    assert args.act_candidates == 50 and args.seed == 10_000 and args.episodes == 10
