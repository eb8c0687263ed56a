#!/usr/bin/env bash
# The GPU check in one command: the CUDA tests and the GPU-sized benchmarks, one table (< 8 minutes on one GPU).
# Run from the repository root after installing: pip install -e ".[test,mujoco,warp]"
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: CUDA is not available on this machine')"
exec python scripts/gpu_check.py --device "${1:-cuda}"
