"""How many worker processes to start by default."""

from __future__ import annotations

import os


def default_workers() -> int:
    """min(4, CPUs − 1): the main process trains, evaluates or encodes while the workers decode; none on one CPU."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))
