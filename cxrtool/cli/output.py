"""Where a command's output goes: results and tables on stdout, progress, warnings and logs on stderr (SPEC §5).

When stdout is a terminal a table is drawn with rich; otherwise it is printed in full as Markdown, so a script or a
file gets every row and column, nothing elided or wrapped.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from cxrtool.log import info as log  # noqa: F401  (re-exported for the commands)
from cxrtool.progress import progress  # noqa: F401


def _cell(value: Any, digits: int) -> str:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 4) -> str:
    cells = [[_cell(v, digits) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    numeric = [all(_is_number(r[i]) for r in cells if r[i]) and any(r[i] for r in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(list(header)), rule, *(line(r) for r in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def emit_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, digits: int = 4
) -> None:
    """Print a table on stdout: rich in a terminal, full Markdown elsewhere."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            numeric = all(isinstance(r[i], (int, float)) for r in rows if r[i] is not None)
            table.add_column(name, justify="right" if numeric and rows else "left", no_wrap=True)
        for row in rows:
            table.add_row(*(_cell(v, digits) for v in row))
        Console(soft_wrap=False).print(table)
    else:
        if title:
            print(f"{title}\n")
        print(markdown_table(header, rows, digits=digits), flush=True)


def emit_frame(frame: Any, *, title: str | None = None, index_name: str | None = None, digits: int = 4) -> None:
    """A pandas DataFrame as a table; the index becomes the first column when `index_name` is given."""
    header = ([index_name] if index_name else []) + [str(c) for c in frame.columns]
    rows = []
    for idx, values in zip(frame.index, frame.itertuples(index=False)):
        rows.append(([idx] if index_name else []) + [_plain(v) for v in values])
    emit_table(header, rows, title=title, digits=digits)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so that formatting treats them as numbers."""
    return value.item() if hasattr(value, "item") else value
