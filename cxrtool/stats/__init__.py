"""Statistics in numpy alone: classification metrics with intervals and tests, full-reference image quality.

The lowest computing layer: it imports no torch and nothing from training, compression, evaluation or the CLI, so
every layer above can use it.
"""
