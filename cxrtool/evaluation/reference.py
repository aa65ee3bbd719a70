"""Table 1's published test AUCs, shipped inside the package as `cxrtool/resources/table1.csv`: the paper's D121
and AECNN columns and the reproduction report's D121, AECNN and FMix columns.

The file holds one row per label, spelled as the metadata spells it
(`Pleural_Thickening`), then `Mean`. The Mean row is printed as published, never recomputed: the paper's AECNN column
averages to 0.8233 over its 14 values, yet the paper published 0.8226.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

from cxrtool.errors import InputError

RESOURCE = "table1.csv"

# Source column -> the script-friendly column name `compare` writes.
COLUMNS: dict[str, str] = {
    "D121 (paper)": "ref_d121_paper",
    "D121 (reproduction)": "ref_d121_reproduction",
    "AECNN (paper)": "ref_aecnn_paper",
    "AECNN (reproduction)": "ref_aecnn_reproduction",
    "FMix (reproduction)": "ref_fmix_reproduction",
}
REFERENCE_SETS: dict[str, tuple[str, ...]] = {
    "paper": ("D121 (paper)", "AECNN (paper)"),
    "reproduction": ("D121 (reproduction)", "AECNN (reproduction)", "FMix (reproduction)"),
    "all": tuple(COLUMNS),
}


def read_reference() -> pd.DataFrame:
    """The whole table, indexed by label (the last row is `Mean`), with the source column names."""
    with (files("cxrtool") / "resources" / RESOURCE).open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"label": str})
    return table.set_index("label")


def reference_columns(which: str) -> pd.DataFrame:
    """The columns of one reference set (`paper`, `reproduction` or `all`), renamed as `compare` writes them."""
    if which not in REFERENCE_SETS:
        raise InputError(f"--reference must be one of {', '.join(REFERENCE_SETS)}, not {which!r}")
    sources = REFERENCE_SETS[which]
    return read_reference()[list(sources)].rename(columns=COLUMNS)


def label_key(label: str) -> str:
    """Match labels however they are spelled (`Pleural_Thickening`, `Pleural Thickening`)."""
    return label.strip().replace(" ", "_").lower()
