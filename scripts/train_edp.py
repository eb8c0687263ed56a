"""Train EDP from a dataset: `python scripts/train_edp.py --help` lists every option."""

from policyopt.algos import EDP
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(EDP)
