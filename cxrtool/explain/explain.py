"""`cxrtool explain`: heatmaps over a user's radiographs, in their own pixels (SPEC §5, Explanations and localization).

DIR/<image>_<label>.png  the radiograph, the label's map over it, a colour bar, label and probability in a corner
DIR/heatmaps.safetensors float16 maps keyed `<image>/<label>` (split at the last /), each divided by its maximum at
                         the original's resolution (so ≤ 1) and stored at the original's aspect with the longer side
                         --map-size (never enlarged); the
                         metadata `cxrtool.heatmaps` lists per key the image, label, original width and height, map
                         size, the map's raw maximum and the probability
DIR/explain.csv          image, label, probability, peak_x, peak_y (the map's maximum, original-image pixels from
                         the top-left corner, empty for an all-zero map), overlay (the PNG's name)
DIR/config.json          checkpoint, method, target layer, labels, sizes, version
DIR/errors.csv           images that could not be read (the command then exits 3)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrtool.errors import InputError
from cxrtool.explain.boxes import LABEL_ALIASES
from cxrtool.layouts import ExplanationDir

EXPLAIN_COLUMNS = ("image", "label", "probability", "peak_x", "peak_y", "overlay")


@dataclass(frozen=True)
class ExplainResult:
    table: pd.DataFrame  # explain.csv
    images: int  # explained
    skipped: list[tuple[str, str]]  # (image or folder, error), as in errors.csv
    seconds: float


def label_indices(spec: str | None, labels: Sequence[str], *, flag: str = "--labels") -> list[int] | None:
    """Comma-separated label names (or `all`) as indices into the checkpoint's labels; None when not given."""
    if spec is None:
        return None
    if spec.strip().lower() == "all":
        return list(range(len(labels)))
    names = [LABEL_ALIASES.get(n.strip(), n.strip()) for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in labels]
    if unknown or not names:
        raise InputError(
            f"{flag} {spec!r}: unknown label(s) {', '.join(unknown) or '(none given)'}; the checkpoint's "
            f"labels are {', '.join(labels)} (or give 'all')"
        )
    return list(dict.fromkeys(labels.index(n) for n in names))


def output_stems(names: Sequence[str]) -> list[str]:
    """File-name stems for the overlays: the file name without its suffix, or, where two inputs share one, the
    whole name with path separators as `__`."""
    plain = [Path(n).stem for n in names]
    if len(set(plain)) == len(plain):
        return plain
    return [str(Path(n).with_suffix("")).lstrip("/\\").replace("/", "__").replace("\\", "__") for n in names]


def explain_files(
    inputs: list[Path],
    ckpt: Path,
    out: Path,
    *,
    labels: str | None = None,
    top: int = 3,
    method: str = "gradcam",
    map_size: int = 256,
    device: str = "auto",
    overwrite: bool = False,
    progress: Any = None,
) -> ExplainResult:
    """Heatmaps for the chosen labels (default: each image's `top` most probable) of every image given."""
    from cxrtool.evaluation.inference import load_predictor
    from cxrtool.evaluation.predict import collect_images
    from cxrtool.explain.cam import check_method
    from cxrtool.runtime.device import pick_device

    check_method(method)
    predictor = load_predictor(ckpt, pick_device(device))
    folders: list[tuple[str, str]] = []  # unreadable subfolders, reported with the unreadable images
    names, paths = collect_images(inputs, folders)
    unique = dict(zip(names, paths))  # a file given twice is explained once
    names, paths = list(unique), list(unique.values())
    return explain_images(predictor, names, paths, out, labels=labels, top=top, method=method, map_size=map_size,
                          overwrite=overwrite, progress=progress, skipped=folders)  # fmt: skip


def explain_images(
    predictor: Any,
    names: list[str],
    paths: list[Path],
    out: Path,
    *,
    labels: str | None = None,
    top: int = 3,
    method: str = "gradcam",
    map_size: int = 256,
    overwrite: bool = False,
    progress: Any = None,
    skipped: list[tuple[str, str]] | None = None,
) -> ExplainResult:
    """`explain_files` for a loaded predictor (`cxrtool.evaluation.inference.Predictor`) and resolved image paths."""
    from cxrtool.artifacts import replaced_dir
    from cxrtool.evaluation.evaluate import check_out_dir
    from cxrtool.explain.cam import TARGET_LAYER, check_method

    started = time.perf_counter()
    check_method(method)
    if top < 1 or map_size < 8:
        raise InputError("--top must be at least 1 and --map-size at least 8")
    chosen = label_indices(labels, predictor.info.labels)
    check_out_dir(out, overwrite=overwrite)
    with replaced_dir(out) as staged:  # an earlier --out is replaced only by a complete new one
        outputs = _Outputs(staged, method=method, kind=predictor.info.kind, map_size=map_size)
        skipped = [*(skipped or []), *_explain_all(predictor, names, paths, outputs, chosen, top, method, progress)]
        if not outputs.rows:
            raise InputError(f"none of the {len(paths)} image(s) could be read: {skipped[0][0]}: {skipped[0][1]}")
        table = pd.DataFrame(outputs.rows, columns=list(EXPLAIN_COLUMNS))
        table[["peak_x", "peak_y"]] = table[["peak_x", "peak_y"]].astype("Int64")
        config = {
            "ckpt": str(predictor.info.path),
            "kind": predictor.info.kind,
            "input": predictor.info.input,
            "method": method,
            "target_layer": TARGET_LAYER,
            "labels": labels or f"top {top}",
            "map_size": map_size,
            "dicom_window": _dicom_window(),
            "device": str(predictor.device),
            "images": int(table["image"].nunique()),
            "skipped": len(skipped),
        }
        _write(staged, table, outputs.tensors, outputs.entries, config, skipped)
    return ExplainResult(
        table=table, images=int(table["image"].nunique()), skipped=skipped, seconds=time.perf_counter() - started
    )


class _Outputs:
    """What `explain` accumulates: explain.csv rows, the stored maps and their metadata; overlays go straight out."""

    def __init__(self, out: Path, *, method: str, kind: str, map_size: int) -> None:
        self.out, self.map_size = out, map_size
        self.caption = f"{method} · {kind}"
        self.rows: list[dict[str, Any]] = []
        self.tensors: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []

    def add(self, name: str, stem: str, img: Any, label: str, probability: float, heatmap: Any) -> None:
        import torch

        from cxrtool.explain.figures import draw_overlay
        from cxrtool.explain.geometry import fitted_size, peak

        full = heatmap.render()
        top = float(full.max())
        where = peak(full)
        overlay = f"{stem}_{label}.png"
        draw_overlay(self.out / overlay, img, heatmap, label=label, probability=probability, peak=where,
                     method=self.caption)  # fmt: skip
        width, height = fitted_size(heatmap.width, heatmap.height, self.map_size)
        key = f"{name}/{label}"
        self.tensors[key] = torch.from_numpy(
            (heatmap.render(width, height) / (top if top > 0 else 1.0)).astype(np.float16)
        )
        self.entries.append({"key": key, "image": name, "label": label, "width": heatmap.width,
                             "height": heatmap.height, "map_width": width, "map_height": height, "max": top,
                             "probability": probability})  # fmt: skip
        x, y = where if where is not None else (None, None)
        self.rows.append({"image": name, "label": label, "probability": probability, "peak_x": x, "peak_y": y,
                          "overlay": overlay})  # fmt: skip


def _explain_all(
    predictor: Any,
    names: list[str],
    paths: list[Path],
    outputs: _Outputs,
    chosen: list[int] | None,
    top: int,
    method: str,
    progress: Any,
) -> list[tuple[str, str]]:
    """Fill `outputs` image by image; returns the images that could not be read, with the reason."""
    from cxrtool.data.datasets import read_image
    from cxrtool.data.images import ImageReadError
    from cxrtool.explain.maps import Explainer

    explainer = Explainer(predictor, method)
    skipped: list[tuple[str, str]] = []
    try:
        for name, path, stem in zip(names, paths, output_stems(names)):
            try:
                img = read_image(path)
            except ImageReadError as e:
                skipped.append((name, str(e)))
                continue
            maps = explainer(img, chosen, top=top)
            for j, heatmap in maps.heatmaps.items():
                outputs.add(name, stem, img, explainer.labels[j], float(maps.probs[j]), heatmap)
            if callable(progress):
                progress(1)
    finally:
        explainer.close()
    return skipped


def _dicom_window() -> str:
    from cxrtool.data.dicom import dicom_window

    return dicom_window()


def _write(
    out: Path,
    table: pd.DataFrame,
    tensors: dict[str, Any],
    entries: list[dict[str, Any]],
    config: dict[str, Any],
    skipped: list[tuple[str, str]],
) -> None:
    from safetensors.torch import save

    from cxrtool import __version__
    from cxrtool.artifacts import atomic_path, provenance, write_csv, write_json

    meta = {
        "cxrtool.kind": "heatmaps",
        "cxrtool.version": __version__,
        "cxrtool.method": str(config["method"]),
        "cxrtool.target_layer": str(config["target_layer"]),
        "cxrtool.map_size": str(config["map_size"]),
        "cxrtool.heatmaps": json.dumps(entries),
    }
    with atomic_path(out / ExplanationDir.HEATMAPS) as tmp:
        tmp.write_bytes(save(tensors, metadata=meta))
    write_csv(out / ExplanationDir.TABLE, table, float_format="%.6g")
    if skipped:
        write_csv(out / ExplanationDir.ERRORS, pd.DataFrame(skipped, columns=["image", "error"]))
    write_json(out / ExplanationDir.CONFIG, provenance(config))
