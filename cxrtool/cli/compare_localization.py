"""`compare` over localization directories (`localize --out`): pointing side by side, exact McNemar tests."""

from __future__ import annotations

import sys
from pathlib import Path

from cxrtool.cli.output import emit_table, log, markdown_table
from cxrtool.errors import InputError


def compare_localization_dirs(evals: list[Path], *, names: str | None, others: bool, out: Path | None) -> None:
    from cxrtool.artifacts import write_csv, write_text
    from cxrtool.explain.compare import compare_localizations, display_rows
    from cxrtool.explain.loc_dir import LOCALIZATION, is_localization, read_localization

    plain = [str(path) for path in evals if not is_localization(path)]
    if plain:
        raise InputError(
            f"{plain[0]} has no {LOCALIZATION}, but other directories given are localizations; compare "
            "localization directories (`localize --out`) with each other and evaluations with evaluations"
        )
    if others:
        raise InputError("--reference and --group apply to evaluations (AUCs), not to localization directories")
    name_list = [n.strip() for n in names.split(",")] if names is not None else None
    result = compare_localizations([read_localization(path) for path in evals], name_list)
    for note in result.notes:
        log(note)
    log(result.method)
    header, rows = display_rows(result)
    title = f"Pointing by label, baseline {result.names[0]}"
    emit_table(header, rows, title=title)
    if not sys.stdout.isatty():
        print(f"\n{result.method}", flush=True)
    if out is not None:
        if out.suffix.lower() == ".csv":
            write_csv(out, result.table)
        else:
            notes = "".join(f"\n{note}\n" for note in result.notes)
            write_text(out, f"{title}\n\n{markdown_table(header, rows)}\n\n{result.method}\n{notes}")
        log(f"wrote {out}")
