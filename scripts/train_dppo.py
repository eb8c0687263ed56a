"""Train DPPO from the command line: `python scripts/train_dppo.py --help` lists every option.

Fine-tune an offline diffusion policy: `--algo.pretrained runs/diffusionbc/<dataset>/seed0/checkpoint.pt`.
"""

from policyopt.algos.onpolicy.dppo import DPPO
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(DPPO)
