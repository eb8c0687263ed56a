"""Train Diffusion-QL from a dataset: `python scripts/train_diffusion_ql.py --help` lists every option."""

from algos import DiffusionQL
from algos.train import main

if __name__ == "__main__":
    main(DiffusionQL)
