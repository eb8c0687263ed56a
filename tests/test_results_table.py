"""The README's MuJoCo table is generated from results/mujoco_1m.jsonl and must not drift from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    from policyopt.algos.run import results_table

    return results_table


def test_the_results_pages_table_matches_the_results_file():
    rt = _script()
    records = rt.load(ROOT / "results" / "mujoco_1m.jsonl")
    assert records and all({"algo", "env_id", "seed", "command", "commit", "final", "peak"} <= set(r) for r in records)
    assert rt.readme_table((ROOT / "docs" / "results-mujoco.md").read_text()) == rt.render(records)


def test_render_uses_the_latest_record_and_check_fails_on_drift(tmp_path):
    rt = _script()
    rows = [
        {"algo": "trpo", "env_id": "Hopper-v4", "seed": 0, "command": "c", "commit": "x", "final": 1000.0, "peak": 2000.0},
        {"algo": "trpo", "env_id": "Hopper-v4", "seed": 1, "command": "c", "commit": "x", "final": 3000.0, "peak": 3100.0},
        {"algo": "trpo", "env_id": "Hopper-v4", "seed": 0, "command": "c", "commit": "y", "final": 2000.0, "peak": 2500.0},
    ]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = rt.render(rt.load(results))
    assert "**2500** (n=2): 2000 (2500), 3000 (3100)" in table and "| 0, 1 |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{rt.MARKER}\n{table}\n{rt.MARKER}\n")
    rt.main(rt.Render(results=results, check=readme))
    readme.write_text(f"x\n{rt.MARKER}\n{table.replace('3000', '3001')}\n{rt.MARKER}\n")
    with pytest.raises(SystemExit, match="differs"):
        rt.main(rt.Render(results=results, check=readme))
