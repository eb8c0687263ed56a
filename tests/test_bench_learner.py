"""scripts/bench_learner.py --quick: every section runs and prints its table, no row fails."""

import runpy
import sys

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("mujoco")


@pytest.mark.slow
def test_bench_learner_quick(monkeypatch, capsys):
    # the off-policy and time sections (~30 s); the PPO one's compilation would double it
    monkeypatch.setattr(sys, "argv", ["scripts/bench_learner.py", "--quick", "--only", "offpolicy", "time"])
    runpy.run_path("scripts/bench_learner.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "torch.set_num_threads(1)" in out and "command: `python scripts/bench_learner.py --quick" in out
    assert "**SAC and TD3 on HalfCheetah-v5" in out and "**Time to a return**" in out
    rows = [line for line in out.splitlines() if line.startswith("| SAC") or line.startswith("| TD3")]
    assert len(rows) == 2 * 6 + 3, rows
    assert not any("Error" in line for line in rows), rows


def test_bench_learner_row_error_does_not_crash():
    sys.path.insert(0, "scripts")
    try:
        import bench_learner
    finally:
        sys.path.remove("scripts")
    assert bench_learner.attempt(lambda: 1 / 0) == {"error": "ZeroDivisionError: division by zero"}
