"""Scoring boxes against heatmaps, and the per-label table (SPEC §5, localization directory).

Per box: the predicted boxes are the 8-connected regions where the label's map, at original resolution, is at least
`map_threshold` × its maximum; the one with the highest IoU (then IoBB) is the box's match, none when no region
touches it; pointing_hit says whether the map's maximum lies in the box. Per label: the share of boxes whose IoU (or
IoBB) is ≥ each threshold 0.1 … 0.7, and the pointing rate with a bootstrap interval. The Mean row is the unweighted
mean over the labels with scored boxes (as the AUC table's Mean is over labels), so each finding counts once however
many boxes it has; its n_boxes is the total and its interval comes from the same resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxrtool.errors import InputError
from cxrtool.explain.boxes import best_match, contains, predicted_boxes
from cxrtool.explain.loc_dir import BOX_COLUMNS, LOCALIZATION_COLUMNS, MEAN, THRESHOLDS

MEAN_DEFINITION = "unweighted mean over the labels with scored boxes; n_boxes is their total"
CONNECTIVITY = 8  # regions joined through corners too (scipy.ndimage.label with a 3×3 structure)


@dataclass(frozen=True)
class Scored:
    boxes: pd.DataFrame  # boxes.csv rows
    maps: dict[tuple[str, str], Any]  # (image, label) -> (Heatmap, peak) for the examples
    unreadable: list[tuple[str, str]]


def score_boxes(
    explainer: Any, boxes: pd.DataFrame, index: Any, *, map_threshold: float, progress: Any = None
) -> Scored:
    """One boxes.csv row per box; each image's labels share one forward pass."""
    from cxrtool.data.datasets import read_image
    from cxrtool.data.images import ImageReadError
    from cxrtool.explain.geometry import peak

    rows: list[dict[str, Any]] = []
    maps: dict[tuple[str, str], Any] = {}
    unreadable: list[tuple[str, str]] = []
    labels = explainer.labels
    for name, group in boxes.groupby("image", sort=False):
        try:
            img = read_image(index.path(name))
        except ImageReadError as e:
            unreadable.append((str(name), str(e)))
            continue
        wanted = list(dict.fromkeys(labels.index(label) for label in group["label"]))
        result = explainer(img, wanted)
        for j, heatmap in result.heatmaps.items():
            full = heatmap.render()
            where = peak(full)
            candidates = predicted_boxes(full, map_threshold)
            maps[(str(name), labels[j])] = (heatmap, where)
            for box in group.loc[group["label"] == labels[j], ["x", "y", "w", "h"]].to_numpy(dtype=np.float64):
                best, iou, iobb = best_match(box, candidates)
                pred = candidates[best] if best is not None else [math.nan] * 4
                rows.append({
                    **dict(zip(("image", "label", "x", "y", "w", "h"), (name, labels[j], *box))),
                    **dict(zip(("pred_x", "pred_y", "pred_w", "pred_h"), pred)),
                    "iou": iou, "iobb": iobb, "pointing_hit": int(contains(box, where)),
                    "probability": float(result.probs[j]),
                })  # fmt: skip
        if callable(progress):
            progress(1)
    frame = pd.DataFrame(rows, columns=list(BOX_COLUMNS))
    frame["pointing_hit"] = frame["pointing_hit"].astype(int)
    return Scored(boxes=frame, maps=maps, unreadable=unreadable)


def localization_table(scored: pd.DataFrame, labels: list[str], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """localization.csv: one row per label (empty cells for a label without scored boxes), then Mean.

    Box b counts at threshold t when its score ≥ t. The pointing interval is the 2.5th and 97.5th percentile of
    `n_boot` resamples of the label's boxes, drawn label by label in order from `np.random.default_rng(seed)`; the
    Mean's interval is that of the per-resample mean over labels."""
    if n_boot < 1:
        raise InputError(f"--bootstrap must be at least 1, not {n_boot}")
    rng = np.random.default_rng(seed)
    rows, replicates = [], []
    for label in labels:
        part = scored[scored["label"] == label]
        row: dict[str, Any] = {"label": label, "n_boxes": len(part)}
        hits = part["pointing_hit"].to_numpy(dtype=np.float64)
        for score in ("iou", "iobb"):
            values = part[score].to_numpy(dtype=np.float64)
            for t in THRESHOLDS:
                row[f"acc_{score}_{t:.1f}"] = float((values >= t).mean()) if len(part) else math.nan
        row["pointing"] = float(hits.mean()) if len(part) else math.nan
        row["pointing_ci_low"] = row["pointing_ci_high"] = math.nan
        if len(part):
            resampled = hits[rng.integers(0, len(hits), size=(n_boot, len(hits)))].mean(axis=1)
            row["pointing_ci_low"], row["pointing_ci_high"] = (float(q) for q in np.quantile(resampled, (0.025, 0.975)))
            replicates.append(resampled)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(LOCALIZATION_COLUMNS))
    mean = {c: float(table[c].mean()) if replicates else math.nan for c in LOCALIZATION_COLUMNS[2:]}
    if replicates:
        low, high = np.quantile(np.mean(replicates, axis=0), (0.025, 0.975))
        mean["pointing_ci_low"], mean["pointing_ci_high"] = float(low), float(high)
    table.loc[len(table)] = {"label": MEAN, "n_boxes": int(table["n_boxes"].sum()), **mean}
    table["n_boxes"] = table["n_boxes"].astype(int)
    return table
