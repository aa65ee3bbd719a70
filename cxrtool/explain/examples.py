"""`examples.png`: for each label, the box localized best and the one localized worst, with their heatmaps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from cxrtool.explain.figures import Panel, draw_examples

COLUMNS = ("best", "worst")


def pick(part: pd.DataFrame) -> tuple[Any, Any]:
    """(best, worst) rows of one label: ranked by IoU, then pointing hit, then IoBB; worst is None for one box."""
    ranked = part.sort_values(["iou", "pointing_hit", "iobb"], ascending=False, kind="stable")
    best = ranked.iloc[0]
    return best, (ranked.iloc[-1] if len(ranked) > 1 else None)


def _panel(row: Any, maps: dict[tuple[str, str], Any], index: Any, which: str) -> Panel:
    from cxrtool.data.datasets import read_image

    heatmap, where = maps[(row["image"], row["label"])]
    predicted = None if math.isnan(row["pred_x"]) else (row["pred_x"], row["pred_y"], row["pred_w"], row["pred_h"])
    title = (
        f"{row['label']} ({which}) · {row['image']}\nIoU {row['iou']:.2f} · IoBB {row['iobb']:.2f} · "
        f"{'hit' if row['pointing_hit'] else 'miss'} · p {row['probability']:.2f}"
    )
    box = (row["x"], row["y"], row["w"], row["h"])
    return Panel(
        img=read_image(index.path(row["image"])), heatmap=heatmap, box=box, predicted=predicted, peak=where, title=title
    )


def write_examples(
    path: Path, scored: pd.DataFrame, labels: list[str], maps: dict[tuple[str, str], Any], index: Any
) -> None:
    rows = []
    for label in labels:
        part = scored[scored["label"] == label]
        if part.empty:
            continue
        best, worst = pick(part)
        rows.append([_panel(best, maps, index, "best"), None if worst is None else _panel(worst, maps, index, "worst")])
    draw_examples(path, rows, column_titles=COLUMNS)
