"""Read ChestX-ray14's metadata (`Data_Entry_2017*.csv`, plain or gzipped) and its official split lists.

Every published format must be readable (SPEC §3): NIH's original files and Kaggle's re-export differ in trailing
commas, line endings and age notation (`58` or `058Y`), later copies say `Patient Sex` for `Patient Gender`, and the
last two header names contain unquoted commas (`OriginalImage[Width,Height]`), so rows carry more fields than the
header has names. The parser therefore maps the columns it needs by position after re-joining bracketed names.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrtool.data.labels import LABELS, NO_FINDING
from cxrtool.errors import InputError

METADATA_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")  # preference order: v2020 first (SPEC §2)
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"

# canonical column -> accepted spellings (compared lower-cased, spaces collapsed)
_COLUMNS = {
    "image": ("image index",),
    "findings": ("finding labels",),
    "patient_id": ("patient id",),
    "age": ("patient age",),
    "sex": ("patient gender", "patient sex"),
    "view": ("view position",),
}
_AGE = re.compile(r"^\s*(\d+)\s*([YMDW]?)\s*$", re.IGNORECASE)
_AGE_DIVISOR = {"": 1, "Y": 1, "M": 12, "W": 52, "D": 365}


@dataclass(frozen=True)
class MetadataFiles:
    """Where a dataset folder's metadata lives; lists are None when absent."""

    metadata: Path
    train_val_list: Path | None
    test_list: Path | None
    note: str | None = None  # a message for stderr, e.g. which release was picked


def _first_existing(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def locate(
    data_dir: Path,
    *,
    metadata: Path | None = None,
    train_val_list: Path | None = None,
    test_list: Path | None = None,
) -> MetadataFiles:
    """Find the metadata file and the two lists in DATA_DIR or DATA_DIR/metadata; explicit paths win."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"dataset folder {data_dir} does not exist or is not a folder")
    folders = [data_dir, data_dir / "metadata"]
    note = None
    if metadata is None:
        found = [p for p in (_first_existing(folders, n) for n in METADATA_NAMES) if p is not None]
        if not found:
            raise InputError(
                f"no {' or '.join(METADATA_NAMES)} (optionally .gz) in {data_dir} or {data_dir / 'metadata'}; "
                "pass --metadata FILE"
            )
        metadata = found[0]
        if len(found) > 1:
            note = f"both metadata releases found; using {metadata.name} (pass --metadata to choose)"
    for given, flag in ((metadata, "--metadata"), (train_val_list, "--train-val-list"), (test_list, "--test-list")):
        if given is not None and not Path(given).is_file():
            raise InputError(f"{given} ({flag}) does not exist")
    return MetadataFiles(
        metadata=Path(metadata),
        train_val_list=Path(train_val_list) if train_val_list else _first_existing(folders, TRAIN_VAL_LIST),
        test_list=Path(test_list) if test_list else _first_existing(folders, TEST_LIST),
        note=note,
    )


def _read_text(path: Path) -> str:
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError(f"{path} looks gzipped but cannot be decompressed: {e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_tokens(line: str) -> list[str]:
    """Split a header, re-joining names such as `OriginalImage[Width,Height]` that an unquoted comma cut in two."""
    tokens: list[str] = []
    for token in next(csv.reader([line])):
        if tokens and tokens[-1].count("[") > tokens[-1].count("]"):
            tokens[-1] += "," + token
        else:
            tokens.append(token)
    while tokens and (not tokens[-1].strip() or tokens[-1].startswith("Unnamed:")):
        tokens.pop()
    return tokens


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _column_positions(path: Path, tokens: list[str], n_fields: int) -> dict[str, int]:
    """Field index of each needed column, given the field count of a data row."""
    # A bracketed name holds one value per comma-separated part when the values are unquoted (NIH's files);
    # a quoted re-export puts them in one field. Pick the reading that matches the data.
    wide = [name.count(",") + 1 if "[" in name else 1 for name in tokens]
    offsets = np.concatenate([[0], np.cumsum(wide)])[:-1] if n_fields >= sum(wide) else np.arange(len(tokens))
    normalised = [_norm(t) for t in tokens]
    positions: dict[str, int] = {}
    missing = []
    for key, spellings in _COLUMNS.items():
        hit = next((i for i, name in enumerate(normalised) if name in spellings), None)
        if hit is None:
            missing.append(spellings[0].title())
        else:
            positions[key] = int(offsets[hit])
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(missing)} (header: {', '.join(tokens)})")
    return positions


def _parse_ages(path: Path, ages: pd.Series) -> np.ndarray:
    """Ages in whole years; NIH's first release wrote `058Y`, `006M`, `010D`."""
    numeric = pd.to_numeric(ages, errors="coerce")
    out = numeric.to_numpy(dtype=float, copy=True)
    for i in np.flatnonzero(np.isnan(out)):
        match = _AGE.match(str(ages.iat[i]))
        if match is None:
            raise InputError(f"{path} line {i + 2}: cannot read Patient Age {ages.iat[i]!r}")
        out[i] = int(match.group(1)) // _AGE_DIVISOR[match.group(2).upper()]
    return np.floor(out).astype(np.int64)


def _label_matrix(path: Path, findings: pd.Series) -> np.ndarray:
    """0/1 matrix in LABELS order; `No Finding` is all zeros and an unknown finding is an error."""
    # ~800 distinct strings among 112,120 rows: decode each distinct one once.
    codes, uniques = pd.factorize(findings)
    column = {label: j for j, label in enumerate(LABELS)}
    table = np.zeros((len(uniques), len(LABELS)), dtype=np.int8)
    for u, text in enumerate(uniques):
        parts = [p.strip() for p in str(text).split("|")]
        for part in parts:
            if part in column:
                table[u, column[part]] = 1
            elif part != NO_FINDING:
                row = int(np.flatnonzero(codes == u)[0])
                what = f"finding {part!r}" if part else "an empty finding"
                raise InputError(
                    f"{path} line {row + 2}: {what} is not one of the 14 ChestX-ray14 labels "
                    f"({', '.join(LABELS)}) nor {NO_FINDING!r}"
                )
    return table[codes]


def read_metadata(path: Path) -> pd.DataFrame:
    """One row per image: image, patient_id, view, age, sex, then the 14 label columns (0/1)."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{path} is empty")
    if len(lines) < 2 or not any(line.strip() for line in lines[1:]):
        raise InputError(f"{path} has a header but no rows")
    tokens = _header_tokens(lines[0])
    first_row = next(csv.reader([lines[1]]))
    while first_row and not first_row[-1].strip():
        first_row.pop()  # NIH's rows end in a trailing comma
    pos = _column_positions(path, tokens, len(first_row))
    rows = list(csv.reader(line for line in lines[1:] if line.strip()))
    width = max(pos.values()) + 1
    short = next((i for i, row in enumerate(rows) if len(row) < width), None)
    if short is not None:
        raise InputError(f"{path} line {short + 2}: {len(rows[short])} fields, expected at least {width}")
    col = {key: pd.Series([row[i].strip() for row in rows], dtype=str) for key, i in pos.items()}
    frame = pd.DataFrame({"image": col["image"]})
    dup = frame["image"].duplicated(keep=False)
    if dup.any():
        names = sorted(set(frame.loc[dup, "image"]))
        lines_of = [str(i + 2) for i in np.flatnonzero(dup.to_numpy())[:6]]
        raise InputError(
            f"{path}: {len(names)} image(s) appear on more than one row, e.g. {', '.join(names[:3])} "
            f"(lines {', '.join(lines_of)})"
        )
    pid = pd.to_numeric(col["patient_id"], errors="coerce")
    if pid.isna().any():
        bad = int(np.flatnonzero(pid.isna().to_numpy())[0])
        raise InputError(f"{path} line {bad + 2}: Patient ID {col['patient_id'].iat[bad]!r} is not a number")
    frame["patient_id"] = pid.astype(np.int64)
    frame["view"] = col["view"].str.upper()
    frame["age"] = _parse_ages(path, col["age"])
    frame["sex"] = col["sex"].str.upper().str[:1]
    labels = _label_matrix(path, col["findings"])
    frame[list(LABELS)] = labels
    return frame


def read_list(path: Path, *, flag: str) -> list[str]:
    """An official split list: one image name per line (the last line may lack its newline)."""
    names = [line.strip() for line in _read_text(Path(path)).splitlines()]
    names = [n for n in names if n]
    if not names:
        raise InputError(f"{path} ({flag}) is empty")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InputError(f"{path} ({flag}) line {i + 1}: {name} is listed twice")
        seen.add(name)
    return names


def check_listed(path: Path, names: list[str], known: pd.Index, *, flag: str) -> None:
    """Every listed image must be in the metadata."""
    missing = ~pd.Index(names).isin(known)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{path} ({flag}) names {int(missing.sum())} image(s) the metadata lacks, "
            f"first {names[first]} on line {first + 1}; is the list from the same dataset as the metadata?"
        )
