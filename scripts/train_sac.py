"""Train SAC from the command line: `python scripts/train_sac.py --help` lists every option."""

from algos import SAC
from algos.train import main

if __name__ == "__main__":
    main(SAC)
