"""Report run directories as one Markdown table: mean and IQM with 95% stratified bootstrap CIs (rliable).

    python scripts/report.py runs/offline --out report.md
    python scripts/report.py runs/table/ppo runs/table/spo --reps 2000 --seed 0
    python scripts/report.py runs/offline --profiles profiles.png --improvement IQL BC
    python scripts/report.py runs/table --group-by 'table/([^/]+)/'   # trpo and trpo-annealkl as two algorithms

A path is a run directory, a directory to search for them, or a results file (``results/*.jsonl``, one JSON
record per run, as ``scripts/results_table.py`` and ``scripts/offline_table.py`` write them): a record gives its
final evaluation (``final``; offline records hold the normalized score, with the raw return from the file's
``references``), its final step (the last point of its ``curve``) and its ``command``, whose flags other than
the seed and run directory are the settings the seeds of a cell must share. The MuJoCo results table (docs/results-mujoco.md) is
``python scripts/report.py results/mujoco_1m.jsonl``.

A run directory is one the training scripts write (``config.json`` and ``metrics.jsonl``); a directory
that is not one is searched for them. Each run contributes its final evaluation: the last record of
``metrics.jsonl`` holding ``--metric``, never the best one, and the ``--normalized`` score of that same
record where it has one (offline runs log ``eval/normalized_score``). A cell is one algorithm (the
``algo`` of config.json, or the ``--group-by`` label) on one task (the dataset's file name for offline
runs, else the env id), so runs of different tasks are never averaged. Per cell the table gives the
number of runs, the final step, and the mean and interquartile mean of the runs x 1 score matrix with
95% percentile CIs of ``--reps`` stratified bootstrap resamples (``rliable.library.get_interval_estimates``);
each algorithm on two or more tasks gets an aggregate row of its runs x tasks matrix of normalized
scores, where every task has them and the same number of runs. ``--profiles`` draws performance
profiles of normalized scores and ``--improvement A B`` adds the probability that A beats B.

Refused, naming the runs: a run without an evaluation record (incomplete; ``--skip-incomplete`` leaves
it out with a note), runs of one cell whose final evaluations are at different steps (incomparable;
``--allow-unequal-steps``), and runs of one cell whose settings in config.json differ (label them apart
with ``--group-by``).
"""

from policyopt.algos.run.report import cli

if __name__ == "__main__":
    cli()
