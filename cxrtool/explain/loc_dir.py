"""The localization directory (SPEC §5), defined once: `localize` writes it, `compare` reads it.

boxes.csv         image, label, x, y, w, h, pred_x, pred_y, pred_w, pred_h, iou, iobb, pointing_hit, probability —
                  one row per scored box; pred_* empty where no predicted box overlaps it
localization.csv  label, n_boxes, acc_iou_0.1 … acc_iou_0.7, acc_iobb_0.1 … acc_iobb_0.7, pointing,
                  pointing_ci_low, pointing_ci_high — one row per label of the box list, then Mean
examples.png      the best and the worst box of each label
config.json       how it was made, and the boxes not scored (missing images, other split, unknown label)
errors.csv        images that could not be read (then exit 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cxrtool.artifacts import read_csv_checked, read_json
from cxrtool.errors import InputError
from cxrtool.evaluation.eval_dir import MEAN
from cxrtool.layouts import LocalizationDir

THRESHOLDS = tuple(k / 10 for k in range(1, 8))  # 0.1 … 0.7; k/10 is the double nearest each decimal
BOX_COLUMNS = (
    "image", "label", "x", "y", "w", "h", "pred_x", "pred_y", "pred_w", "pred_h", "iou", "iobb", "pointing_hit",
    "probability",
)  # fmt: skip
LOCALIZATION_COLUMNS = (
    "label",
    "n_boxes",
    *(f"acc_iou_{t:.1f}" for t in THRESHOLDS),
    *(f"acc_iobb_{t:.1f}" for t in THRESHOLDS),
    "pointing",
    "pointing_ci_low",
    "pointing_ci_high",
)
KEY = ("image", "label", "x", "y", "w", "h")  # what identifies a box across evaluations


@dataclass
class Localization:
    path: Path
    boxes: pd.DataFrame
    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.table["label"] if x != MEAN]


def is_localization(path: Path) -> bool:
    return (Path(path) / LocalizationDir.LOCALIZATION).is_file()


def read_localization(path: Path) -> Localization:
    path = Path(path)
    what = "a file written by `cxrtool localize`"
    table = read_csv_checked(path / LocalizationDir.LOCALIZATION, LOCALIZATION_COLUMNS, what=what)
    boxes = read_csv_checked(path / LocalizationDir.BOXES, BOX_COLUMNS, what=what)
    if boxes.duplicated(list(KEY)).any():
        raise InputError(f"{path / LocalizationDir.BOXES}: a box (image, label, x, y, w, h) appears twice")
    config = read_json(path / LocalizationDir.CONFIG) if (path / LocalizationDir.CONFIG).is_file() else {}
    return Localization(path=path, boxes=boxes, table=table, config=config)
