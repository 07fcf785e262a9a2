"""Which remedy wins on real stragglers? Now the shipped study file
lagc_jax/data/studies/trace_study.toml; this runs it: `lagc-jax study trace_study --out
results/trace_study` (resumable; extra arguments are passed on, e.g. --shard 0/2).
"""

import sys

from lagc_jax import cli

sys.exit(cli.main(["study", "trace_study", "--out", "results/trace_study", *sys.argv[1:]]))
