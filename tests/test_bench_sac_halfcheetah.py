"""scripts/bench_sac_halfcheetah.py runs both SACs side by side and prints its table (tiny budget)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("mujoco")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_sac_halfcheetah_smoke(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "scripts/bench_sac_halfcheetah.py",
            "--steps",
            "600",
            "--eval-every",
            "300",
            "--learning-starts",
            "200",
            "--out",
            str(tmp_path / "t.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 300") or line.startswith("| 600")]
    assert len(rows) == 2 and all(line.count("|") == 6 for line in rows), out.stdout
    assert (tmp_path / "t.md").read_text().strip() == out.stdout.strip()
