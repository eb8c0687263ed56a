"""Train Diffusion-BC from a dataset: `python scripts/train_diffusion_bc.py --help` lists every option."""

from policyopt.algos import DiffusionBC
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(DiffusionBC)
