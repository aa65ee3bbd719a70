"""`cxrtool predict`: probabilities for a user's own radiographs, optionally thresholded at Youden points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cxrtool.config.evaluation import InferenceConfig, ViewsConfig
from cxrtool.data.images import is_image_file, list_image_files
from cxrtool.errors import InputError

ERROR_COLUMNS = ("image", "error")  # errors.csv beside the output: `image` as in the predictions


def collect_images(inputs: list[Path], skipped: list[tuple[str, str]] | None = None) -> tuple[list[str], list[Path]]:
    """(display names, paths): files as given, folders walked recursively (names relative to the folder). Subfolders
    that cannot be read (or loop) are appended to `skipped` as (name, why)."""
    names, paths = [], []
    for item in inputs:
        if item.is_dir():
            folders: list[tuple[str, str]] = []
            for rel in list_image_files(item, flag="IMAGES", skipped=folders):
                names.append(rel if len(inputs) == 1 else str(Path(item.name) / rel))
                paths.append(item / rel)
            if skipped is not None:
                skipped += [(rel if len(inputs) == 1 else str(Path(item.name) / rel), why) for rel, why in folders]
        elif item.is_file():
            if not is_image_file(item):
                raise InputError(f"{item} is not a PNG, JPEG or DICOM file")
            names.append(str(item))
            paths.append(item)
        else:
            raise InputError(f"{item} does not exist")
    if not paths:
        raise InputError(f"no PNG, JPEG or DICOM images found in {', '.join(map(str, inputs))}")
    return names, paths


def read_thresholds(path: Path, labels: tuple[str, ...]) -> dict[str, float]:
    from cxrtool.artifacts import read_csv_checked

    frame = read_csv_checked(path, ("label", "youden_threshold"), what="an evaluation's metrics.csv")
    table = dict(zip(frame["label"], frame["youden_threshold"]))
    missing = [label for label in labels if label not in table]
    if missing:
        raise InputError(f"--thresholds {path} has no threshold for {', '.join(missing)}")
    return {label: float(table[label]) for label in labels}


def predict_files(
    inputs: list[Path],
    ckpt: Path,
    *,
    thresholds: Path | None = None,
    views: ViewsConfig | None = None,
    run: InferenceConfig | None = None,
    progress: Any = None,
    errors: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """One row per image: `image`, the probabilities, `<label>_finding` with thresholds.

    An unreadable image stops the run (ImageReadError), unless `errors` is a list: then the image is left out of the
    frame and (its name, the message) appended there."""
    from cxrtool.data.dicom import set_dicom_window
    from cxrtool.evaluation.inference import load_predictor, predict_paths
    from cxrtool.runtime.device import pick_device
    from cxrtool.runtime.workers import default_workers

    views, run = views or ViewsConfig(), run or InferenceConfig(workers=0)
    set_dicom_window(run.dicom_window)  # before any worker starts: they read it from the environment
    predictor = load_predictor(ckpt, pick_device(run.device))
    labels = predictor.info.labels
    cuts = read_thresholds(thresholds, labels) if thresholds is not None else None
    names, paths = collect_images(inputs, errors)
    failed: list[tuple[int, str]] | None = [] if errors is not None else None
    probs = predict_paths(
        predictor,
        paths,
        tta=views.tta,
        average=views.tta_average,
        batch_size=run.batch_size,
        workers=default_workers() if run.workers is None else run.workers,
        progress=progress,
        errors=failed,
    )
    frame = pd.DataFrame(probs, columns=list(labels))
    frame.insert(0, "image", names)
    if failed:
        assert errors is not None  # `failed` is a list only when `errors` is
        for index, message in sorted(failed):
            errors.append((names[index], message.replace(str(paths[index]), names[index])))
        frame = frame.drop(index=[index for index, _ in failed]).reset_index(drop=True)
        probs = frame[list(labels)].to_numpy()
    if cuts is not None:
        for j, label in enumerate(labels):
            frame[f"{label}_finding"] = (probs[:, j] >= cuts[label]).astype(int)
    return frame
