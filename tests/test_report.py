"""scripts/report.py on synthetic run directories: its statistics are rliable's on the runs' final
evaluations, and runs it cannot compare are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

ROOT = Path(__file__).resolve().parent.parent
REPS, SEED = 300, 7


@pytest.fixture(scope="module")
def report():
    from policyopt.algos.run import report

    return report


def write_run(
    root: Path,
    algo: str,
    task: str,
    seed: int,
    final: float | None,
    norm: float | None = None,
    step: int = 10_000,
    dataset: bool = True,
    **algo_config,
) -> Path:
    """A run directory as the training CLI writes it: a better evaluation halfway, the final one at
    ``step``, and a training record after it (which holds no evaluation)."""
    run = root / algo.lower() / task / f"seed{seed}"
    run.mkdir(parents=True)
    config = {
        "algo": algo,
        "env_id": "Hopper-v5" if dataset else task,
        "seed": seed,
        "num_envs": 1,
        "run_dir": str(run),
        "command": ["--seed", str(seed)],
        "algo_config": {"seed": seed, "lr": 3e-4, **algo_config},
    }
    if dataset:
        config["dataset"] = f"datasets/{task}.hdf5"
    (run / "config.json").write_text(json.dumps(config))
    records = [{"step": step // 4, "time": 1.0, "train/loss": 0.5}]
    if final is not None:
        best = {"eval/return": final + 1000.0, **({"eval/normalized_score": norm + 50.0} if norm is not None else {})}
        last = {"eval/return": final, **({"eval/normalized_score": norm} if norm is not None else {})}
        records += [{"step": step // 2, "time": 2.0, **best}, {"step": step, "time": 3.0, "train/loss": 0.1, **last}]
    records.append({"step": step + 1, "time": 4.0, "train/loss": 0.2})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def direct(matrix: np.ndarray, func, reps: int = REPS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """rliable itself on ``matrix``; its bootstrap draws from numpy's global RNG."""
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates({"x": matrix}, func, reps=reps)
    return point["x"], ci["x"]


def _cell(lo_point_hi: tuple[float, float, float]) -> str:
    point, lo, hi = lo_point_hi
    return f"{point:.1f} [{lo:.1f}, {hi:.1f}]"


@pytest.fixture
def grid(tmp_path):
    """Two algorithms x two datasets x five seeds with random final scores."""
    rng = np.random.default_rng(0)
    scores = {}
    for algo in ("IQL", "BC"):
        for task in ("hopper-medium-v5", "hopper-medium-expert-v5"):
            ret = rng.uniform(500, 3000, size=5)
            norm = ret / 30.0 + rng.normal(size=5)
            for seed in range(5):
                write_run(tmp_path, algo, task, seed, float(ret[seed]), float(norm[seed]))
            scores[algo, task] = (ret, norm)
    return tmp_path, scores


def test_cells_reproduce_rliable_on_the_final_evaluations(report, grid):
    root, scores = grid
    table = report.main(report.Args([root], reps=REPS, seed=SEED))
    iqm = lambda x: np.array([metrics.aggregate_iqm(x)])  # noqa: E731
    mean = lambda x: np.array([metrics.aggregate_mean(x)])  # noqa: E731
    for (algo, task), (ret, norm) in scores.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {task} | {algo} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:4] == ["5", "10,000"]
        for col, values in ((4, ret), (6, norm)):
            for offset, func in ((0, mean), (1, iqm)):
                point, ci = direct(values[:, None], func)
                assert cells[col + offset] == _cell((point[0], ci[0, 0], ci[1, 0])), (algo, task, col + offset)
        # The script's own numbers, before formatting, are rliable's to float precision
        stats = report.estimate(ret[:, None], REPS, SEED)
        point, ci = direct(ret[:, None], iqm)
        assert stats["iqm"] == pytest.approx(point[0]) and stats["iqm_ci"] == pytest.approx(tuple(ci[:, 0]))
    for algo in ("BC", "IQL"):  # the aggregate row: a runs x tasks matrix of normalized scores
        matrix = np.stack([scores[algo, t][1] for t in ("hopper-medium-expert-v5", "hopper-medium-v5")], axis=1)
        point, ci = direct(matrix, iqm)
        row = next(line for line in table.splitlines() if line.startswith(f"| all 2 tasks | {algo} |"))
        assert row.rstrip(" |").endswith(_cell((point[0], ci[0, 0], ci[1, 0])))
        assert f"| {algo} | 10 |" in row


def test_the_seed_sets_the_intervals(report, grid):
    root, scores = grid
    ret = scores["IQL", "hopper-medium-v5"][0][:, None]
    assert report.estimate(ret, REPS, SEED) == report.estimate(ret, REPS, SEED)
    assert report.estimate(ret, REPS, SEED)["iqm_ci"] != report.estimate(ret, REPS, SEED + 1)["iqm_ci"]


def test_tasks_are_cells_apart_and_online_runs_are_named_by_env(report, tmp_path):
    for seed in range(2):
        write_run(tmp_path, "IQL", "walker2d-medium-v5", seed, 100.0 + seed, 5.0)
        write_run(tmp_path, "IQL", "hopper-medium-v5", seed, 900.0 + seed, 30.0)
        write_run(tmp_path, "PPO", "Pendulum-v1", seed, -200.0 - seed, dataset=False)
    table = report.main(report.Args([tmp_path], reps=50))
    assert "| walker2d-medium-v5 | IQL | 2 | 10,000 | 100.5 [" in table  # never averaged with hopper's 900
    assert "| hopper-medium-v5 | IQL | 2 | 10,000 | 900.5 [" in table
    pendulum = next(line for line in table.splitlines() if line.startswith("| Pendulum-v1 | PPO | 2 |"))
    assert pendulum.endswith("|  |  |")  # no normalized score: those cells stay empty
    assert "all 2 tasks | IQL" in table and "PPO" not in table.split("all 2 tasks")[1]


def test_incomplete_runs_are_named(report, tmp_path, capsys):
    good = write_run(tmp_path, "IQL", "hopper-medium-v5", 0, 1000.0)
    no_eval = write_run(tmp_path, "IQL", "hopper-medium-v5", 1, None)
    no_metrics = tmp_path / "iql" / "hopper-medium-v5" / "seed2"
    no_metrics.mkdir()
    (no_metrics / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(report.ReportError, match="incomplete") as e:
        report.main(report.Args([tmp_path], reps=50))
    assert str(no_eval) in str(e.value) and str(no_metrics) in str(e.value) and str(good) not in str(e.value)
    table = report.main(report.Args([tmp_path], reps=50, skip_incomplete=True))
    assert "| hopper-medium-v5 | IQL | 1 |" in table
    err = capsys.readouterr().err
    assert str(no_eval) in err and str(no_metrics) in err


def test_unequal_final_steps_are_incomparable(report, tmp_path):
    full = write_run(tmp_path, "IQL", "hopper-medium-v5", 0, 1000.0)
    short = write_run(tmp_path, "IQL", "hopper-medium-v5", 1, 800.0, step=5_000)
    write_run(tmp_path, "BC", "hopper-medium-v5", 0, 700.0, step=5_000)  # another cell: its budget is its own
    with pytest.raises(report.ReportError, match="incomparable") as e:
        report.main(report.Args([tmp_path], reps=50))
    assert f"{full} (step 10000)" in str(e.value) and f"{short} (step 5000)" in str(e.value)
    table = report.main(report.Args([tmp_path], reps=50, allow_unequal_steps=True))
    assert "| hopper-medium-v5 | IQL | 2 | 5,000/10,000 | 900.0 [" in table


def test_runs_of_different_settings_are_not_pooled(report, tmp_path):
    uniform = write_run(tmp_path / "uniform", "IQL", "hopper-medium-v5", 0, 1000.0, weighting="uniform")
    aw = write_run(tmp_path / "aw", "IQL", "hopper-medium-v5", 0, 500.0, weighting="aw")
    with pytest.raises(report.ReportError, match="algo_config.weighting") as e:
        report.main(report.Args([tmp_path], reps=50))
    assert str(uniform) in str(e.value) and str(aw) in str(e.value)
    table = report.main(report.Args([tmp_path], reps=50, group_by=r"/(uniform|aw)/(iql)/"))
    assert "| hopper-medium-v5 | aw iql | 1 |" in table and "| hopper-medium-v5 | uniform iql | 1 |" in table


def test_improvement_and_profiles(report, grid, tmp_path):
    root, scores = grid
    out = tmp_path / "figs" / "profiles.png"
    table = report.main(report.Args([root], reps=50, seed=SEED, improvement=("iql", "BC"), profiles=out))
    tasks = ("hopper-medium-expert-v5", "hopper-medium-v5")
    x, y = (np.stack([scores[a, t][0] for t in tasks], axis=1) for a in ("IQL", "BC"))
    np.random.seed(SEED)
    point, ci = rly.get_interval_estimates(
        {"p": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=50
    )
    assert f"P(IQL > BC) = {point['p'][0]:.2f} [{ci['p'][0, 0]:.2f}, {ci['p'][1, 0]:.2f}] over 2 tasks" in table
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(report.ReportError, match="no runs of 'SAC'"):
        report.main(report.Args([root], reps=50, improvement=("SAC", "BC")))


def test_cli_prints_and_writes_the_table(report, grid, tmp_path, capsys):
    root, _ = grid
    out = tmp_path / "report.md"
    table = report.cli(
        [
            str(root / "iql"),
            str(root / "bc" / "hopper-medium-v5"),
            "--reps",
            "50",
            "--out",
            str(out),
            "--improvement",
            "IQL",
            "BC",
        ]
    )
    printed = capsys.readouterr().out
    assert table in printed and out.read_text() == table + "\n"
    assert "P(IQL > BC) = " in table and "over 1 task (hopper-medium-v5)" in table
    assert table.splitlines()[0].startswith("| task | algorithm | runs | final step | eval/return mean [95% CI] |")
    assert {line.split("|")[2].strip() for line in table.splitlines()[2:] if line.startswith("| hopper")} == {"IQL", "BC"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="report.py: no run directories .* under .*empty"):
        report.cli([str(tmp_path / "empty")])


# --- results files -----------------------------------------------------------------------------------
def write_records(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def record(algo: str, env_id: str, seed: int, final: float, step: int = 1000, command: str | None = None, **extra) -> dict:
    command = command or f"python scripts/train_{algo}.py --env-id {env_id} --seed {seed} --num-envs 8 --run-dir runs/x{seed}"
    return {
        "algo": algo,
        "env_id": env_id,
        "seed": seed,
        "final": final,
        "curve": [[0, 0.0], [step, final]],
        "command": command,
        **extra,
    }


def test_results_file_records_reproduce_rliable(report, tmp_path):
    rng = np.random.default_rng(3)
    finals = rng.uniform(0, 3000, size=(2, 4))
    rows = [record(algo, "Hopper-v4", seed, float(finals[i, seed])) for i, algo in enumerate(("ppo", "spo")) for seed in range(4)]
    rows.append(record("ppo", "Hopper-v4", 0, float(finals[0, 0]) + 1))  # a later record of a run replaces the earlier
    finals[0, 0] += 1
    path = write_records(tmp_path / "results.jsonl", rows)
    table = report.main(report.Args([path], reps=REPS, seed=SEED))
    for i, algo in enumerate(("ppo", "spo")):
        x = finals[i][:, None]
        np.random.seed(SEED)
        point, ci = rly.get_interval_estimates(
            {"x": x}, lambda s: np.array([metrics.aggregate_mean(s), metrics.aggregate_iqm(s)]), reps=REPS
        )
        row = next(line for line in table.splitlines() if f"| {algo} |" in line)
        assert f"| 4 | 1,000 | {point['x'][0]:.1f} [{ci['x'][0, 0]:.1f}, {ci['x'][1, 0]:.1f}] | {point['x'][1]:.1f} " in row


def test_results_file_offline_records_and_refusals(report, tmp_path):
    ref = [10.0, 1010.0]
    rows = [
        record("iql", "Hopper-v5", s, 50.0 + s, dataset="hopper-medium-v5", table="standard", weighting="uniform", references=ref)
        for s in range(3)
    ]
    rows += [
        record("iql", "Hopper-v5", s, 60.0, dataset="hopper-medium-v5", table="mixed", weighting="aw", references=ref)
        for s in range(3)
    ]
    path = write_records(tmp_path / "offline.jsonl", rows)
    table = report.main(report.Args([path], reps=50, where=("table=standard",)))
    assert "| hopper-medium-v5 | iql | 3 | 1,000 | 520.0 " in table and "| 51.0 [" in table and "iql-aw" not in table
    assert "| hopper-medium-v5 | iql-aw | 3 |" in report.main(report.Args([path], reps=50))  # a sampler is its own row
    # the same algorithm on another build of the dataset, or with other flags, is not pooled
    other = write_records(tmp_path / "other.jsonl", rows[:3] + [dict(rows[0], seed=5, references=[10.0, 2000.0])])
    with pytest.raises(report.ReportError, match="differ in references"):
        report.main(report.Args([other], reps=50))
    flags = write_records(
        tmp_path / "flags.jsonl",
        [
            record("ppo", "Hopper-v4", 0, 1.0),
            record("ppo", "Hopper-v4", 1, 1.0, command="python scripts/train_ppo.py --num-envs 4"),
        ],
    )
    with pytest.raises(report.ReportError, match="differ in --num-envs: '8'"):
        report.main(report.Args([flags], reps=50))
    no_curve = write_records(tmp_path / "nocurve.jsonl", [dict(record("ppo", "Hopper-v4", 0, 1.0), curve=None)])
    with pytest.raises(report.ReportError, match="ppo on Hopper-v4 seed 0 has no evaluation curve"):
        report.main(report.Args([no_curve], reps=50))
    with pytest.raises(report.ReportError, match="not a run record"):
        report.main(report.Args([write_records(tmp_path / "bad.jsonl", [{"x": 1}])], reps=50))


@pytest.mark.slow
@pytest.mark.parametrize(
    "page, marker, results, where",
    [
        ("results-mujoco.md", "mujoco_1m", "mujoco_1m.jsonl", []),
        ("results-offline.md", "offline_standard", "offline.jsonl", ["table=standard"]),
        ("results-offline.md", "offline_generative", "offline.jsonl", ["table=generative"]),
    ],
)
def test_the_results_pages_tables_are_the_reports_output(report, page, marker, results, where):
    """The results pages' multi-seed tables are `python scripts/report.py results/<file> [--where ...]`."""
    readme = report.results_table.readme_table((ROOT / "docs" / page).read_text(), f"<!-- report:{marker} -->")
    command = " ".join(["python scripts/report.py", f"results/{results}", *(f"--where {w}" for w in where)])
    assert readme == report.main(report.Args([ROOT / "results" / results], where=tuple(where))), (
        f"docs/{page}'s table differs from its source; regenerate it with: {command}"
    )
