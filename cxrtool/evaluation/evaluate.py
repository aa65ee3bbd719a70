"""`cxrtool evaluate`: probabilities on a split, per-label AUC with bootstrap intervals, and the files of SPEC §5."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrtool import __version__
from cxrtool.artifacts import replaced_dir
from cxrtool.config.evaluation import EvaluationConfig, InferenceConfig, ViewsConfig
from cxrtool.evaluation.eval_dir import MEAN, METRIC_COLUMNS, write_evaluation
from cxrtool.layouts import EvaluationDir


@dataclass
class EvaluationResult:
    metrics: pd.DataFrame
    images: int
    seconds: float


def metrics_table(
    labels: tuple[str, ...], targets: np.ndarray, probs: np.ndarray, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """One row per label, then Mean: AUC with a seeded bootstrap 95% interval, counts, AP, Youden's point."""
    from cxrtool.stats.metrics import average_precision, bootstrap_auc, youden

    boot = bootstrap_auc(targets, probs, n_boot=n_boot, seed=seed)
    ap = np.atleast_1d(average_precision(targets, probs))
    point = youden(targets, probs)
    rows: list[dict[str, Any]] = []
    for j, label in enumerate(labels):
        pos = int(targets[:, j].sum())
        rows.append(
            {
                "label": label,
                "auc": boot["auc"][j],
                "auc_ci_low": boot["ci_low"][j],
                "auc_ci_high": boot["ci_high"][j],
                "n_pos": pos,
                "n_neg": len(targets) - pos,
                "ap": ap[j],
                "youden_threshold": np.atleast_1d(point["threshold"])[j],
                "sensitivity": np.atleast_1d(point["sensitivity"])[j],
                "specificity": np.atleast_1d(point["specificity"])[j],
                "n_labels": math.nan,
            }
        )
    valid_ap = ap[~np.isnan(np.asarray(boot["auc"], dtype=float))]
    rows.append(
        {
            "label": MEAN,
            "auc": boot["mean_auc"],
            "auc_ci_low": boot["mean_ci_low"],
            "auc_ci_high": boot["mean_ci_high"],
            "ap": float(np.nanmean(valid_ap)) if valid_ap.size else math.nan,
            "n_labels": int(boot["n_labels"]),
        }
    )
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    frame["n_labels"] = frame["n_labels"].astype("Int64")
    frame[["n_pos", "n_neg"]] = frame[["n_pos", "n_neg"]].astype("Int64")
    frame.attrs["bootstrap_mean_skipped"] = int(boot["mean_skipped"])  # incomplete resamples, out of the Mean's CI
    return frame


def plot_roc(path: Path, labels: tuple[str, ...], targets: np.ndarray, probs: np.ndarray, aucs: np.ndarray) -> None:
    """All labels' ROC curves on one readable figure (a 4×4 grid with the AUC in each title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from cxrtool.artifacts import atomic_path

    cols = 4
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, j in zip(axes.flat, range(len(labels))):
        ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
        if 0 < targets[:, j].sum() < len(targets):
            fpr, tpr, _ = roc_curve(targets[:, j], probs[:, j])
            ax.plot(fpr, tpr, lw=1.6)
        ax.set_title(f"{labels[j]}  AUC {aucs[j]:.3f}" if not math.isnan(aucs[j]) else f"{labels[j]}  (one class)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("1 - specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def finish_evaluation(
    out: Path,
    *,
    images: np.ndarray,
    labels: tuple[str, ...],
    probs: np.ndarray,
    targets: np.ndarray,
    n_boot: int,
    seed: int,
    config: dict[str, Any],
    started: float,
) -> EvaluationResult:
    """Metrics, files and the ROC figure for a finished set of predictions.

    The models' probabilities are float32; they are scored as such, and predictions.csv writes them with 9
    significant digits, which round-trip every float32 exactly, so metrics.csv can be recomputed from
    predictions.csv and targets.csv (by scikit-learn, say) to the last digit."""
    from cxrtool.log import warn

    probs = np.asarray(probs, dtype=np.float32).astype(np.float64)
    metrics = metrics_table(labels, targets, probs, n_boot=n_boot, seed=seed)
    skipped = metrics.attrs["bootstrap_mean_skipped"]
    if skipped:
        warn(
            f"{skipped} of the {n_boot} bootstrap resamples lack a class of some label; the Mean's interval uses "
            f"the {n_boot - skipped} complete ones (each label's interval uses those where it has both classes)"
        )
    seconds = time.perf_counter() - started
    config = {
        **config,
        "bootstrap_mean_skipped": skipped,
        "images": len(images),
        "seconds": round(seconds, 2),
        "cxrtool_version": __version__,
    }
    with replaced_dir(out) as staged:  # an earlier evaluation in --out is replaced only by a complete new one
        write_evaluation(
            staged, images=images, labels=labels, probs=probs, targets=targets, metrics=metrics, config=config
        )
        aucs = metrics["auc"].to_numpy(dtype=float)[: len(labels)]
        plot_roc(staged / EvaluationDir.ROC, labels, targets, probs, aucs)
    return EvaluationResult(metrics=metrics, images=len(images), seconds=seconds)


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an --out that holds anything, unless --overwrite; nothing is written or removed here."""
    from cxrtool.errors import InputError

    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(f"--out {out} already exists; pass --overwrite to replace it or choose another folder")


def evaluate_images(
    ckpt: Path,
    splits_csv: Path,
    images_dir: Path,
    out: Path,
    *,
    evaluation: EvaluationConfig | None = None,
    views: ViewsConfig | None = None,
    run: InferenceConfig | None = None,
    overwrite: bool = False,
    progress: Any = None,
) -> EvaluationResult:
    """Evaluate a classifier or joint checkpoint on one split of a splits.csv, from the images."""
    from cxrtool.data.datasets import resolve_paths
    from cxrtool.data.dicom import set_dicom_window
    from cxrtool.data.images import ImageIndex
    from cxrtool.errors import InputError
    from cxrtool.evaluation.inference import load_predictor, predict_paths
    from cxrtool.runtime.device import pick_device
    from cxrtool.runtime.workers import default_workers

    evaluation, views, run = evaluation or EvaluationConfig(), views or ViewsConfig(), run or InferenceConfig(workers=0)
    set_dicom_window(run.dicom_window)  # before any worker starts: they read it from the environment
    started = time.perf_counter()
    predictor = load_predictor(ckpt, pick_device(run.device))
    rows = _rows(splits_csv, evaluation)
    missing = [label for label in predictor.info.labels if label not in rows.columns]
    if missing:
        raise InputError(f"{splits_csv} lacks the checkpoint's label column(s) {', '.join(missing)}")
    paths = resolve_paths(rows, ImageIndex.build(images_dir))
    check_out_dir(out, overwrite=overwrite)
    workers = default_workers() if run.workers is None else run.workers
    probs = predict_paths(
        predictor, paths, tta=views.tta, average=views.tta_average, batch_size=run.batch_size, workers=workers,
        progress=progress,
    )  # fmt: skip
    from cxrtool.data.dicom import dicom_window

    specific = {"images": str(images_dir), "tta": views.tta, "tta_average": views.tta_average}
    specific["dicom_window"] = dicom_window()
    return _finish(out, predictor, rows, probs, specific, splits_csv=splits_csv, evaluation=evaluation,
                   started=started)  # fmt: skip


def evaluate_latents(
    ckpt: Path,
    splits_csv: Path,
    store_dir: Path,
    out: Path,
    *,
    evaluation: EvaluationConfig | None = None,
    run: InferenceConfig | None = None,
    overwrite: bool = False,
    progress: Any = None,
) -> EvaluationResult:
    """Evaluate a joint checkpoint straight from a latent store (`compress --size <crop>`): no decoding, no encoder.

    The store must hold this checkpoint's encoder (same identity) at this checkpoint's crop size; each split image is
    found in the store by its file name."""
    import torch

    from cxrtool.compression.store import check_identity, open_store
    from cxrtool.errors import InputError
    from cxrtool.evaluation.inference import load_predictor
    from cxrtool.log import a
    from cxrtool.runtime.device import pick_device

    evaluation, run = evaluation or EvaluationConfig(), run or InferenceConfig(workers=0)
    batch_size = run.batch_size
    started = time.perf_counter()
    predictor = load_predictor(ckpt, pick_device(run.device))
    if predictor.info.kind != "joint":
        raise InputError(
            f"--latents needs a joint checkpoint (stage 3); {predictor.info.path} is {a(predictor.info.kind)}"
        )
    store = open_store(store_dir)
    check_identity(store, predictor.info.raw.get("cxrtool.encoder_sha256", ""), flag="--ckpt", path=predictor.info.path)
    if store.size != predictor.crop:
        raise InputError(
            f"the store {store_dir} was encoded at {'full resolution' if store.size is None else store.size}, but "
            f"{predictor.info.path} classifies {predictor.crop}² images; encode with `cxrtool compress --size "
            f"{predictor.crop}`"
        )
    rows = _rows(splits_csv, evaluation)
    keys = _store_keys(store, rows["image"].tolist(), store_dir)
    check_out_dir(out, overwrite=overwrite)
    probs = np.zeros((len(keys), len(predictor.info.labels)))
    model = predictor.model
    chunks = [keys[start : start + batch_size] for start in range(0, len(keys), batch_size)]
    # The next batch is read (and a coded store's PNGs or WebPs decoded, ~0.7 ms a latent) while this one is
    # classified: reading costs no wall time, coded or not.
    with torch.no_grad(), ThreadPoolExecutor(1) as reader:
        ahead = reader.submit(store.read, chunks[0]) if chunks else None
        for i, chunk in enumerate(chunks):
            latents = ahead.result()  # type: ignore[union-attr]
            ahead = reader.submit(store.read, chunks[i + 1]) if i + 1 < len(chunks) else None
            z = torch.from_numpy(np.stack(list(latents.values())))[:, None].to(predictor.device)
            with torch.autocast(predictor.device.type, dtype=torch.bfloat16, enabled=predictor.device.type == "cuda"):
                logits = model.classify_latent(z).float()  # type: ignore[operator]  # a JointModel (kind checked)
            start = i * batch_size
            probs[start : start + len(chunk)] = torch.sigmoid(logits).cpu().numpy()
            if callable(progress):
                progress(len(chunk))
    specific = {"latents": str(store_dir), "latent_dtype": store.dtype, "tta": "none"}
    return _finish(out, predictor, rows, probs, specific, splits_csv=splits_csv, evaluation=evaluation,
                   started=started)  # fmt: skip


def _rows(splits_csv: Path, evaluation: EvaluationConfig) -> pd.DataFrame:
    """The split's rows of splits.csv, or the seeded subset of them that --limit asks for."""
    from cxrtool.data.datasets import rows_for
    from cxrtool.data.splits import read_splits

    split, limit = evaluation.split, evaluation.limit
    return rows_for(read_splits(splits_csv), split, limit=limit, seed=evaluation.seed, path=splits_csv)


def _finish(
    out: Path,
    predictor: Any,
    rows: Any,
    probs: np.ndarray,
    specific: dict[str, Any],
    *,
    splits_csv: Path,
    evaluation: EvaluationConfig,
    started: float,
) -> EvaluationResult:
    """The config shared by both evaluation paths, then metrics and files."""
    from cxrtool.data.datasets import label_matrix

    config = {
        "ckpt": str(predictor.info.path),
        "kind": predictor.info.kind,
        "checkpoint_version": predictor.info.version,
        "encoder_sha256": predictor.info.raw.get("cxrtool.encoder_sha256"),
        "input": predictor.info.input,
        "splits": str(splits_csv),
        "split": evaluation.split,
        "limit": evaluation.limit,
        **specific,
        "bootstrap": evaluation.bootstrap,
        "seed": evaluation.seed,
        "device": str(predictor.device),
    }
    return finish_evaluation(
        out,
        images=rows["image"].to_numpy(dtype=str),
        labels=predictor.info.labels,
        probs=probs,
        targets=label_matrix(rows, predictor.info.labels).astype(np.int8),
        n_boot=evaluation.bootstrap,
        seed=evaluation.seed,
        config=config,
        started=started,
    )


def _store_keys(store: Any, names: list[str], store_dir: Path) -> list[str]:
    """The store key of each image name; a name missing or held twice (two folders) is an error."""
    from cxrtool.errors import InputError

    by_name = store.manifest.groupby("image")["key"].agg(list).to_dict()
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(
            f"{len(missing)} image(s) of the split are not in the store {store_dir}, e.g. {', '.join(missing[:3])}; "
            "compress the folder that holds them"
        )
    twice = [n for n in names if len(by_name[n]) > 1]
    if twice:
        raise InputError(f"{twice[0]} is in the store {store_dir} more than once: {', '.join(by_name[twice[0]])}")
    return [by_name[n][0] for n in names]
