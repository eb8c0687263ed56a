"""The GPU check script runs (here on the CPU, tiny sizes), so it cannot rot before a GPU is lent."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_script_runs_on_cpu():
    out = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--quick", "--no-tests", "--eager-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    table = out.stdout
    assert "| what | size | result |" in table
    assert "FAILED" not in table, table
    for row in (
        "CartPole-v1 env steps/s",
        "Pendulum-v1 env steps/s",
        "PPO update samples/s (eager)",
        "SAC gradient steps/s (eager)",
    ):
        assert row in table


def test_gpu_check_sh_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        return
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "CUDA is not available" in out.stderr
