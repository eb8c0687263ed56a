"""The base every algorithm shares: the learn loop, checkpoints, evaluation, logging, data parallelism and presets."""
