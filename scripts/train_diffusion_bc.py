"""Train Diffusion-BC from a dataset: `python scripts/train_diffusion_bc.py --help` lists every option."""

from algos import DiffusionBC
from algos.train import main

if __name__ == "__main__":
    main(DiffusionBC)
