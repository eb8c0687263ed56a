"""Plot learning curves of run directories: `python scripts/plot.py --help` (the code: policyopt.algos.run.plot)."""

from policyopt.algos.run.plot import main

if __name__ == "__main__":
    main()
