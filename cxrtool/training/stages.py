"""The three stages as library functions: options in, a finished run directory out.

Options travel as one flat dict whose keys are the commands' option names; that dict is config.json, and a resumed
run rebuilds everything from it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrtool import __version__
from cxrtool.data.datasets import ImageDataset, PatchDataset, label_matrix, resolve_paths, rows_for
from cxrtool.data.images import ImageIndex
from cxrtool.data.labels import LABELS
from cxrtool.data.splits import read_splits
from cxrtool.data.transforms import classifier_eval, classifier_train, joint_train
from cxrtool.errors import InputError
from cxrtool.log import warn
from cxrtool.models.classifier import IMAGENET_MEAN, IMAGENET_STD, check_input_size
from cxrtool.training import run_dir
from cxrtool.training.distributed import close_world, init_world, pick_device
from cxrtool.training.loop import LoopConfig, Stage, Trainer
from cxrtool.training.tasks import AutoencoderTask, ClassifierTask, FMixSettings, JointTask

# options a resumed run may change (SPEC §5); everything else must match config.json
RESUMABLE = ("epochs", "workers", "device")
LOOP_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "workers", "seed", "amp", "compile", "max_steps")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def merge_resume(run: Path, given: dict[str, Any]) -> dict[str, Any]:
    """The stored options, updated by the ones a resumed run may change; any other change is an error."""
    stored = run_dir.read_config(run)["options"]
    for key, value in given.items():
        if key in RESUMABLE or stored.get(key) == value:
            continue
        raise InputError(
            f"--{key.replace('_', '-')} {value} differs from the run's stored {stored.get(key)}; a resumed run keeps "
            f"its settings (only {', '.join('--' + k for k in RESUMABLE)} may change)"
        )
    if given.get("epochs", stored["epochs"]) < stored["epochs"]:
        raise InputError(f"--epochs can only grow on --resume (stored: {stored['epochs']})")
    return {**stored, **{k: v for k, v in given.items() if k in RESUMABLE}}


def _data(options: dict[str, Any], needs: int) -> tuple[Any, ImageIndex]:
    """The splits and the image index; warns when --images is a `prepare` cache smaller than the run needs."""
    from cxrtool.data.prepare import cache_size

    images = Path(options["images"])
    held = cache_size(images)
    if held is not None and held < needs:
        warn(f"--images {images} is a cache of {held}² images, but this run reads {needs}² inputs: they are upscaled")
    return read_splits(Path(options["splits"])), ImageIndex.build(images)


def _split_paths(options: dict[str, Any], splits: Any, index: ImageIndex, split: str) -> tuple[list[Path], Any]:
    limit = options.get(f"limit_{split}")
    rows = rows_for(splits, split, limit=limit, seed=options["seed"], path=Path(options["splits"]))
    return resolve_paths(rows, index), rows


def _classifier_stage(options: dict[str, Any]) -> Stage:
    from cxrtool.models.checkpoints import build_model
    from cxrtool.models.classifier import load_pretrained_

    check_input_size(options["crop"], flag="--crop")
    if options["resize"] < options["crop"]:
        raise InputError(f"--resize {options['resize']} is smaller than --crop {options['crop']}")
    splits, index = _data(options, options["resize"])
    (train_paths, train_rows), (val_paths, val_rows) = (
        _split_paths(options, splits, index, s) for s in ("train", "val")
    )
    model = build_model("classifier")
    if options["pretrained"] or options.get("weights"):
        options["weights_source"] = load_pretrained_(
            model, Path(options["weights"]) if options.get("weights") else None
        )
    fmix = None
    if options["augment"] == "fmix":
        fmix = FMixSettings(alpha=options["fmix_alpha"], decay=options["fmix_decay"], mask=options["fmix_mask"])
    seed = options["seed"]
    transform = classifier_train(resize_to=options["resize"], crop=options["crop"], augment=options["augment"])
    return Stage(
        kind="classifier",
        labels=LABELS,
        input_spec={
            "resize": options["resize"],
            "crop": options["crop"],
            "channels": 3,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "encoder_first": False,
        },
        config=options,
        model=model,
        task=ClassifierTask(LABELS, label_matrix(val_rows), fmix=fmix, seed=seed),
        train_set=ImageDataset(train_paths, label_matrix(train_rows), transform, seed=seed, tag="train"),
        val_set=ImageDataset(
            val_paths, label_matrix(val_rows), classifier_eval(crop=options["crop"]), seed=seed, tag="val"
        ),
    )


def _autoencoder_stage(options: dict[str, Any]) -> Stage:
    from cxrtool.models.checkpoints import build_model

    size, count = options["patch_size"], options["patches_per_image"]
    if size < 4 or size % 4:
        raise InputError(f"--patch-size must be a multiple of 4 (the encoder's stride), not {size}")
    splits, index = _data(options, 1024 if options["patch_source"] == "full" else 256)
    (train_paths, _), (val_paths, _) = (_split_paths(options, splits, index, s) for s in ("train", "val"))
    downscale = 256 if options["patch_source"] == "downscaled" else None
    seed = options["seed"]
    return Stage(
        kind="autoencoder",
        labels=LABELS,
        input_spec={"resize": None, "crop": size, "channels": 1, "mean": None, "std": None, "encoder_first": True},
        config=options,
        model=build_model("autoencoder", init=options["init"]),
        task=AutoencoderTask(),
        train_set=PatchDataset(
            train_paths, size=size, count=count, seed=seed, flips=True, fixed=False, downscale=downscale
        ),
        val_set=PatchDataset(
            val_paths, size=size, count=count, seed=seed, flips=False, fixed=True, downscale=downscale
        ),
    )


def _joint_stage(options: dict[str, Any]) -> Stage:
    from cxrtool.training.joint_init import build_joint

    crop = options["crop"]
    if crop % 4:
        raise InputError(f"--crop must be a multiple of 4 (the encoder's stride), not {crop}")
    if crop // 4 < 29:
        raise InputError(f"--crop {crop} gives a {crop // 4}-px latent; DenseNet121 needs a crop of at least 116")
    splits, index = _data(options, crop)
    (train_paths, train_rows), (val_paths, val_rows) = (
        _split_paths(options, splits, index, s) for s in ("train", "val")
    )
    seed = options["seed"]
    model = build_joint(options)
    return Stage(
        kind="joint",
        labels=LABELS,
        input_spec={
            "resize": crop,
            "crop": crop,
            "channels": 3,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "encoder_first": True,
            "latent": crop // 4,
        },
        config=options,
        model=model,
        task=JointTask(LABELS, label_matrix(val_rows), lam=options["lam"]),
        train_set=ImageDataset(train_paths, label_matrix(train_rows), joint_train(crop=crop), seed=seed, tag="train"),
        val_set=ImageDataset(val_paths, label_matrix(val_rows), classifier_eval(crop=crop), seed=seed, tag="val"),
    )


BUILDERS = {"classifier": _classifier_stage, "autoencoder": _autoencoder_stage, "joint": _joint_stage}


def train(
    kind: str,
    options: dict[str, Any],
    run: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    report_epoch: Any = None,
    step_hook: Any = None,
) -> list[dict[str, Any]]:
    """Train one stage into `run` (or continue it); returns the history rows."""
    device = pick_device(options.get("device", "auto"))
    world = init_world(device)
    try:
        if world.main and not resume:
            run_dir.prepare(run, overwrite=overwrite)
        seed_everything(options["seed"])
        stage = BUILDERS[kind](options)
        cfg = LoopConfig(
            **{k: options[k] for k in LOOP_KEYS},
            schedule=options.get("schedule", "plateau"),
            keep=options.get("keep", "loss"),
            items_per_batch=options.get("patches_per_image", 1),
        )
        trainer = Trainer(stage, cfg, run, device=device, world=world)
        trainer.step_hook = step_hook
        if resume:
            trainer.restore()
        if world.main:
            run_dir.write_config(
                run, {"kind": kind, "options": options, "world_size": world.size, "cxrtool_version": __version__}
            )
        return trainer.fit(report_epoch)
    finally:
        close_world(world)
