"""Train TD3 from the command line: `python scripts/train_td3.py --help` lists every option."""

from policyopt.algos import TD3
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(TD3)
