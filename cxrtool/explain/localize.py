"""`cxrtool localize`: ChestX-ray14's weakly supervised localization benchmark (Wang et al., ChestX-ray8, CVPR 2017)
for a classifier or a joint (compressed-domain) checkpoint.

    BBox_List_2017.csv ─ boxes of the checkpoint's labels ─ images found under --images (─ test split of --splits)
      └─ per image: the box labels' heatmaps at original resolution (one forward pass)
           ├─ map ≥ --map-threshold × its maximum ─ 8-connected regions ─ predicted boxes ─ best by IoU ─ iou, iobb
           └─ the map's maximum inside the box? ─ pointing_hit
    per label: accuracy at IoU / IoBB ≥ 0.1 … 0.7, pointing with a seeded bootstrap 95% interval, then Mean
    (cxrtool.explain.scoring)

A box whose image is not under --images is counted, named in config.json and reported on stderr, not scored: a
partial copy of the dataset is the usual case, not an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cxrtool.errors import InputError
from cxrtool.explain.cam import TARGET_LAYER as TARGET_LAYER_NAME
from cxrtool.explain.scoring import CONNECTIVITY, MEAN_DEFINITION, Scored, localization_table, score_boxes
from cxrtool.layouts import LocalizationDir

EDGE_SLACK = 1.0  # pixels a box may overhang its image (the list's boxes are drawn by hand)


@dataclass(frozen=True)
class LocalizeResult:
    boxes: pd.DataFrame  # boxes.csv
    table: pd.DataFrame  # localization.csv
    counts: dict[str, int]
    missing_images: list[str]
    unreadable: list[tuple[str, str]]  # (image, error), listed in errors.csv
    seconds: float


@dataclass
class Selection:
    boxes: pd.DataFrame  # the boxes to score
    counts: dict[str, int]
    missing_images: list[str]
    unreadable: list[tuple[str, str]]


def select_boxes(
    boxes: pd.DataFrame, labels: tuple[str, ...], index: Any, *, splits: pd.DataFrame | None = None, split: str = "test"
) -> Selection:
    """The boxes to score: of the checkpoint's labels, in `split` when splits are given, with the image present.

    A present image's size is read from its header: a box outside it means these are not the images the boxes
    were drawn on (e.g. a resized cache), which is an error."""
    from cxrtool.data.images import ImageReadError, image_header

    counts = {"listed": len(boxes)}
    known = boxes["label"].isin(labels)
    counts["other_label"] = int((~known).sum())
    boxes = boxes[known]
    if splits is not None:
        chosen = set(splits.loc[splits["split"] == split, "image"])
        inside = boxes["image"].isin(chosen)
        counts["not_in_split"] = int((~inside).sum())
        boxes = boxes[inside]
    present = boxes["image"].map(lambda name: name in index)
    counts["missing_image"] = int((~present).sum())
    missing = sorted(set(boxes.loc[~present, "image"]))
    boxes = boxes[present]
    unreadable: list[tuple[str, str]] = []
    for name, group in boxes.groupby("image", sort=False):
        try:
            width, height, _ = image_header(index.path(name))
        except ImageReadError as e:
            unreadable.append((str(name), str(e)))
            continue
        x, y, w, h = (group[c].to_numpy(dtype=float) for c in ("x", "y", "w", "h"))
        over = group[
            (x < -EDGE_SLACK) | (y < -EDGE_SLACK) | (x + w > width + EDGE_SLACK) | (y + h > height + EDGE_SLACK)
        ]
        if len(over):
            raise InputError(
                f"a {over['label'].iloc[0]} box of {name} lies outside the image ({width}×{height} px at "
                f"{index.path(name)}): the boxes are in the original images' pixels; point --images at the original "
                "images, not a resized copy"
            )
    bad = {name for name, _ in unreadable}
    counts["unreadable"] = int(boxes["image"].isin(bad).sum())
    boxes = boxes[~boxes["image"].isin(bad)].reset_index(drop=True)
    counts["scored"] = len(boxes)
    return Selection(boxes=boxes, counts=counts, missing_images=missing, unreadable=unreadable)


def localize_run(
    ckpt: Path,
    bbox: Path,
    images: Path,
    out: Path,
    *,
    splits: Path | None = None,
    split: str = "test",
    map_threshold: float = 0.5,
    method: str = "gradcam",
    n_boot: int = 2000,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Any = None,
) -> LocalizeResult:
    """Score a checkpoint's heatmaps against the radiologists' boxes and write the localization directory."""
    from cxrtool.artifacts import replaced_dir
    from cxrtool.data.images import ImageIndex
    from cxrtool.data.splits import read_splits
    from cxrtool.evaluation.evaluate import check_out_dir
    from cxrtool.evaluation.inference import load_predictor
    from cxrtool.explain.boxes import read_bbox_list
    from cxrtool.explain.cam import check_method
    from cxrtool.explain.maps import Explainer
    from cxrtool.runtime.device import pick_device

    started = time.perf_counter()
    if not 0.0 < map_threshold <= 1.0:
        raise InputError(f"--map-threshold must lie in (0, 1], not {map_threshold}")
    if split not in ("train", "val", "test"):
        raise InputError(f"--split must be train, val or test, not {split!r}")
    if n_boot < 1:
        raise InputError(f"--bootstrap must be at least 1, not {n_boot}")
    check_method(method)
    boxes = read_bbox_list(bbox)
    predictor = load_predictor(ckpt, pick_device(device))
    labels = predictor.info.labels
    index = ImageIndex.build(images)
    selection = select_boxes(
        boxes, labels, index, splits=read_splits(splits) if splits is not None else None, split=split
    )
    if selection.boxes.empty:
        raise InputError(_nothing_to_score(selection, images, splits, split))
    check_out_dir(out, overwrite=overwrite)
    explainer = Explainer(predictor, method)
    try:
        scored = score_boxes(explainer, selection.boxes, index, map_threshold=map_threshold, progress=progress)
    finally:
        explainer.close()
    unreadable = selection.unreadable + scored.unreadable
    counts = {
        **selection.counts,
        "unreadable": selection.counts["unreadable"] + _boxes_of(selection.boxes, scored.unreadable),
    }
    counts["scored"] = len(scored.boxes)
    box_labels = [label for label in labels if label in set(boxes["label"])]
    table = localization_table(scored.boxes, box_labels, n_boot=n_boot, seed=seed)
    options = {"bbox": str(bbox), "images": str(images), "splits": None if splits is None else str(splits),
               "split": split if splits is not None else None, "method": method, "map_threshold": map_threshold,
               "bootstrap": n_boot, "seed": seed}  # fmt: skip
    config = _config(predictor, options, counts, selection.missing_images)
    with replaced_dir(out) as staged:  # an earlier --out is replaced only by a complete new one
        _write(staged, scored, table, config, unreadable, box_labels, index)
    return LocalizeResult(
        boxes=scored.boxes,
        table=table,
        counts=counts,
        missing_images=selection.missing_images,
        unreadable=unreadable,
        seconds=time.perf_counter() - started,
    )


def _config(predictor: Any, options: dict[str, Any], counts: dict[str, int], missing: list[str]) -> dict[str, Any]:
    return {
        "ckpt": str(predictor.info.path),
        "kind": predictor.info.kind,
        "input": predictor.info.input,
        **options,
        "target_layer": TARGET_LAYER_NAME,
        "connectivity": CONNECTIVITY,
        "mean": MEAN_DEFINITION,
        "device": str(predictor.device),
        "boxes": counts,
        "missing_images": missing,
    }


def _boxes_of(boxes: pd.DataFrame, unreadable: list[tuple[str, str]]) -> int:
    return int(boxes["image"].isin({name for name, _ in unreadable}).sum())


def _nothing_to_score(selection: Selection, images: Path, splits: Path | None, split: str) -> str:
    c = selection.counts
    parts = [f"{c['other_label']} of labels the checkpoint lacks"]
    if splits is not None:
        parts.append(f"{c['not_in_split']} not in the {split} split of {splits}")
    parts += [f"{c['missing_image']} whose image is not under {images} (--images)", f"{c['unreadable']} unreadable"]
    return f"no box to score: of {c['listed']} boxes, " + ", ".join(parts) + "; point --images at the dataset's images"


def _write(
    out: Path,
    scored: Scored,
    table: pd.DataFrame,
    config: dict[str, Any],
    unreadable: list[tuple[str, str]],
    labels: list[str],
    index: Any,
) -> None:
    from cxrtool.artifacts import provenance, write_csv, write_json
    from cxrtool.explain.examples import write_examples

    write_csv(out / LocalizationDir.BOXES, scored.boxes)
    write_csv(out / LocalizationDir.LOCALIZATION, table, float_format="%.6g")
    if unreadable:
        write_csv(out / LocalizationDir.ERRORS, pd.DataFrame(unreadable, columns=["image", "error"]))
    write_examples(out / LocalizationDir.EXAMPLES, scored.boxes, labels, scored.maps, index)
    write_json(out / LocalizationDir.CONFIG, provenance(config))
