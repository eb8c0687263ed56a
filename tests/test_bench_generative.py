"""scripts/bench_generative.py --quick prints both tables with every row; a failed compile is a cell, not a crash."""

import sys
from pathlib import Path

import json

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import bench_generative
finally:
    sys.path.remove(str(ROOT / "scripts"))

LATENCY_ROWS = (
    ["| Gaussian | - |"]
    + [f"| diffusion K={k} | {s}" for k in (5, 20, 100) for s in ("ddpm |", "ddim |", "dpm (")]
    + [f"| flow | euler, {n} step" for n in (1, 5, 10)]
    + ["| consistency | 1 step |", "| consistency | 2 steps |", "| FQL one-step actor | - |"]
)
UPDATE_ROWS = [
    "| Diffusion-QL | 5 |",
    "| EDP (td3) | 5 |",
    "| Diffusion-QL | 20 |",
    "| EDP (td3) | 20 |",
    "| FQL |",
    "| Diffusion-BC | 5 |",
]


def rows_of(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.compile  # --quick compiles two cells for real (conftest.py disables dynamo elsewhere)
def test_bench_generative_quick(capsys):
    bench_generative.main(["--quick"])
    out = capsys.readouterr().out
    assert out.startswith("# bench_generative: ") and f"torch {torch.__version__}" in out.splitlines()[0]
    assert "**Action-sampling latency**" in out and "**Training updates/s**" in out
    header = rows_of(out, "| policy |")
    assert len(header) == 1 and "batch 1: eager (ms)" in header[0] and "batch 64: compiled (ms)" in header[0]
    for prefix in LATENCY_ROWS:
        (row,) = rows_of(out, prefix)  # exactly one each
        assert row.count("|") == 11 and "failed" not in row, row
    # the two rows --quick compiles, at batch 1: a number, not 'skipped' or 'failed'
    for prefix in ("| Gaussian | - |", "| diffusion K=5 | ddpm |"):
        compiled_b1 = rows_of(out, prefix)[0].split("|")[5].strip()
        assert compiled_b1.replace(".", "").replace(",", "").isdigit(), compiled_b1
    assert "| dpm (min(K, 15) = 15 steps) |" in rows_of(out, "| diffusion K=100 | dpm")[0]
    assert rows_of(out, "| algorithm | K | upd/s |")
    for prefix in UPDATE_ROWS:
        (row,) = rows_of(out, prefix)
        assert row.count("|") == 5 and "failed" not in row and row.split("|")[4].strip().endswith(("x", "x (vs K=5)")), row
    targets = [line for line in out.splitlines() if line.startswith("- ") and "target" in line]
    assert sum("EDP (td3) at K=" in t for t in targets) == 2 and sum(t.startswith("- FQL vs") for t in targets) == 1, targets
    assert all(("**met**" in t) or ("**not met**" in t) or ("not measured" in t) for t in targets), targets


@pytest.mark.compile
def test_failed_compile_prints_failed(monkeypatch, capsys):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    bench_generative.main(["--quick", "--only", "latency", "--compile", "all", "--rows", "Gaussian", "FQL"])
    out = capsys.readouterr().out
    for prefix in ("| Gaussian | - |", "| FQL one-step actor | - |"):
        cells = [c.strip() for c in rows_of(out, prefix)[0].split("|")]
        assert cells[5] == "failed" and cells[8] == "failed" and cells[6] == "-", cells
    assert "FQL one-step actor, compiled, batch 1: within 3x of the Gaussian: not measured (compiled cell failed)" in out


def test_scores_section_prints_the_generative_table(tmp_path, capsys):
    row = {
        "table": "generative",
        "algo": "fql",
        "dataset": "hopper-medium-v5",
        "weighting": "uniform",
        "seed": 0,
        "command": "c",
        "commit": "x",
        "final": 41.0,
        "curve": [[5000, 41.0]],
        "references": [16.7, 3113.1],
    }
    results = tmp_path / "offline.jsonl"
    results.write_text(json.dumps(row) + "\n")
    bench_generative.main(["--only", "scores", "--results", str(results)])
    out = capsys.readouterr().out
    assert "## scores" in out and "| FQL (5,000) | 41.0 |" in out and "hopper 16.7 / 3113.1" in out
