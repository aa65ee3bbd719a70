"""The three stages as library functions: a `TrainConfig` in, a finished run directory out.

config.json records the configuration as one flat dict of option names (`TrainConfig.options`), and a resumed run
rebuilds everything from it (`resume_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrtool import __version__
from cxrtool.config.training import (
    COMMANDS,
    RESUMABLE,
    AutoencoderConfig,
    ClassifierConfig,
    JointConfig,
    TrainConfig,
)
from cxrtool.data.datasets import ImageDataset, PatchDataset, label_matrix, resolve_paths, rows_for
from cxrtool.data.images import ImageIndex
from cxrtool.data.labels import LABELS
from cxrtool.data.splits import read_splits
from cxrtool.data.transforms import classifier_eval, classifier_train, joint_train
from cxrtool.errors import InputError
from cxrtool.layouts import RunDir
from cxrtool.log import a, warn
from cxrtool.runtime.device import pick_device
from cxrtool.runtime.workers import default_workers
from cxrtool.training import run_dir
from cxrtool.training.distributed import close_world, init_world
from cxrtool.training.loop import Stage, Trainer
from cxrtool.training.tasks import AutoencoderTask, ClassifierTask, FMixSettings, JointTask


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resume_config(run: Path, given: dict[str, Any], kind: str | None = None) -> TrainConfig:
    """The run's stored configuration, updated by the options a resumed run may change (`given`: those typed on
    the command line); any other change is an error, and so is a run of another kind than the command's."""
    config = run_dir.read_config(run)
    stored = config.get("options")
    if not isinstance(stored, dict) or config.get("kind") not in COMMANDS:
        raise InputError(f"--resume {run}: its {RunDir.CONFIG} is not a cxrtool training config")
    if kind is not None and config["kind"] != kind:
        raise InputError(
            f"--resume {run} is {a(config['kind'])} run; continue it with `cxrtool {COMMANDS[config['kind']]} "
            f"--resume {run}`"
        )
    given = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    for key, value in given.items():
        if key in RESUMABLE or stored.get(key) == value:
            continue
        raise InputError(
            f"--{key.replace('_', '-')} {value} differs from the run's stored {stored.get(key)}; a resumed run keeps "
            f"its settings (only {', '.join('--' + k for k in RESUMABLE)} may change)"
        )
    if given.get("epochs", stored["epochs"]) < stored["epochs"]:
        raise InputError(f"--epochs can only grow on --resume (stored: {stored['epochs']})")
    options = {**stored, **{k: v for k, v in given.items() if k in RESUMABLE}}
    return TrainConfig.from_options(config["kind"], options)


def _data(config: TrainConfig, needs: int) -> tuple[Any, ImageIndex]:
    """The splits and the image index; warns when --images is a `prepare` cache smaller than the run needs."""
    from cxrtool.data.prepare import cache_size

    assert config.data.images is not None and config.data.splits is not None  # DataConfig.require()
    images = Path(config.data.images)
    held = cache_size(images)
    if held is not None and held < needs:
        warn(f"--images {images} is a cache of {held}² images, but this run reads {needs}² inputs: they are upscaled")
    return read_splits(Path(config.data.splits)), ImageIndex.build(images)


def _split_rows(config: TrainConfig, splits: Any, index: ImageIndex) -> dict[str, tuple[list[Path], Any]]:
    """(paths, rows) of the train and val splits."""
    out = {}
    for split in ("train", "val"):
        limit = getattr(config.data, f"limit_{split}")
        path = Path(str(config.data.splits))
        rows = rows_for(splits, split, limit=limit, seed=config.loop.seed, path=path)
        out[split] = (resolve_paths(rows, index), rows)
    return out


def data_fingerprint(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per split, how many images a run uses and a SHA-256 of their names and labels in order: what a resume must
    find unchanged (the splits file's path alone says nothing about its rows)."""
    out = {}
    for split, frame in rows.items():
        text = frame[["image", *LABELS]].to_csv(index=False, lineterminator="\n")
        out[split] = {"images": len(frame), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return out


def check_same_data(run: Path, stored: dict[str, Any] | None, now: dict[str, Any], splits: Any) -> None:
    """Refuse to resume onto other rows (SPEC §5: a resume never continues onto other data)."""
    if not stored:
        return  # a run made before cxrtool recorded its data: nothing to compare
    changed = [
        f"{split}: {stored[split]['images']} images then, {now[split]['images']} now"
        + (" (same count, other names or labels)" if stored[split]["images"] == now[split]["images"] else "")
        for split in now
        if split in stored and stored[split]["sha256"] != now[split]["sha256"]
    ]
    if changed:
        raise InputError(
            f"--resume {run}: the rows of --splits {splits} differ from those the run started with "
            f"({'; '.join(changed)}); a resumed run must see the same data: restore that file, or start a new run"
        )


def _stage(config: TrainConfig, **fields: Any) -> Stage:
    """The Stage fields every kind shares."""
    return Stage(
        kind=config.kind,
        labels=LABELS,
        geometry=config.stage.geometry(),
        config=config.options(),
        schedule=config.loop.schedule,
        **fields,
    )


def _classifier_stage(config: TrainConfig, resume: bool, rank: int) -> Stage:
    from cxrtool.models.classifier import load_pretrained_
    from cxrtool.models.registry import create_model

    stage = config.stage
    assert isinstance(stage, ClassifierConfig)
    splits, index = _data(config, stage.resize)
    parts = _split_rows(config, splits, index)
    (train_paths, train_rows), (val_paths, val_rows) = parts["train"], parts["val"]
    model = create_model("classifier")
    weights_source = None
    if not resume and (stage.pretrained or stage.weights):  # a resume restores its own weights
        weights_source = load_pretrained_(model, Path(stage.weights) if stage.weights else None)
    fmix = FMixSettings(stage.fmix_alpha, stage.fmix_decay, stage.fmix_mask) if stage.augment == "fmix" else None
    seed = config.loop.seed
    transform = classifier_train(resize_to=stage.resize, crop=stage.crop, augment=stage.augment)
    result = _stage(
        config,
        model=model,
        task=ClassifierTask(LABELS, label_matrix(val_rows), fmix=fmix, seed=seed, rank=rank),
        train_set=ImageDataset(train_paths, label_matrix(train_rows), transform, seed=seed, tag="train"),
        val_set=ImageDataset(val_paths, label_matrix(val_rows), classifier_eval(crop=stage.crop), seed=seed, tag="val"),
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
        keep=stage.keep,
    )
    if weights_source is not None:
        result.config["weights_source"] = weights_source
    return result


def _autoencoder_stage(config: TrainConfig, resume: bool, rank: int) -> Stage:
    from cxrtool.models.registry import create_model

    stage = config.stage
    assert isinstance(stage, AutoencoderConfig)
    splits, index = _data(config, 1024 if stage.patch_source == "full" else 256)
    parts = _split_rows(config, splits, index)
    (train_paths, train_rows), (val_paths, val_rows) = parts["train"], parts["val"]
    downscale = 256 if stage.patch_source == "downscaled" else None
    size, count, seed = stage.patch_size, stage.patches_per_image, config.loop.seed
    return _stage(
        config,
        model=create_model("autoencoder", init=stage.init),
        task=AutoencoderTask(),
        train_set=PatchDataset(
            train_paths, size=size, count=count, seed=seed, flips=True, fixed=False, downscale=downscale
        ),
        val_set=PatchDataset(
            val_paths, size=size, count=count, seed=seed, flips=False, fixed=True, downscale=downscale
        ),
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
        patches_per_image=count,
    )


def _joint_stage(config: TrainConfig, resume: bool, rank: int) -> Stage:
    from cxrtool.models.joint import JointModel
    from cxrtool.training.joint_init import build_joint

    stage = config.stage
    assert isinstance(stage, JointConfig)
    crop = stage.crop
    splits, index = _data(config, crop)
    parts = _split_rows(config, splits, index)
    (train_paths, train_rows), (val_paths, val_rows) = parts["train"], parts["val"]
    seed = config.loop.seed
    # A resume restores every tensor from the run itself: the stage-1/2 runs may have moved, ImageNet be offline.
    model, weights_source = (JointModel(), None) if resume else build_joint(stage)
    result = _stage(
        config,
        model=model,
        task=JointTask(LABELS, label_matrix(val_rows), lam=stage.lam),
        train_set=ImageDataset(train_paths, label_matrix(train_rows), joint_train(crop=crop), seed=seed, tag="train"),
        val_set=ImageDataset(val_paths, label_matrix(val_rows), classifier_eval(crop=crop), seed=seed, tag="val"),
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
        keep=stage.keep,
    )
    if weights_source is not None:
        result.config["weights_source"] = weights_source
    return result


BUILDERS = {"classifier": _classifier_stage, "autoencoder": _autoencoder_stage, "joint": _joint_stage}


def train(
    config: TrainConfig,
    run: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    report_epoch: Any = None,
    step_hook: Any = None,
) -> list[dict[str, Any]]:
    """Train one stage into `run` (or continue it); returns the history rows."""
    config.data.require()
    if config.loop.workers is None:
        config = dataclasses.replace(config, loop=dataclasses.replace(config.loop, workers=default_workers()))
    device = pick_device(config.loop.device)
    world = init_world(device)
    try:
        if world.main and not resume:
            run_dir.check_new(run, overwrite=overwrite)  # refuse early; nothing is removed before validation
        stored = run_dir.read_config(run) if resume else {}
        seed_everything(config.loop.seed)
        stage = BUILDERS[config.kind](config, resume, world.rank)
        if resume:
            check_same_data(run, stored.get("data"), stage.data, config.data.splits)
        if world.main and not resume:
            run_dir.clear_for_new_run(run, overwrite=overwrite)
        trainer = Trainer(stage, config.loop, run, device=device, world=world)
        trainer.step_hook = step_hook
        # config.json is written with the first saved state (an epoch's end or an interruption), so a run that
        # fails before it leaves nothing that would block a plain rerun.
        trainer.record = {
            "kind": config.kind,
            "options": stage.config,
            "data": stage.data,
            "world_size": world.size,
            "cxrtool_version": __version__,
        }
        if resume:
            trainer.restore()
        return trainer.fit(report_epoch)
    finally:
        close_world(world)
