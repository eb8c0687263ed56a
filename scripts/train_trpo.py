"""Train TRPO from the command line: `python scripts/train_trpo.py --help` lists every option."""

from algos import TRPO
from algos.train import main

if __name__ == "__main__":
    main(TRPO)
