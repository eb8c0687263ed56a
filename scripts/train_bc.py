"""Train BC from a dataset: `python scripts/train_bc.py --help` lists every option."""

from algos import BC
from algos.train import main

if __name__ == "__main__":
    main(BC)
