"""Helpers shared by test modules (imported by name; pytest puts tests/ on sys.path via rootdir conftest)."""

from __future__ import annotations

from pathlib import Path


def splits_for(data: Path, tmp_path: Path) -> Path:
    from cxrtool.data.splits import SplitRequest, split_dataset

    out = tmp_path / "splits.csv"
    split_dataset(data, SplitRequest(seed=0), images=data).frame.to_csv(out, index=False)
    return out
