"""Train PPO from the command line: `python scripts/train_ppo.py --help` lists every option."""

from policyopt.algos import PPO
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(PPO)
