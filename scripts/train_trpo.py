"""Train TRPO from the command line: `python scripts/train_trpo.py --help` lists every option."""

from policyopt.algos import TRPO
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(TRPO)
