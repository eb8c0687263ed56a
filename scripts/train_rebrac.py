"""Train ReBRAC from a dataset: `python scripts/train_rebrac.py --help` lists every option."""

from algos import ReBRAC
from algos.train import main

if __name__ == "__main__":
    main(ReBRAC)
