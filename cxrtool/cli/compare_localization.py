"""`compare` over localization directories (`localize --out`): pointing side by side, exact McNemar tests."""

from __future__ import annotations

from pathlib import Path

from cxrtool.errors import InputError


def compare_localization_dirs(evals: list[Path], *, names: str | None, others: bool, out: Path | None) -> None:
    from cxrtool.cli.compare_cmd import emit_comparison
    from cxrtool.explain.compare import compare_localizations, display_rows
    from cxrtool.explain.loc_dir import is_localization, read_localization
    from cxrtool.layouts import LocalizationDir

    plain = [str(path) for path in evals if not is_localization(path)]
    if plain:
        raise InputError(
            f"{plain[0]} has no {LocalizationDir.LOCALIZATION}, but other directories given are localizations; compare "
            "localization directories (`localize --out`) with each other and evaluations with evaluations"
        )
    if others:
        raise InputError("--reference and --group apply to evaluations (AUCs), not to localization directories")
    name_list = [n.strip() for n in names.split(",")] if names is not None else None
    result = compare_localizations([read_localization(path) for path in evals], name_list)
    header, rows = display_rows(result)
    emit_comparison(result, header, rows, title=f"Pointing by label, baseline {result.names[0]}", out=out)
