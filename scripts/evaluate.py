"""Evaluate a checkpoint or a run directory: `python scripts/evaluate.py --help` lists every option (the code: policyopt.algos.run.evaluate)."""

from policyopt.algos.run.evaluate import cli

if __name__ == "__main__":
    cli()
