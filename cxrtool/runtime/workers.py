"""How many worker processes to start by default."""

from __future__ import annotations

import os


def default_workers() -> int:
    """min(4, CPUs − 1): the main process trains, evaluates or encodes while the workers decode; none on one CPU."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one): `compress` starts one worker per
    core, since each decodes and encodes its own images and the main process only writes."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
