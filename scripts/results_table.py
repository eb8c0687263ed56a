"""Run the MuJoCo 1M-step table and render it from its results file.

    python scripts/results_table.py run --algos trpo spo --envs Hopper-v4 HalfCheetah-v4 Walker2d-v4 --seeds 0 1 2
    python scripts/results_table.py record runs/mujoco1m/spo  # record finished runs (a scripts/sweep.py root)
    python scripts/results_table.py render                  # print the Markdown table
    python scripts/results_table.py render --check docs/results-mujoco.md   # fail if the page's copy differs

``run`` trains each (algo, env, seed) one after another with the training script's own
command line (a run whose directory already holds a finished run is recorded, not retrained), reads the evaluation curve from the run's ``metrics.jsonl`` and appends one
JSON line per run to ``results/mujoco_1m.jsonl``: the command, seed, commit, machine,
curve, final and peak return. ``render`` turns that file into the results page's table, which sits
between ``<!-- results:mujoco_1m -->`` markers, so a typed number cannot drift from its source.
"""

from policyopt.algos.run.results_table import cli

if __name__ == "__main__":
    cli()
