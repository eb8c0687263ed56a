"""Plot learning curves: mean over seeds with a 95% bootstrap confidence band.

    python scripts/plot.py runs/ppo/Pendulum-v1/seed* runs/spo/Pendulum-v1/seed* --metric eval/return --x step --out curves.png

Runs are grouped by algorithm and env id, read from each run's ``config.json`` (``"algo"``,
``"env_id"``); where it lacks them, from the layout ``runs/<algo>/<env_id>/seed<k>``. The
label is e.g. ``PPO Pendulum-v1 (n=2)``. ``--group-by REGEX`` groups by a regex on the run
path instead (the capture groups joined by spaces, or the whole match, is the label). Each run is
interpolated onto a common x grid over the range that all runs of its group cover, so the
mean is never extrapolated.
"""

from policyopt.algos.run.plot import main

if __name__ == "__main__":
    main()
