"""Offline algorithms: the dataset loop (``base``) and BC, TD3+BC, IQL, CQL and ReBRAC; generative ones in ``generative``."""
