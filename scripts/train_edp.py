"""Train EDP from a dataset: `python scripts/train_edp.py --help` lists every option."""

from algos import EDP
from algos.train import main

if __name__ == "__main__":
    main(EDP)
