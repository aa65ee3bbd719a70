"""Helpers shared by test modules (imported by name; pytest puts tests/ on sys.path via rootdir conftest)."""

from __future__ import annotations

from pathlib import Path


def splits_for(data: Path, tmp_path: Path) -> Path:
    from cxrtool.data.splits import SplitRequest, split_dataset

    out = tmp_path / "splits.csv"
    split_dataset(data, SplitRequest(seed=0), images=data).frame.to_csv(out, index=False)
    return out


def _loop_options(splits: Path, images: Path) -> dict:
    """The options every training command shares, at CPU-test sizes."""
    return {
        "splits": str(splits),
        "images": str(images),
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 1e-5,
        "workers": 0,
        "seed": 0,
        "device": "cpu",
        "amp": True,
        "compile": False,
        "max_steps": None,
    }


def classifier_options(splits: Path, images: Path, **overrides) -> dict:
    """Small enough for a CPU test: 32-px crops, a couple of steps per epoch."""
    options = {
        **_loop_options(splits, images),
        "augment": "bl5",
        "resize": 36,
        "crop": 32,
        "pretrained": False,
        "weights": None,
        "fmix_alpha": 1.0,
        "fmix_decay": 3.0,
        "fmix_mask": "paper",
        "keep": "loss",
        "limit_train": 16,
        "limit_val": 12,
    }
    return {**options, **overrides}


def autoencoder_options(splits: Path, images: Path, **overrides) -> dict:
    options = {
        **_loop_options(splits, images),
        "patch_size": 32,
        "patches_per_image": 4,
        "init": "box",
        "patch_source": "full",
        "limit_train": 12,
        "limit_val": 6,
    }
    return {**options, **overrides}
