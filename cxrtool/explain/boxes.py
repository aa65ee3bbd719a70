"""Boxes: ChestX-ray14's radiologist list, the boxes a thresholded heatmap predicts, and how well they agree.

Coordinates are original-image pixels from the top-left corner; pixel (i, j) is the square [i, i+1) × [j, j+1), so a
box (x, y, w, h) is the region [x, x+w] × [y, y+h] and a predicted box around pixels x0..x1 spans [x0, x1 + 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrtool.errors import InputError

BOX_FIELDS = ("x", "y", "w", "h")
# The box list spells one finding differently from the metadata (SPEC §3 and §5).
LABEL_ALIASES = {"Infiltrate": "Infiltration"}


def read_bbox_list(path: Path) -> pd.DataFrame:
    """`BBox_List_2017.csv` (plain or .gz) as image, label, x, y, w, h; `Infiltrate` becomes `Infiltration`.

    Its header is `Image Index,Finding Label,Bbox [x,y,w,h],,,`: the box's four numbers share one bracketed name, so
    the columns are taken by position."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--bbox {path} does not exist; give ChestX-ray14's BBox_List_2017.csv")
    try:
        raw = pd.read_csv(path, header=0, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"--bbox {path} is not a readable CSV: {e}") from None
    header = [str(c).strip() for c in raw.columns]
    if len(header) < 6 or header[0] != "Image Index" or header[1] != "Finding Label":
        raise InputError(
            f"--bbox {path}: expected the header of BBox_List_2017.csv (Image Index, Finding Label, Bbox [x,y,w,h]), "
            f"found {', '.join(header[:4])}"
        )
    frame = pd.DataFrame({"image": raw.iloc[:, 0].str.strip(), "label": raw.iloc[:, 1].str.strip()})
    for k, name in enumerate(BOX_FIELDS):
        frame[name] = pd.to_numeric(raw.iloc[:, 2 + k], errors="coerce")
    bad = frame[frame[list(BOX_FIELDS)].isna().any(axis=1) | (frame["w"] <= 0) | (frame["h"] <= 0)]
    if len(bad) or frame["image"].isna().any():
        first = bad.index[0] + 2 if len(bad) else "?"
        raise InputError(f"--bbox {path}: line {first} has no valid box (x, y, w, h numbers with w, h > 0)")
    frame["label"] = frame["label"].replace(LABEL_ALIASES)
    return frame


def predicted_boxes(values: np.ndarray, threshold: float) -> np.ndarray:
    """(k, 4) boxes x, y, w, h around the 8-connected regions where a map is at least `threshold` × its maximum."""
    from scipy import ndimage

    top = float(values.max()) if values.size else 0.0
    if not top > 0:
        return np.zeros((0, 4))
    regions, count = ndimage.label(values >= threshold * top, structure=np.ones((3, 3), dtype=bool))
    boxes = [
        (s[1].start, s[0].start, s[1].stop - s[1].start, s[0].stop - s[0].start) for s in ndimage.find_objects(regions)
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(count, 4)


def overlaps(box: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU, IoBB) of one box against each candidate: intersection over union, and over the candidate's area
    (ChestX-ray8's IoBB, Wang et al. 2017)."""
    box = np.asarray(box, dtype=np.float64)
    c = np.asarray(candidates, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[0] + box[2], c[:, 0] + c[:, 2]) - np.maximum(box[0], c[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[1] + box[3], c[:, 1] + c[:, 3]) - np.maximum(box[1], c[:, 1]), 0, None)
    inter = iw * ih
    area = c[:, 2] * c[:, 3]
    return inter / (box[2] * box[3] + area - inter), inter / area


def best_match(box: np.ndarray, candidates: np.ndarray) -> tuple[int | None, float, float]:
    """(index, IoU, IoBB) of the candidate overlapping `box` best: highest IoU, then IoBB, then first; (None, 0, 0)
    when none overlaps it."""
    if len(candidates) == 0:
        return None, 0.0, 0.0
    iou, iobb = overlaps(box, candidates)
    order = np.lexsort((np.arange(len(iou)), -iobb, -iou))  # last key sorts first
    best = int(order[0])
    if not iou[best] > 0:
        return None, 0.0, 0.0
    return best, float(iou[best]), float(iobb[best])


def contains(box: np.ndarray, point: tuple[int, int] | None) -> bool:
    """Whether pixel `point`'s centre lies in the box (edges included); False for no point."""
    if point is None:
        return False
    x, y = point[0] + 0.5, point[1] + 0.5
    return bool(box[0] <= x <= box[0] + box[2] and box[1] <= y <= box[1] + box[3])
