"""Train Diffusion-QL from a dataset: `python scripts/train_diffusion_ql.py --help` lists every option."""

from policyopt.algos import DiffusionQL
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(DiffusionQL)
