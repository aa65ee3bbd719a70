"""A pytest plugin for mutation testing only (pyproject.toml [tool.mutmut] loads it with -p): a mutant's tests run
fastest first, by the durations mutmut measured, so that a killed mutant stops (-x) at its cheapest failing test.
mutmut's fork-server runner hands a mutant's tests over in set order, which would often start with a 7 s end-to-end
test. Outside a mutmut run (no mutmut-stats.json in the working directory) it changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.is_file():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
