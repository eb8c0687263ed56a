"""Train SPO from the command line: `python scripts/train_spo.py --help` lists every option."""

from policyopt.algos import SPO
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(SPO)
