"""Train SAC from the command line: `python scripts/train_sac.py --help` lists every option."""

from policyopt.algos import SAC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(SAC)
