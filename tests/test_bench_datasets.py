"""scripts/bench_datasets.py runs at small sizes and prints its three tables."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mujoco")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_datasets_quick():
    out = subprocess.run(
        [sys.executable, "scripts/bench_datasets.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for row in (
        "| uniform (ours) |",
        "| rw (ours) |",
        "| aw (ours) |",
        "| topk (ours) |",
        "np.random.choice",
        "| OfflineDataset.load (ours) |",
        "qlearning_dataset loop",
        "collect, native batched",
        "SyncVectorEnv",
    ):
        assert row in text, row
    assert "weighted samplers cost at most" in text
