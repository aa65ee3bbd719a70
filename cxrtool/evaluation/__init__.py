"""Metrics with confidence intervals and tests, evaluation of a run, comparison of runs, plots."""
