"""The evaluation directory (SPEC §5), defined once: `evaluate` writes it, `compare` and `info` read it.

predictions.csv  image, then one probability column per label, named exactly as the label
targets.csv      image and the labels (0/1)
metrics.csv      label, auc, auc_ci_low, auc_ci_high, n_pos, n_neg, ap, youden_threshold, sensitivity,
                 specificity, n_labels — one row per label in stored order, then label=Mean
roc.png          ROC curves of every label
config.json      how the evaluation was made (checkpoint, split, TTA, bootstrap, seed, version)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrtool.artifacts import read_csv_checked, read_json, write_csv, write_json
from cxrtool.errors import InputError
from cxrtool.layouts import EvaluationDir

METRIC_COLUMNS = (
    "label",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "n_pos",
    "n_neg",
    "ap",
    "youden_threshold",
    "sensitivity",
    "specificity",
    "n_labels",
)
MEAN = "Mean"


@dataclass
class Evaluation:
    path: Path
    labels: tuple[str, ...]
    images: np.ndarray  # (n,) image names, in file order
    probs: np.ndarray  # (n, L)
    targets: np.ndarray  # (n, L) 0/1
    metrics: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)


def read_evaluation(path: Path) -> Evaluation:
    """Read and check an evaluation directory; predictions and targets are aligned by image."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} is not an evaluation directory (written by `cxrtool evaluate --out`)")
    what = "an evaluation file written by `cxrtool evaluate`"
    metrics = read_csv_checked(path / EvaluationDir.METRICS, METRIC_COLUMNS, what=what)
    labels = tuple(str(x) for x in metrics["label"] if x != MEAN)
    predictions = read_csv_checked(path / EvaluationDir.PREDICTIONS, ("image", *labels), what=what)
    targets = read_csv_checked(path / EvaluationDir.TARGETS, ("image", *labels), what=what)
    if not predictions["image"].is_unique:
        raise InputError(f"{path / EvaluationDir.PREDICTIONS}: an image appears twice")
    merged = predictions[["image", *labels]].merge(targets[["image", *labels]], on="image", suffixes=("", "_y"))
    if len(merged) != len(predictions) or len(merged) != len(targets):
        raise InputError(f"{path}: {EvaluationDir.PREDICTIONS} and {EvaluationDir.TARGETS} list different images")
    config = read_json(path / EvaluationDir.CONFIG) if (path / EvaluationDir.CONFIG).is_file() else {}
    return Evaluation(
        path=path,
        labels=labels,
        images=merged["image"].to_numpy(dtype=str),
        probs=merged[list(labels)].to_numpy(dtype=float),
        targets=merged[[f"{label}_y" for label in labels]].to_numpy(dtype=np.int8),
        metrics=metrics,
        config=config,
    )


def write_evaluation(
    path: Path,
    *,
    images: np.ndarray,
    labels: tuple[str, ...],
    probs: np.ndarray,
    targets: np.ndarray,
    metrics: pd.DataFrame,
    config: dict[str, Any],
) -> None:
    """Write the CSVs and config.json (roc.png is drawn separately)."""
    path.mkdir(parents=True, exist_ok=True)
    predictions = pd.DataFrame(probs, columns=list(labels))
    predictions.insert(0, "image", images)
    truth = pd.DataFrame(targets.astype(np.int8), columns=list(labels))
    truth.insert(0, "image", images)
    # 9 significant digits: every float32 probability (and threshold) reads back as itself, so the metrics can be
    # recomputed from these files exactly
    write_csv(path / EvaluationDir.PREDICTIONS, predictions, float_format="%.9g")
    write_csv(path / EvaluationDir.TARGETS, truth)
    write_csv(path / EvaluationDir.METRICS, metrics[list(METRIC_COLUMNS)], float_format="%.9g")
    write_json(path / EvaluationDir.CONFIG, config)
