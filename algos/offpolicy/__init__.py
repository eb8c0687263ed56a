"""Off-policy algorithms: the replay loop (``base``) and SAC, TD3 and DSRL."""
