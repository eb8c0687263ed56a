"""Train Consistency-AC from a dataset: `python scripts/train_consistency_ac.py --help` lists every option."""

from policyopt.algos import ConsistencyAC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(ConsistencyAC)
