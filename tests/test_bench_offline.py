"""scripts/bench_offline.py prints its table (tiny sizes, our side only: d3rlpy lives in its own venv)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_offline_quick():
    out = subprocess.run(
        [sys.executable, "scripts/bench_offline.py", "--quick", "--algos", "bc", "iql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| bc ") or line.startswith("| iql ")]
    assert len(rows) == 2 and all(line.count("|") == 7 for line in rows), out.stdout
