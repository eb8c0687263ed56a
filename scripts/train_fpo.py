"""Train FPO (FPO++ with `--algo.fpo-plus`) from the command line: `python scripts/train_fpo.py --help` lists every option."""

from policyopt.algos.onpolicy.fpo import FPO
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(FPO)
