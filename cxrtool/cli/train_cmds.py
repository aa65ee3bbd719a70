"""Training commands: `train-classifier` (stage 1), `train-ae` (stage 2), `train-joint` (stage 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.options import (
    Amp,
    BatchSize,
    Compile,
    Device,
    DicomWindow,
    Epochs,
    Factor,
    Images,
    Keep,
    LimitTrain,
    LimitVal,
    Lr,
    MaxSteps,
    Overwrite,
    Patience,
    Pretrained,
    Resume,
    RunOut,
    Seed,
    Splits,
    WeightDecay,
    Weights,
    Workers,
    use_dicom_window,
)
from cxrtool.cli.output import emit_frame, log
from cxrtool.errors import InputError

_NOT_OPTIONS = {"ctx", "out", "resume", "overwrite"}


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise InputError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _epoch_line(row: dict[str, Any]) -> None:
    parts = [f"epoch {row['epoch']}", f"lr {row['lr']:.2g}", f"train_loss {row['train_loss']:.4f}"]
    parts.append(f"val_loss {row['val_loss']:.4f}")
    for key in ("val_auc_mean", "val_psnr", "val_mse"):
        if key in row:
            parts.append(f"{key} {row[key]:.4f}")
    rate = row["images_per_s"]
    parts.append(
        f"{rate:.0f} img/s, {row['seconds']:.1f} s" if rate == rate else f"no training, {row['seconds']:.1f} s"
    )
    log("  ".join(parts))


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def run_training(ctx: typer.Context, kind: str, values: dict[str, Any]) -> None:
    """Shared by the three commands: fresh run or resume, then the history table on stdout."""
    from cxrtool.parallel import default_workers
    from cxrtool.training.stages import merge_resume, train

    out, resume, overwrite = values["out"], values["resume"], values["overwrite"]
    options = {k: v for k, v in values.items() if k not in _NOT_OPTIONS}
    for key in ("splits", "images", "weights", "classifier", "autoencoder"):
        if options.get(key) is not None:
            options[key] = str(options[key])
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise InputError("--resume RUN continues in RUN; leave --out out or give the same directory")
        given = {k: v for k, v in options.items() if _from_command_line(ctx, k)}
        options, run = merge_resume(Path(resume), given, kind), Path(resume)
    else:
        if out is None:
            raise InputError("--out RUN is required (or --resume RUN to continue a run)")
        for key in ("splits", "images"):
            if options.get(key) is None:
                raise InputError(f"--{key} is required")
        run = Path(out)
    if options.get("workers") is None:
        options["workers"] = default_workers()
    use_dicom_window(options.get("dicom_window") or "file")  # a resumed run reads as it started (older runs: file)
    history = train(kind, options, run, resume=resume is not None, overwrite=overwrite, report_epoch=_epoch_line)
    if history:
        import pandas as pd

        frame = pd.DataFrame(history).set_index("epoch")
        keep = [c for c in frame.columns if not c.startswith("val_auc_") or c == "val_auc_mean"]
        emit_frame(frame[keep], index_name="epoch", title=f"{run} (all columns in {run}/history.csv)")


@command("train-classifier")
def train_classifier_cmd(
    ctx: typer.Context,
    splits: Splits = None,
    images: Images = None,
    out: RunOut = None,
    resume: Resume = None,
    augment: Annotated[str, typer.Option(help="bl5 (the paper's), fmix (the ablation) or none.")] = "bl5",
    resize: Annotated[int, typer.Option(help="Resize side before cropping.")] = 256,
    crop: Annotated[int, typer.Option(help="Training crop side; validation resizes to it (at least 29).")] = 224,
    pretrained: Pretrained = True,
    weights: Weights = None,
    fmix_alpha: Annotated[float, typer.Option(help="FMix: λ ~ Beta(α, α).")] = 1.0,
    fmix_decay: Annotated[float, typer.Option(help="FMix: spectrum decay power δ.")] = 3.0,
    fmix_mask: Annotated[str, typer.Option(help="FMix masks: paper (isotropic) or reference (its code's).")] = "paper",
    keep: Keep = "loss",
    epochs: Epochs = 20,
    batch_size: BatchSize = 16,
    lr: Lr = 1e-4,
    weight_decay: WeightDecay = 1e-5,
    patience: Patience = 5,
    factor: Factor = 0.1,
    workers: Workers = None,
    seed: Seed = 0,
    device: Device = "auto",
    amp: Amp = True,
    compile: Compile = False,
    max_steps: MaxSteps = None,
    limit_train: LimitTrain = None,
    limit_val: LimitVal = None,
    dicom_window: DicomWindow = "file",
    overwrite: Overwrite = False,
) -> None:
    """Stage 1: train DenseNet121 on resized images ("D121 BL5"), or the FMix ablation with --augment fmix.

    Example:  cxrtool train-classifier --splits s.csv --images data --out runs/d121 --no-pretrained --crop 56
    """
    _choice(augment, ("bl5", "fmix", "none"), "--augment")
    _choice(fmix_mask, ("paper", "reference"), "--fmix-mask")
    _choice(keep, ("loss", "auc"), "--keep")
    values = dict(locals())
    values.pop("ctx")
    run_training(ctx, "classifier", values)


@command("train-ae")
def train_ae_cmd(
    ctx: typer.Context,
    splits: Splits = None,
    images: Images = None,
    out: RunOut = None,
    resume: Resume = None,
    patch_size: Annotated[int, typer.Option(help="Side of the random full-resolution patches (multiple of 4).")] = 128,
    patches_per_image: Annotated[int, typer.Option(help="Random patches per image per epoch.", min=1)] = 16,
    init: Annotated[str, typer.Option(help="box (a 4x box average to start from) or random (the paper's).")] = "box",
    patch_source: Annotated[
        str, typer.Option(help="full (full resolution) or downscaled (from 256² images).")
    ] = "full",
    epochs: Epochs = 20,
    batch_size: BatchSize = 16,
    lr: Lr = 1e-4,
    weight_decay: WeightDecay = 1e-5,
    patience: Patience = 5,
    factor: Factor = 0.1,
    workers: Workers = None,
    seed: Seed = 0,
    device: Device = "auto",
    amp: Amp = True,
    compile: Compile = False,
    max_steps: MaxSteps = None,
    limit_train: LimitTrain = None,
    limit_val: LimitVal = None,
    dicom_window: DicomWindow = "file",
    overwrite: Overwrite = False,
) -> None:
    """Stage 2: train the 1,025-parameter autoencoder on random patches (MSE).

    --batch-size counts patches: the loader reads batch-size images, cuts patches-per-image patches from each, and
    makes patches-per-image steps of them, step j taking every image's j-th patch (batch-size images per batch).

    Example:  cxrtool train-ae --splits splits.csv --images data --out runs/ae --epochs 3 --patch-size 64
    """
    _choice(init, ("box", "random"), "--init")
    _choice(patch_source, ("full", "downscaled"), "--patch-source")
    values = dict(locals())
    values.pop("ctx")
    run_training(ctx, "autoencoder", values)


@command("train-joint")
def train_joint_cmd(
    ctx: typer.Context,
    splits: Splits = None,
    images: Images = None,
    out: RunOut = None,
    resume: Resume = None,
    classifier: Annotated[
        Path | None, typer.Option(help="Stage-1 run directory or file (its DenseNet121 starts stage 3).")
    ] = None,
    autoencoder: Annotated[
        Path | None, typer.Option(help="Stage-2 run directory or file (its encoder/decoder start stage 3).")
    ] = None,
    crop: Annotated[int, typer.Option(help="RandomCrop side of the full image (latent = crop/4, at least 116).")] = 896,
    lam: Annotated[float, typer.Option(help="λ: loss = λ·BCE + (1−λ)·MSE.", min=0.0, max=1.0)] = 0.9,
    schedule: Annotated[
        str,
        typer.Option(help="plateau (ReduceLROnPlateau) or step (the authors': ÷10 at the start of epochs 5, 10, 15)."),
    ] = "plateau",
    keep: Keep = "loss",
    pretrained: Pretrained = True,
    weights: Weights = None,
    epochs: Epochs = 20,
    batch_size: BatchSize = 16,
    lr: Lr = 1e-4,
    weight_decay: WeightDecay = 1e-5,
    patience: Patience = 5,
    factor: Factor = 0.1,
    workers: Workers = None,
    seed: Seed = 0,
    device: Device = "auto",
    amp: Amp = True,
    compile: Compile = False,
    max_steps: MaxSteps = None,
    limit_train: LimitTrain = None,
    limit_val: LimitVal = None,
    dicom_window: DicomWindow = "file",
    overwrite: Overwrite = False,
) -> None:
    """Stage 3: train the autoencoder and DenseNet121 end to end (the AECNN), classifying the latent.

    Example:  cxrtool train-joint --splits s.csv --images data --classifier r/d121 --autoencoder r/ae --out r/aecnn
    """
    _choice(schedule, ("plateau", "step"), "--schedule")
    _choice(keep, ("loss", "auc"), "--keep")
    values = dict(locals())
    values.pop("ctx")
    run_training(ctx, "joint", values)
