"""Train IQL from a dataset: `python scripts/train_iql.py --help` lists every option."""

from policyopt.algos import IQL
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(IQL)
