"""Train TD3BC from a dataset: `python scripts/train_td3bc.py --help` lists every option."""

from policyopt.algos import TD3BC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(TD3BC)
