"""Evaluate a checkpoint: mean deterministic return over N episodes.

    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0/checkpoint.pt --episodes 20
    python scripts/evaluate.py runs/ppo/CartPole-v1/seed0 --episodes 20   # the run dir: its checkpoint.pt

Protocol: ``--episodes N`` copies of the env are made with ``vecenvs.make(..., seed=SEED)``
and reset with ``SEED``; each copy runs exactly one episode to its end (termination or
truncation) with the policy's deterministic action (the mean, or the most likely action),
and observation normalisation frozen at the checkpoint's statistics. The result is the
mean and std of the N undiscounted returns; the same checkpoint, N and seed give the same
numbers. Generative offline agents act as their config says (``eval_stochastic``: samples of the
policy, as the papers evaluate), and ``--act-candidates N`` evaluates them with candidate
resampling (N actions, one drawn by softmax(Q / temperature)), which the output records. The env id defaults to the ``env_id`` in the run's config.json beside the
checkpoint. ``--stochastic`` acts with samples of the policy instead (the training episodes' policy). Prints one JSON object: env_id, algo, episodes, seed, return_mean, return_std,
length_mean, each episode's return by env copy (``returns``), and with ``--capture-video`` the mp4 of copy 0's episode (``video``).
"""

from policyopt.algos.run.evaluate import cli

if __name__ == "__main__":
    cli()
