"""The ``policyopt`` command: one entry point for training, evaluation, datasets, sweeps and reports.

    policyopt train ppo --env-id CartPole-v1 --preset cartpole --total-steps 100000
    policyopt evaluate runs/ppo/CartPole-v1/seed0 --episodes 20
    policyopt make-dataset --env-id Hopper-v5 --out-dir datasets --levels medium
    policyopt sweep ... | report ... | plot ... | results-table ... | offline-table ...
    policyopt bench learner --quick             # scripts/bench_learner.py, from a checkout of the repository

Each subcommand's ``--help`` lists its options; ``scripts/<name>.py`` runs the same code. The benchmarks
compare against other libraries installed beside this one and stay scripts of the repository.
"""

from __future__ import annotations

import importlib
import runpy
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"  # the repository's (an editable install)

# subcommand -> (module, function taking argv): imported only when used, so `policyopt --help` is quick
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("policyopt.algos.run.evaluate", "cli"),
    "make-dataset": ("policyopt.algos.run.d4rl_recipe", "cli"),
    "sweep": ("policyopt.algos.run.sweep", "cli"),
    "report": ("policyopt.algos.run.report", "cli"),
    "plot": ("policyopt.algos.run.plot", "main"),
    "results-table": ("policyopt.algos.run.results_table", "cli"),
    "offline-table": ("policyopt.algos.run.offline_table", "cli"),
}


def usage() -> str:
    from policyopt.algos import ALGORITHMS

    return (
        f"usage: policyopt train ALGO [options] | policyopt {{{','.join(COMMANDS)}}} [options] | "
        f"policyopt bench NAME [options]\n  ALGO: {', '.join(ALGORITHMS)}\n  NAME: {', '.join(benchmarks()) or '(none here)'}\n"
        "  each command's --help lists its options"
    )


def benchmarks() -> list[str]:
    """The benchmark scripts of the repository this package runs from (none in a wheel install)."""
    return sorted(p.stem.removeprefix("bench_") for p in SCRIPTS.glob("bench_*.py"))


def main(argv: Sequence[str] | None = None) -> Any:
    """Run ``policyopt COMMAND ...``; an unknown command or algorithm exits with the list of known ones."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return None
    command, rest = argv[0], argv[1:]
    if command == "train":
        from policyopt.algos import ALGORITHMS
        from policyopt.algos.run.train import main as train

        if not rest or rest[0] not in ALGORITHMS:
            raise SystemExit(
                f"policyopt train: expected an algorithm, one of {', '.join(ALGORITHMS)}; got {rest[0] if rest else 'nothing'}"
            )
        return train(ALGORITHMS[rest[0]], rest[1:])
    if command == "bench":
        known = benchmarks()
        if not rest or rest[0] not in known:
            listed = ", ".join(known) or "(none here: the benchmarks are scripts of the repository; run from a checkout)"
            raise SystemExit(f"policyopt bench: expected a benchmark, one of {listed}; got {rest[0] if rest else 'nothing'}")
        script = SCRIPTS / f"bench_{rest[0]}.py"
        sys.argv = [str(script), *rest[1:]]
        return runpy.run_path(str(script), run_name="__main__")
    if command not in COMMANDS:
        raise SystemExit(f"policyopt: unknown command {command!r}; expected train or one of {', '.join(COMMANDS)}")
    module, function = COMMANDS[command]
    run: Callable[[list[str]], Any] = getattr(importlib.import_module(module), function)
    return run(rest)


if __name__ == "__main__":
    main()
