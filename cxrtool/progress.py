"""Progress bars on stderr (rich), shown only when stderr is a terminal; long work reports through them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields `advance(n=1, info=...)`. Off when stderr is not a terminal or
    `enabled` is false (ranks other than 0 under torchrun)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    # Off a terminal a live bar would only repeat itself into logs; the command prints its own summary.
    with Progress(*columns, console=console, disable=not (enabled and console.is_terminal)) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            if info is None:
                bar.update(task, advance=n)
            else:
                bar.update(task, advance=n, info=info)

        yield advance
