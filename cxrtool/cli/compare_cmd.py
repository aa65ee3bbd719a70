"""`compare`: evaluation directories side by side, tested against the first. Does not import torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.options import Overwrite
from cxrtool.cli.output import emit_table, log, markdown_table
from cxrtool.errors import InputError

OUT_SUFFIXES = (".csv", ".md")


@command("compare")
def compare_cmd(
    evals: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Evaluation directories (`evaluate --out`), or localization directories (`localize --out`); the "
            "first is the baseline.",
            show_default=False,
            metavar="EVAL",
        ),
    ] = None,
    names: Annotated[
        str | None,
        typer.Option("--names", help="Comma-separated names, one per EVAL [default: the directory names]."),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Add Table 1's published AUCs: 'paper' (2 columns), 'reproduction' (3) or 'all' (5).",
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="NAME=EVAL1,EVAL2,... (repeatable): runs of several seeds as mean ± sd across runs; each run is "
            "also compared on its own, as NAME_1, NAME_2, ... unless given as an EVAL.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the table: .csv (raw numbers) or .md (as printed).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Per-label AUCs with intervals side by side, each EVAL tested against the first (paired DeLong, Holm).

    AUCs and intervals come from each metrics.csv. Evaluations over different images get no p-values (the reason
    is on stderr). `--out` columns: label; per evaluation NAME_auc, NAME_ci_low, NAME_ci_high; per group
    NAME_mean, NAME_sd; per pair p_NAME_vs_FIRST, p_holm_NAME_vs_FIRST; ref_* with --reference; best.

    Localization directories (`localize --out`) are compared by pointing on the same boxes (exact McNemar, Holm).

    Example:  cxrtool compare evals/d121 evals/aecnn --names d121,aecnn --reference paper --out table.csv
    """
    from cxrtool.artifacts import ensure_new
    from cxrtool.evaluation.compare import compare_evaluations, display_rows
    from cxrtool.evaluation.eval_dir import Evaluation, read_evaluation

    if out is not None:
        if out.suffix.lower() not in OUT_SUFFIXES:
            raise InputError(f"--out {out}: the table is written as .csv or .md, not {out.suffix or 'no suffix'!r}")
        ensure_new(out, overwrite=overwrite)
    from cxrtool.explain.loc_dir import is_localization

    if evals and any(is_localization(path) for path in evals):  # `localize` directories: pointing, McNemar
        from cxrtool.cli.compare_localization import compare_localization_dirs

        compare_localization_dirs(evals, names=names, others=bool(reference or group), out=out)
        return
    cache: dict[Path, Evaluation] = {}

    def read(path: Path) -> Evaluation:  # one read per directory, however often it is named
        key = path.resolve()
        if key not in cache:
            cache[key] = read_evaluation(path)
        return cache[key]

    evaluations = [read(path) for path in evals or []]
    groups = {name: [read(p) for p in paths] for name, paths in _parse_groups(group or []).items()}
    name_list = [n.strip() for n in names.split(",")] if names is not None else None
    result = compare_evaluations(evaluations, name_list, groups=groups, reference=reference)

    header, rows = display_rows(result)
    emit_comparison(result, header, rows, title=f"ROC-AUC by label, baseline {result.baseline}", out=out)


def emit_comparison(result: Any, header: list[str], rows: list[list[str]], *, title: str, out: Path | None) -> None:
    """Notes and method on stderr, the table on stdout (the method below it off a terminal), --out as CSV or .md."""
    from cxrtool.artifacts import write_csv, write_text

    for note in result.notes:
        log(note)
    log(result.method)
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


def _parse_groups(specs: list[str]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        runs = [Path(p.strip()) for p in paths.split(",") if p.strip()]
        if not sep or not name.strip() or not runs:
            raise InputError(f"--group {spec!r}: write NAME=EVAL1,EVAL2,... (e.g. --group aecnn=e/s0,e/s1,e/s2)")
        if name.strip() in groups:
            raise InputError(f"--group {name.strip()} is given twice; list all its runs in one --group")
        groups[name.strip()] = runs
    return groups
