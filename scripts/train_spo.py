"""Train SPO from the command line: `python scripts/train_spo.py --help` lists every option."""

from algos import SPO
from algos.train import main

if __name__ == "__main__":
    main(SPO)
