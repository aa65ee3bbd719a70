"""`cxrtool info PATH`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.output import emit_table


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


@command("info")
def info_cmd(
    path: Annotated[Path, typer.Argument(help="A checkpoint, run, evaluation directory, latent store or cache.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")] = False,
) -> None:
    """Describe an artifact: its kind, labels, sizes, config, version, identity and key figures.

    Example:  cxrtool info runs/d121 --json
    """
    from cxrtool.info import describe

    summary = describe(path)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    rows = [[key, _cell(value)] for key, value in summary.items() if key != "config"]
    rows += [[f"config.{key}", _cell(value)] for key, value in (summary.get("config") or {}).items()]
    emit_table(["field", "value"], rows, title=f"{summary['artifact']}: {path}")
