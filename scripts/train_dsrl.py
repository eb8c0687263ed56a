"""Train DSRL (SAC in a frozen diffusion or flow policy's noise space): `python scripts/train_dsrl.py --help` lists every option.

    python scripts/train_diffusion_bc.py --env-id Pendulum-v1 --dataset data.npz --run-dir runs/base
    python scripts/train_dsrl.py --env-id Pendulum-v1 --base runs/base/checkpoint.pt

``--base CHECKPOINT`` is short for ``--algo.base CHECKPOINT``.
"""

from policyopt.algos.offpolicy.dsrl import DSRL
from policyopt.algos.run.train import main

if __name__ == "__main__":
    main(DSRL)
