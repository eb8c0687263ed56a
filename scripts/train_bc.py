"""Train BC from a dataset: `python scripts/train_bc.py --help` lists every option."""

from policyopt.algos import BC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(BC)
