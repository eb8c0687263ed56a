"""Run, record and render the offline results tables: `python scripts/offline_table.py {run,reference,resample,render} --help` (the code: policyopt.algos.run.offline_table)."""

from policyopt.algos.run.offline_table import cli

if __name__ == "__main__":
    cli()
