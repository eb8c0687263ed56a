"""Build D4RL-recipe datasets locally: `python scripts/make_dataset.py --help` lists every option.

Example (Hopper-v5, every standard level at D4RL's sizes, plus two of Hong et al.'s mixtures):

    python scripts/make_dataset.py --env-id Hopper-v5 --out-dir datasets \
        --levels random medium expert medium-replay medium-expert random-expert-0.05 random-medium-0.05

One build per --out-dir at a time: a second exits with an error naming the first's PID.
"""

from policyopt.algos.run.d4rl_recipe import cli as main

if __name__ == "__main__":
    main()
