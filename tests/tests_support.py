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


def make_eval(
    path: Path,
    *,
    signal: float = 1.0,
    seed: int = 0,
    labels: tuple[str, ...] | None = None,
    n: int = 200,
    truth_seed: int = 123,
    first_image: int = 0,
) -> Path:
    """A fake evaluation directory: shared seeded targets, scores that separate the classes by `signal`, and the
    metrics.csv `evaluate` would write for them (a 40-resample bootstrap)."""
    import numpy as np

    from cxrtool.data.labels import LABELS
    from cxrtool.evaluation.eval_dir import write_evaluation
    from cxrtool.evaluation.evaluate import metrics_table

    labels = labels or LABELS
    y = (np.random.default_rng(truth_seed).random((n, len(labels))) < 0.3).astype(np.int8)
    probs = 1.0 / (1.0 + np.exp(-(signal * (2 * y - 1) + np.random.default_rng(seed).normal(size=y.shape))))
    images = np.array([f"{i:08d}_000.png" for i in range(first_image, first_image + n)])
    metrics = metrics_table(labels, y, probs, n_boot=40, seed=0)
    write_evaluation(path, images=images, labels=labels, probs=probs, targets=y, metrics=metrics, config={"seed": seed})
    return path


def make_localization(path: Path, hits: dict[str, list[int]], *, first_image: int = 0) -> Path:
    """A localization directory whose boxes (one per image) have the given pointing hits per label, with the
    localization.csv `localize` would write for them (a 50-resample bootstrap)."""
    import numpy as np
    import pandas as pd

    from cxrtool.explain.loc_dir import BOX_COLUMNS
    from cxrtool.explain.scoring import localization_table

    rows = []
    for label, values in hits.items():
        for i, hit in enumerate(values):
            image = f"{first_image + i:08d}_{label}.png"
            rows.append({"image": image, "label": label, "x": 10.5, "y": 20.25, "w": 30, "h": 40, "pred_x": np.nan,
                         "pred_y": np.nan, "pred_w": np.nan, "pred_h": np.nan, "iou": 0.0, "iobb": 0.0,
                         "pointing_hit": hit, "probability": 0.5})  # fmt: skip
    boxes = pd.DataFrame(rows, columns=list(BOX_COLUMNS))
    path.mkdir(parents=True)
    boxes.to_csv(path / "boxes.csv", index=False)
    localization_table(boxes, list(hits), n_boot=50, seed=0).to_csv(path / "localization.csv", index=False)
    return path


def train(kind: str, options, run: Path, **kwargs):
    """`cxrtool.training.stages.train` from a kind and a flat options dict (the helpers above), as config.json
    records them, or from a TrainConfig (what `merge_resume` returns)."""
    from cxrtool.config.training import TrainConfig
    from cxrtool.training import stages

    config = options if isinstance(options, TrainConfig) else TrainConfig.from_options(kind, options)
    return stages.train(config, run, **kwargs)


def merge_resume(run: Path, given: dict, kind: str | None = None):
    """The configuration a resumed run continues with (`stages.resume_config`)."""
    from cxrtool.training.stages import resume_config

    return resume_config(run, given, kind)


def build_stage(kind: str, options: dict, *, resume: bool = False, rank: int = 0):
    """One stage's datasets, model and task, as `train` builds them."""
    from cxrtool.config.training import TrainConfig
    from cxrtool.training.stages import BUILDERS

    return BUILDERS[kind](TrainConfig.from_options(kind, options), resume, rank)


def joint_start(options: dict):
    """The joint model stage 3 starts from, for these (flat) options."""
    from cxrtool.config.fields import from_flat
    from cxrtool.config.training import JointConfig
    from cxrtool.training.joint_init import build_joint

    return build_joint(from_flat(JointConfig, options))[0]
