"""Turn run directories or results files into a Markdown table with rliable's CIs: `python scripts/report.py --help` (the code: policyopt.algos.run.report)."""

from policyopt.algos.run.report import cli

if __name__ == "__main__":
    cli()
