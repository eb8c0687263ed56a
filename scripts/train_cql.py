"""Train CQL from a dataset: `python scripts/train_cql.py --help` lists every option."""

from policyopt.algos import CQL
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(CQL)
