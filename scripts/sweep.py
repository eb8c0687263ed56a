"""Sweep a grid of algorithms x env ids or datasets x seeds x config overrides: one training run per trial.

    python scripts/sweep.py --algos ppo spo --envs Pendulum-v1 CartPole-v1 --seeds 0 1 2 --total-steps 20000 \\
        --set algo.learning_rate=3e-4,1e-3 num_envs=8
    python scripts/sweep.py --grid scripts/sweeps/example.toml                # the same kind of grid from a file
    python scripts/sweep.py --grid scripts/sweeps/example.toml --resume       # continue after an interruption or a failure
    python scripts/sweep.py --grid scripts/sweeps/example.toml --dry-run      # list the trials and their run dirs
    python scripts/sweep.py --grid grid.toml --address auto                   # the same sweep on an existing Ray cluster
    python scripts/sweep.py --grid grid.toml --no-ray                         # one trial after another, in this process

A trial is one run of the training scripts' own code (``policyopt.algos.run.train.parse`` and ``train``, what
``scripts/train_<algo>.py`` calls) with the command line ``--env-id E`` (or ``--dataset D``) ``--seed N
--total-steps T --run-dir DIR`` plus its overrides, so it writes the usual run directory (config.json,
metrics.jsonl, TensorBoard events, checkpoint.pt every ``checkpoint_every`` steps) at
``<root>/<algo>/<env id or dataset name>/<override label>/seed<N>``, and its output to ``train.log`` there.
The label names the overrides that vary across the grid (``learning_rate=0.001,num_envs=8``; ``default``
when none varies). Online algorithms run on ``--envs``, dataset ones (``bc``, ``iql``, ...) on
``--datasets``, evaluated on the dataset's own env id (its metadata) unless ``env_id`` is set.

``--set KEY=V1,V2,...`` makes an axis of the grid (one value: a fixed setting). KEY is ``algo.<field>``
(the algorithm's config, ``--algo.<field>`` of the train scripts) or a run setting (``num_envs``,
``eval_every``, ``eval_episodes``, ``checkpoint_every``, ``preset``, ``device``, ...); ``ppo:KEY`` applies to
PPO's trials only. A value of a tuple field is written with spaces (``"algo.actor_hidden=64 64,256 256"``).
Without ``eval_every`` the runs evaluate ``total_steps`` split into at most 10 equal parts, so the last
evaluation is at the end. In a TOML (or YAML) ``--grid`` file, where a list is an axis::

    algos = ["ppo", "spo"]
    envs = ["Pendulum-v1", "CartPole-v1"]
    seeds = [0, 1, 2]
    total_steps = 20000
    [settings]                 # run settings
    num_envs = 8
    [algo_config]              # config fields of every algorithm
    learning_rate = [3e-4, 1e-3]
    [algo_config.ppo]          # PPO's trials only
    clip_coef = [0.1, 0.2]

Flags given on the command line replace the file's (``--set`` replaces the same key, adds others).
Every algorithm, env id, dataset and override is checked (each distinct config parsed as the train
script would) before any trial starts; a bad one is an error naming it and the valid choices.

With Ray Tune (``pip install -e ".[sweep]"``) the trials run as a ``tune.grid_search`` on a local Ray
started with ``--cpus`` CPUs (default: this process's cores), as many at once as there are cores, each
with ``max(1, cores // trials in the grid)`` torch threads (``--threads-per-trial`` sets it);
``--address`` connects to an existing cluster instead, whose nodes need policyopt installed and
``--root`` on a shared file system. Tune's own files go to ``<root>/_tune``. Without ray (or with
``--no-ray``) the trials run one after another here, each with the threads Ray would give it: the
thread count changes a run's numbers, so both modes and every rerun use the same. Each run records
it (``--torch-threads`` in its config.json, the summary's torch threads column), and a resumed run
keeps its own.

``--resume`` takes each trial's run dir as it finds it: a run whose checkpoint reached the total is
skipped, one with a checkpoint short of it is continued exactly (the train scripts' ``--resume``), and
one with no checkpoint, or one that cannot be read, starts again, after its files are moved into
``aside-<time>-<why>/`` in its run dir (nothing is deleted; a line says what moved where). Without
``--resume`` a root that already holds runs of the grid is an error. One sweep runs on a root at a
time: a second exits naming the first's PID. The summary at the end lists every trial's status,
final evaluation (the last ``eval/return`` of metrics.jsonl), torch threads and run dir; the exit
status is 1 when any trial failed or is unfinished, 130 after Ctrl-C (rerun with ``--resume``).
"""

from policyopt.algos.run.sweep import cli

if __name__ == "__main__":
    cli()
