"""Train CQL from a dataset: `python scripts/train_cql.py --help` lists every option."""

from algos import CQL
from algos.train import main

if __name__ == "__main__":
    main(CQL)
