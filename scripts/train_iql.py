"""Train IQL from a dataset: `python scripts/train_iql.py --help` lists every option."""

from algos import IQL
from algos.train import main

if __name__ == "__main__":
    main(IQL)
