"""Train FQL from a dataset: `python scripts/train_fql.py --help` lists every option."""

from algos import FQL
from algos.train import main

if __name__ == "__main__":
    main(FQL)
