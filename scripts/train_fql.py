"""Train FQL from a dataset: `python scripts/train_fql.py --help` lists every option."""

from policyopt.algos import FQL
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(FQL)
