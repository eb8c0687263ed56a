"""Train ReBRAC from a dataset: `python scripts/train_rebrac.py --help` lists every option."""

from policyopt.algos import ReBRAC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(ReBRAC)
