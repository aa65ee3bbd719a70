"""Training commands: `train-classifier` (stage 1), `train-ae` (stage 2), `train-joint` (stage 3).

Their options are the fields of `cxrtool.config.training`'s dataclasses, declared there once."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.config_options import given_on_command_line, options_from
from cxrtool.cli.options import Overwrite, Resume, RunOut, use_dicom_window
from cxrtool.cli.output import emit_frame, log
from cxrtool.config.training import (
    AutoencoderConfig,
    ClassifierConfig,
    DataConfig,
    JointConfig,
    LoopConfig,
    StageConfig,
    TrainConfig,
)
from cxrtool.errors import InputError


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


def run_training(
    ctx: typer.Context,
    config: TrainConfig,
    *,
    out: Path | None,
    resume: Path | None,
    overwrite: bool,
) -> None:
    """Shared by the three commands: fresh run or resume, then the history table on stdout."""
    from cxrtool.runtime.workers import default_workers
    from cxrtool.training.stages import resume_config, train

    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise InputError("--resume RUN continues in RUN; leave --out out or give the same directory")
        options = config.options()
        given = {name: options[name] for name in given_on_command_line(ctx, list(options))}
        config, run = resume_config(Path(resume), given, config.kind), Path(resume)
    else:
        if out is None:
            raise InputError("--out RUN is required (or --resume RUN to continue a run)")
        config.data.require()
        run = Path(out)
    if config.loop.workers is None:
        config = dataclasses.replace(config, loop=dataclasses.replace(config.loop, workers=default_workers()))
    use_dicom_window(config.data.dicom_window)  # a resumed run reads as it started (runs before 0.2: file)
    history = train(config, run, resume=resume is not None, overwrite=overwrite, report_epoch=_epoch_line)
    if history:
        import pandas as pd

        frame = pd.DataFrame(history).set_index("epoch")
        keep = [c for c in frame.columns if not c.startswith("val_auc_") or c == "val_auc_mean"]
        emit_frame(frame[keep], index_name="epoch", title=f"{run} (all columns in {run}/history.csv)")


def _train(ctx: typer.Context, kind: str, data: DataConfig, stage: StageConfig, loop: LoopConfig, **run: Any) -> None:
    run_training(ctx, TrainConfig(kind, data, loop, stage), **run)  # type: ignore[arg-type]


@command("train-classifier")
@options_from(data=DataConfig, stage=ClassifierConfig, loop=LoopConfig)
def train_classifier_cmd(
    ctx: typer.Context,
    data: DataConfig,
    stage: ClassifierConfig,
    loop: LoopConfig,
    out: RunOut = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Stage 1: train DenseNet121 on resized images ("D121 BL5"), or the FMix ablation with --augment fmix.

    Example:  cxrtool train-classifier --splits s.csv --images data --out runs/d121 --no-pretrained --crop 56
    """
    _train(ctx, "classifier", data, stage, loop, out=out, resume=resume, overwrite=overwrite)


@command("train-ae")
@options_from(data=DataConfig, stage=AutoencoderConfig, loop=LoopConfig)
def train_ae_cmd(
    ctx: typer.Context,
    data: DataConfig,
    stage: AutoencoderConfig,
    loop: LoopConfig,
    out: RunOut = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Stage 2: train the 1,025-parameter autoencoder on random patches (MSE).

    --batch-size counts patches: the loader reads batch-size images, cuts patches-per-image patches from each, and
    makes patches-per-image steps of them, step j taking every image's j-th patch (batch-size images per batch).

    Example:  cxrtool train-ae --splits splits.csv --images data --out runs/ae --epochs 3 --patch-size 64
    """
    _train(ctx, "autoencoder", data, stage, loop, out=out, resume=resume, overwrite=overwrite)


@command("train-joint")
@options_from(data=DataConfig, stage=JointConfig, loop=LoopConfig)
def train_joint_cmd(
    ctx: typer.Context,
    data: DataConfig,
    stage: JointConfig,
    loop: LoopConfig,
    out: RunOut = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Stage 3: train the autoencoder and DenseNet121 end to end (the AECNN), classifying the latent.

    Example:  cxrtool train-joint --splits s.csv --images data --classifier r/d121 --autoencoder r/ae --out r/aecnn
    """
    _train(ctx, "joint", data, stage, loop, out=out, resume=resume, overwrite=overwrite)
