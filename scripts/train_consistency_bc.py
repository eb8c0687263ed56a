"""Train Consistency-BC from a dataset: `python scripts/train_consistency_bc.py --help` lists every option."""

from policyopt.algos import ConsistencyBC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(ConsistencyBC)
