"""Run, record and render the MuJoCo results table: `python scripts/results_table.py {run,record,render} --help` (the code: policyopt.algos.run.results_table)."""

from policyopt.algos.run.results_table import cli

if __name__ == "__main__":
    cli()
