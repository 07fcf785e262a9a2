"""Studies, tables and advice: the library behind the command line (``lagc_jax.cli``), which
only parses flags and calls these modules. Nothing here parses arguments.

- :mod:`lagc_jax.studies.compare`: strategies side by side on one problem (``lagc-jax run``);
- :mod:`lagc_jax.studies.paper`: the paper's reproduction study and the analytic-vs-Monte-Carlo
  iteration table (``lagc-jax reproduce``, ``lagc-jax table``);
- :mod:`lagc_jax.studies.files`: studies written as TOML files, run point by point, resumable
  and shardable (``lagc-jax study``, ``lagc-jax study-merge``); the shipped ones are in
  ``lagc_jax/data/studies/``;
- :mod:`lagc_jax.studies.advise`: which strategy pays on measured compute times
  (``lagc-jax advise``); also ``build_problem``, the problems by name;
- :mod:`lagc_jax.studies.statistics`: the numeric helpers they and ``lagc_jax.plotting``
  share (curves on common grids, the mean's Student-t interval, paired ratios).

>>> from lagc_jax.studies import statistics
>>> round(statistics.student_t_quantile(0.95, 9), 3)
2.262
"""
