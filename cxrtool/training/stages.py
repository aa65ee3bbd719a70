"""The three stages as library functions: options in, a finished run directory out.

Options travel as one flat dict whose keys are the commands' option names; that dict is config.json, and a resumed
run rebuilds everything from it.
"""

from __future__ import annotations

import hashlib
import math
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
from cxrtool.log import a, warn
from cxrtool.models.classifier import IMAGENET_MEAN, IMAGENET_STD, check_input_size
from cxrtool.training import run_dir
from cxrtool.training.distributed import close_world, init_world, pick_device
from cxrtool.training.loop import LoopConfig, Stage, Trainer
from cxrtool.training.tasks import AutoencoderTask, ClassifierTask, FMixSettings, JointTask

# options a resumed run may change (SPEC §5); everything else must match config.json
RESUMABLE = ("epochs", "workers", "device")
LOOP_KEYS = (
    "epochs", "batch_size", "lr", "weight_decay", "workers", "seed", "amp", "compile", "max_steps",
    "patience", "factor",
)  # fmt: skip
COMMANDS = {"classifier": "train-classifier", "autoencoder": "train-ae", "joint": "train-joint"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_loop_options(options: dict[str, Any]) -> None:
    """The numeric options every stage shares, refused before anything is read or written."""
    checks = (
        ("lr", options.get("lr"), lambda v: math.isfinite(v) and v > 0, "a positive number (the paper's: 1e-4)"),
        ("weight_decay", options.get("weight_decay"), lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
        ("factor", options.get("factor", 0.1), lambda v: 0 < v < 1, "a number in (0, 1) (default 0.1)"),
        ("lam", options.get("lam", 0.9), lambda v: 0 <= v <= 1, "a number in [0, 1] (the paper's: 0.9)"),
    )
    for name, value, ok, what in checks:
        if value is not None and not ok(float(value)):
            raise InputError(f"--{name.replace('_', '-')} {value} is invalid; give {what}")


def merge_resume(run: Path, given: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """The stored options, updated by the ones a resumed run may change; any other change is an error, and so is
    a run of another kind than the command's."""
    config = run_dir.read_config(run)
    stored = config.get("options")
    if not isinstance(stored, dict) or config.get("kind") not in COMMANDS:
        raise InputError(f"--resume {run}: its {run_dir.CONFIG} is not a cxrtool training config")
    if kind is not None and config["kind"] != kind:
        raise InputError(
            f"--resume {run} is {a(config['kind'])} run; continue it with `cxrtool {COMMANDS[config['kind']]} "
            f"--resume {run}`"
        )
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


def data_fingerprint(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per split, how many images a run uses and a SHA-256 of their names and labels in order: what a resume must
    find unchanged (the splits file's path alone says nothing about its rows)."""
    out = {}
    for split, frame in rows.items():
        text = frame[["image", *LABELS]].to_csv(index=False, lineterminator="\n")
        out[split] = {"images": len(frame), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return out


def check_same_data(run: Path, stored: dict[str, Any] | None, now: dict[str, Any], splits: str) -> None:
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


def _classifier_stage(options: dict[str, Any], resume: bool, rank: int) -> Stage:
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
    if not resume and (options["pretrained"] or options.get("weights")):  # a resume restores its own weights
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
        task=ClassifierTask(LABELS, label_matrix(val_rows), fmix=fmix, seed=seed, rank=rank),
        train_set=ImageDataset(train_paths, label_matrix(train_rows), transform, seed=seed, tag="train"),
        val_set=ImageDataset(
            val_paths, label_matrix(val_rows), classifier_eval(crop=options["crop"]), seed=seed, tag="val"
        ),
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
    )


def _autoencoder_stage(options: dict[str, Any], resume: bool, rank: int) -> Stage:
    from cxrtool.models.checkpoints import build_model

    size, count = options["patch_size"], options["patches_per_image"]
    if size < 4 or size % 4:
        raise InputError(f"--patch-size must be a multiple of 4 (the encoder's stride), not {size}")
    if options.get("keep", "loss") != "loss":
        raise InputError("--keep auc needs validation AUCs; the autoencoder is kept by its validation loss")
    splits, index = _data(options, 1024 if options["patch_source"] == "full" else 256)
    (train_paths, train_rows), (val_paths, val_rows) = (
        _split_paths(options, splits, index, s) for s in ("train", "val")
    )
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
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
    )


def _joint_stage(options: dict[str, Any], resume: bool, rank: int) -> Stage:
    from cxrtool.models.joint import JointModel
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
    # A resume restores every tensor from the run itself: the stage-1/2 runs may have moved, ImageNet be offline.
    model = JointModel() if resume else build_joint(options)
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
        data=data_fingerprint({"train": train_rows, "val": val_rows}),
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
    check_loop_options(options)
    device = pick_device(options.get("device", "auto"))
    world = init_world(device)
    try:
        if world.main and not resume:
            run_dir.check_new(run, overwrite=overwrite)  # refuse early; nothing is removed before validation
        stored = run_dir.read_config(run) if resume else {}
        seed_everything(options["seed"])
        stage = BUILDERS[kind](options, resume, world.rank)
        if resume:
            check_same_data(run, stored.get("data"), stage.data, options["splits"])
        cfg = LoopConfig(
            **{k: options[k] for k in LOOP_KEYS if k in options},
            schedule=options.get("schedule", "plateau"),
            keep=options.get("keep", "loss"),
            patches_per_image=options.get("patches_per_image", 1),
        )
        if world.main and not resume:
            run_dir.prepare(run, overwrite=overwrite)
        trainer = Trainer(stage, cfg, run, device=device, world=world)
        trainer.step_hook = step_hook
        # config.json is written with the first saved state (an epoch's end or an interruption), so a run that
        # fails before it leaves nothing that would block a plain rerun.
        trainer.record = {
            "kind": kind,
            "options": options,
            "data": stage.data,
            "world_size": world.size,
            "cxrtool_version": __version__,
        }
        if resume:
            trainer.restore()
        return trainer.fit(report_epoch)
    finally:
        close_world(world)
