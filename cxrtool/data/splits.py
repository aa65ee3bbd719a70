"""Divide a dataset into train/val/test by patient, and the `splits.csv` schema (SPEC §5).

Patients are ordered by a keyed hash of (seed, patient_id), so a patient's side of the split depends only on the seed
and its own ID: the same on any machine, whichever other patients are present. val (and, without official lists,
test) is the shortest prefix of that order whose image count is closest to the requested size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cxrtool.artifacts import read_csv_checked
from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError

# The paper's share: 10,000 of the 86,524 train_val images go to validation (SPEC §2).
PAPER_VAL_FRACTION = 10_000 / 86_524
SPLIT_COLUMNS = ("image", "patient_id", "split", "view", "age", "sex", *LABELS)
SPLITS = ("train", "val", "test")
ValMode = Literal["patient", "image"]


@dataclass(frozen=True)
class SplitRequest:
    val_size: float | None = None  # a count (>= 1) or a fraction of train_val (< 1); None: the paper's share
    val_mode: ValMode = "patient"
    test_fraction: float | None = None  # only for datasets without official lists
    seed: int = 0


def parse_size(text: str, *, flag: str) -> float:
    """`10000` is a count, `0.1` a fraction; anything else (`2.0`, `1e4`, `1.5`) is ambiguous and refused."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return float(int(text))
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise InputError(
            f"{flag} must be a whole count of images (e.g. 10000) or a fraction in (0, 1) (e.g. 0.12), not {text!r}"
        )
    return value


def hash_order(keys: np.ndarray, *, seed: int, purpose: str) -> np.ndarray:
    """Indices of `keys` sorted by a keyed BLAKE2b hash: a stable pseudo-random order for a seed."""
    key = f"cxrtool/{purpose}/{seed}".encode()
    digests = [int.from_bytes(hashlib.blake2b(str(k).encode(), key=key, digest_size=8).digest(), "big") for k in keys]
    return np.argsort(np.asarray(digests, dtype=np.uint64), kind="stable")


def _take_prefix(groups: np.ndarray, sizes: np.ndarray, target: float) -> np.ndarray:
    """The first groups of `groups` (already in hash order) whose summed size is closest to `target`."""
    cumulative = np.cumsum(sizes)
    k = int(np.argmin(np.abs(cumulative - target))) + 1
    return groups[:k]


def _target(size: float | None, total: int, default: float) -> float:
    if size is None:
        return default * total
    return size * total if size < 1 else size


def _patient_holdout(frame: pd.DataFrame, target: float, *, seed: int, purpose: str) -> pd.Series:
    """Boolean mask: the rows of the patients drawn for a hold-out of about `target` images."""
    counts = frame.groupby("patient_id").size()
    order = hash_order(counts.index.to_numpy(), seed=seed, purpose=purpose)
    chosen = _take_prefix(counts.index.to_numpy()[order], counts.to_numpy()[order], target)
    return frame["patient_id"].isin(chosen)


def assign_splits(
    meta: pd.DataFrame,
    request: SplitRequest,
    *,
    train_val: list[str] | None,
    test: list[str] | None,
) -> pd.DataFrame:
    """Return `meta` with a `split` column, rows sorted by image. Rows in neither list are dropped."""
    frame = meta.copy()
    frame["split"] = ""
    if request.test_fraction is not None:
        if not 0 < request.test_fraction < 1:
            raise InputError(f"--test-fraction must be in (0, 1), not {request.test_fraction}")
        is_test = _patient_holdout(frame, request.test_fraction * len(frame), seed=request.seed, purpose="test")
        frame.loc[is_test, "split"] = "test"
        frame.loc[~is_test, "split"] = "train"
    else:
        if train_val is None or test is None:
            raise InputError(
                "official split lists not found (train_val_list.txt and test_list.txt); pass --train-val-list and "
                "--test-list, or --test-fraction F to split your own dataset by patient"
            )
        frame.loc[frame["image"].isin(test), "split"] = "test"
        frame.loc[frame["image"].isin(train_val), "split"] = "train"
        frame = frame[frame["split"] != ""]
    pool = frame[frame["split"] == "train"]
    target = _target(request.val_size, len(pool), PAPER_VAL_FRACTION)
    if request.val_mode == "image":
        order = hash_order(pool["image"].to_numpy(), seed=request.seed, purpose="val-image")
        chosen = pool["image"].to_numpy()[order[: round(target)]]
        is_val = frame["image"].isin(chosen)
    else:
        is_val = _patient_holdout(pool, target, seed=request.seed, purpose="val").reindex(frame.index, fill_value=False)
    frame.loc[is_val, "split"] = "val"
    for name in ("train", "val"):
        if not (frame["split"] == name).any():
            raise InputError(
                f"the split leaves {name} empty ({len(pool)} train_val images, --val-size gives {target:.0f}); "
                "choose a --val-size between them"
            )
    return frame.sort_values("image", kind="stable").reset_index(drop=True)


def leaked_patients(frame: pd.DataFrame) -> set[int]:
    """Patients whose images sit in more than one split."""
    per_patient = frame.groupby("patient_id")["split"].nunique()
    return set(per_patient[per_patient > 1].index.tolist())


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Images, patients and positives per label for each split (rows) and in total."""
    rows = {}
    for name in (*SPLITS, "total"):
        part = frame if name == "total" else frame[frame["split"] == name]
        if name != "total" and part.empty:
            continue
        rows[name] = {
            "images": len(part),
            "patients": part["patient_id"].nunique(),
            **{label: int(part[label].sum()) for label in LABELS},
        }
    return pd.DataFrame(rows)


def read_splits(path: Path) -> pd.DataFrame:
    """Read a `splits.csv` written by `cxrtool split`, checking its schema and values: a bad row is named (its line
    in the file) rather than trained on."""
    frame = read_csv_checked(path, SPLIT_COLUMNS, what="a splits.csv written by `cxrtool split`")
    fix = "fix that row or write the file again with `cxrtool split`"

    def refuse(mask: pd.Series, column: str, allowed: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask.to_numpy())[0])
            value, image = frame[column].iloc[row], frame["image"].iloc[row]
            raise InputError(f"{path}, line {row + 2} ({image}): {column} is {value!r}, {allowed}; {fix}")

    refuse(~frame["split"].isin(SPLITS), "split", "not train, val or test")
    refuse(frame["image"].isna() | frame["image"].astype(str).str.strip().eq(""), "image", "no file name")
    refuse(frame["image"].duplicated(), "image", "already on an earlier line")
    refuse(~frame["sex"].isin(["M", "F"]), "sex", "not M or F")
    refuse(~frame["view"].isin(["PA", "AP"]), "view", "not PA or AP")
    for label in LABELS:
        refuse(~pd.to_numeric(frame[label], errors="coerce").isin([0, 1]), label, "not 0 or 1")
        frame[label] = pd.to_numeric(frame[label]).astype(int)
    return frame


@dataclass
class SplitOutcome:
    frame: pd.DataFrame
    messages: list[str]  # notes and warnings for stderr


def split_dataset(
    data_dir: Path,
    request: SplitRequest,
    *,
    metadata: Path | None = None,
    train_val_list: Path | None = None,
    test_list: Path | None = None,
    images: Path | None = None,
    only_present: bool = False,
) -> SplitOutcome:
    """`cxrtool split`: read the metadata, split it, and optionally locate (and keep only) the images on disk."""
    from cxrtool.data.images import ImageIndex
    from cxrtool.data.metadata import check_listed, locate, read_list, read_metadata

    if only_present and images is None:
        raise InputError("--only-present needs --images DIR to know which images are on disk")
    files = locate(data_dir, metadata=metadata, train_val_list=train_val_list, test_list=test_list)
    messages = [files.note] if files.note else []
    meta = read_metadata(files.metadata)
    lists: dict[str, list[str] | None] = {"train_val": None, "test": None}
    if request.test_fraction is None:
        for key, path, flag in (
            ("train_val", files.train_val_list, "--train-val-list"),
            ("test", files.test_list, "--test-list"),
        ):
            if path is not None:
                listed = read_list(path, flag=flag)
                check_listed(path, listed, pd.Index(meta["image"]), flag=flag)
                lists[key] = listed
    elif files.train_val_list is not None or files.test_list is not None:
        messages.append("--test-fraction given: ignoring the split lists found beside the metadata")
    if lists["train_val"] is not None and lists["test"] is not None:
        both = set(lists["train_val"]) & set(lists["test"])
        if both:
            raise InputError(f"{len(both)} image(s) are in both split lists, e.g. {sorted(both)[0]}")
    frame = assign_splits(meta, request, train_val=lists["train_val"], test=lists["test"])
    if len(frame) < len(meta):
        messages.append(f"{len(meta) - len(frame)} metadata row(s) are in neither split list and were left out")
    if request.val_mode == "image":
        messages.append(
            "warning: --val-mode image samples validation images, not patients: most val patients also have "
            "images in train, which inflates validation scores (the reproduction notebooks did this)"
        )
    leaked = leaked_patients(frame[frame["split"] != "val"]) if request.val_mode == "image" else leaked_patients(frame)
    if leaked:
        messages.append(f"warning: {len(leaked)} patient(s) have images in more than one split (the lists overlap)")
    if images is not None:
        index = ImageIndex.build(images)
        frame["path"] = frame["image"].map(index.relpaths)
        missing = frame["path"].isna()
        if only_present:
            frame = frame[~missing].reset_index(drop=True)
            messages.append(
                f"--only-present: kept {len(frame)} image(s) found under {images}, dropped {int(missing.sum())}"
            )
            for name in ("train", "val"):
                if not (frame["split"] == name).any():
                    raise InputError(f"no {name} image is present under {images}; nothing to train or validate on")
        elif missing.any():
            messages.append(f"{int(missing.sum())} of {len(frame)} image(s) are not under {images} (path left empty)")
    columns = [*SPLIT_COLUMNS, *(["path"] if images is not None else [])]
    return SplitOutcome(frame=frame[columns], messages=messages)
