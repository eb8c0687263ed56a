"""Run the offline results tables (docs/results-offline.md) and render them from their results file.

    python scripts/offline_table.py run --jobs 2                       # every cell, two runs at a time
    python scripts/offline_table.py run --tables mixed --algos iql      # a part of the grid
    python scripts/offline_table.py reference --d3rlpy-python /tmp/d3venv/bin/python   # d3rlpy's IQL, same files
    python scripts/offline_table.py run --tables generative            # the generative methods beside BC, TD3+BC, IQL
    python scripts/offline_table.py resample                           # their final checkpoints with 50 candidates
    python scripts/offline_table.py render                               # print the Markdown tables
    python scripts/offline_table.py render --check docs/results-offline.md   # fail if the page's copy differs

``run`` trains each cell with the training script's own command line (``scripts/train_<algo>.py
--dataset ...``), on the datasets ``scripts/make_dataset.py`` builds (docs/datasets.md's commands), reads
the evaluation curve from the run's ``metrics.jsonl`` and appends one JSON line per run to
``results/offline.jsonl``: the command, commit, machine, seconds, the curve of normalized scores
and the final checkpoint's score. A run directory that already holds a finished run is recorded,
not retrained. ``reference`` trains d3rlpy's IQL on the same files at the same budget, in d3rlpy's
own venv (see ``scripts/bench_offline.py``), and evaluates it on gymnasium's env with the same
episodes. ``render`` writes the tables that sit between ``<!-- results:offline -->`` markers.
"""

from policyopt.algos.run.offline_table import cli

if __name__ == "__main__":
    cli()
