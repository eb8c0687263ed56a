"""Run a grid of training runs, with Ray Tune or in process: `python scripts/sweep.py --help` (the code: policyopt.algos.run.sweep)."""

from policyopt.algos.run.sweep import cli

if __name__ == "__main__":
    cli()
