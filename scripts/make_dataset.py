"""Build D4RL-recipe datasets locally: `python scripts/make_dataset.py --help` lists every option.

Example (Hopper-v5, every standard level at D4RL's sizes, plus two of Hong et al.'s mixtures):

    python scripts/make_dataset.py --env-id Hopper-v5 --out-dir datasets \
        --levels random medium expert medium-replay medium-expert random-expert-0.05 random-medium-0.05

One build per --out-dir at a time: a second exits with an error naming the first's PID.
"""

import torch
import tyro

from policyopt.algos.run.d4rl_recipe import DatasetRecipe, make_datasets
from policyopt.algos.run.rundir import DirectoryLockedError


def main(argv: list[str] | None = None) -> dict:
    recipe = tyro.cli(DatasetRecipe, args=argv, description=__doc__.splitlines()[0])
    torch.set_num_threads(1)  # small networks and batched envs run fastest on one thread
    try:
        return make_datasets(recipe)
    except DirectoryLockedError as e:  # another build owns --out-dir: say so without a traceback
        raise SystemExit(f"make_dataset.py: {e}") from None


if __name__ == "__main__":
    main()
