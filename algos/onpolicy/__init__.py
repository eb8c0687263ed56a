"""On-policy algorithms: the rollout loop (``base``) and PPO, TRPO, SPO, DPPO and FPO."""
