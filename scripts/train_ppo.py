"""Train PPO from the command line: `python scripts/train_ppo.py --help` lists every option."""

from algos import PPO
from algos.train import main

if __name__ == "__main__":
    main(PPO)
