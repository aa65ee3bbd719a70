"""Evaluation commands: `evaluate` (a checkpoint on a split) and `predict` (your own images, no labels)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cxrtool import layouts
from cxrtool.cli.app import command
from cxrtool.cli.config_options import options_from
from cxrtool.cli.options import Overwrite
from cxrtool.cli.output import emit_frame, log, progress
from cxrtool.config.evaluation import EvaluationConfig, InferenceConfig, ViewsConfig
from cxrtool.errors import InputError, PartialSuccess

Ckpt = Annotated[Path, typer.Option("--ckpt", help="Checkpoint: a run directory (its model.safetensors) or a file.")]


@command("evaluate")
@options_from(evaluation=EvaluationConfig, views=ViewsConfig, run=InferenceConfig)
def evaluate_cmd(
    ckpt: Ckpt,
    out: Annotated[Path, typer.Option("--out", help="Evaluation directory to write.")],
    splits: Annotated[Path, typer.Option("--splits", help="splits.csv written by `cxrtool split`.")],
    evaluation: EvaluationConfig,
    views: ViewsConfig,
    run: InferenceConfig,
    images: Annotated[Path | None, typer.Option("--images", help="Image folder (any layout).")] = None,
    latents: Annotated[
        Path | None,
        typer.Option(
            "--latents", help="Instead of --images: a `compress --size <crop>` store, for a joint checkpoint."
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Evaluate a classifier or joint checkpoint: per-label AUC with bootstrap intervals, AP, Youden points.

    Writes predictions.csv, targets.csv, metrics.csv, roc.png and config.json to --out and prints the table.

    Example:  cxrtool evaluate --ckpt runs/d121 --splits splits.csv --images data --out evals/d121
    """
    from cxrtool.evaluation.evaluate import evaluate_images, evaluate_latents

    if (images is None) == (latents is None):
        raise InputError("give exactly one of --images DIR and --latents STORE")
    if latents is not None and views.tta != "none":
        raise InputError("--tta needs images; a latent store holds one view per image")
    with progress("evaluate", None) as advance:
        if latents is not None:
            result = evaluate_latents(
                ckpt, splits, latents, out, evaluation=evaluation, run=run, overwrite=overwrite, progress=advance
            )
        else:
            assert images is not None  # exactly one of --images and --latents, checked above
            result = evaluate_images(
                ckpt, splits, images, out, evaluation=evaluation, views=views, run=run, overwrite=overwrite,
                progress=advance,
            )  # fmt: skip
    emit_frame(
        result.metrics.set_index("label"), index_name="label", title=f"{out}: {result.images} {evaluation.split} images"
    )
    log(f"evaluated {result.images} images in {result.seconds:.1f} s; files in {out}")


@command("predict")
@options_from(views=ViewsConfig, run=InferenceConfig)
def predict_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    ckpt: Ckpt,
    out: Annotated[Path, typer.Option("--out", help="CSV to write: image, then one probability per label.")],
    views: ViewsConfig,
    run: InferenceConfig,
    thresholds: Annotated[
        Path | None, typer.Option(help="An evaluation's metrics.csv: adds 0/1 findings at its Youden thresholds.")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Classify your own radiographs (PNG, JPEG or DICOM; no labels needed): one row of probabilities per image.

    An unreadable image (or a DICOM without pixels) is skipped and listed on stderr and in errors.csv beside --out
    (columns image, error); the others are predicted and the exit code is 3.

    Example:  cxrtool predict my_xrays/ --ckpt runs/d121 --out predictions.csv --thresholds evals/d121/metrics.csv
    """
    import pandas as pd

    from cxrtool.artifacts import ensure_new, write_csv
    from cxrtool.evaluation.predict import ERROR_COLUMNS, predict_files

    errors_csv = out.parent / layouts.ERRORS
    if errors_csv == out:
        raise InputError(f"--out {out}: {layouts.ERRORS} is where skipped images are listed; name the output otherwise")
    ensure_new(out, overwrite=overwrite)
    ensure_new(errors_csv, overwrite=overwrite, flag=f"{layouts.ERRORS} beside --out")
    errors: list[tuple[str, str]] = []
    start = time.perf_counter()
    with progress("predict", None) as advance:
        frame = predict_files(
            inputs, ckpt, thresholds=thresholds, views=views, run=run, progress=advance, errors=errors
        )
    write_csv(out, frame, float_format="%.9g")  # every float32 probability exactly
    log(f"wrote {out}: {len(frame)} images in {time.perf_counter() - start:.1f} s")
    if errors_csv.exists():
        errors_csv.unlink()  # --overwrite: an old list would be taken for this run's
    if errors:
        write_csv(errors_csv, pd.DataFrame(errors, columns=list(ERROR_COLUMNS)))
        for name, error in errors[:5]:
            log(f"skipped {name}: {error}")
        raise PartialSuccess(f"{len(errors)} image(s) could not be read and were skipped (listed in {errors_csv})")
