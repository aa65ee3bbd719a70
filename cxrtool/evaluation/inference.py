"""Probabilities from a classifier or joint checkpoint, fed the way its metadata says (SPEC §1, Evaluation).

A classifier sees the image resized to its crop size; a joint model the image resized to its crop size, encoded
(latent = crop/4) and classified. `tencrop` averages ten views: the image resized to the training's pre-crop size
(the classifier's --resize; 8/7 of the crop for a joint model, as 1024 is to 896), its four corners and centre, and
those of its mirror image (torchvision's TenCrop, view for view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, default_collate

from cxrtool.data.datasets import EpochSampler, ImageDataset
from cxrtool.data.transforms import Transform, classifier_eval, resize, to_tensor
from cxrtool.errors import InputError
from cxrtool.models.checkpoints import CheckpointInfo, load_model
from cxrtool.runtime.signals import ignore_in_worker

TTA = ("none", "tencrop")


@dataclass(frozen=True)
class Predictor:
    model: nn.Module
    info: CheckpointInfo
    device: torch.device

    @property
    def crop(self) -> int:
        return int(self.info.input["crop"])

    def tencrop_base(self) -> int:
        if self.info.kind == "joint":
            return round(self.crop * 8 / 7)
        return int(self.info.input.get("resize") or self.crop)


def load_predictor(ckpt: Path, device: torch.device) -> Predictor:
    model, info = load_model(ckpt, kinds=("classifier", "joint"))
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return Predictor(model, info, device)


def tencrop_transform(*, base: int, crop: int) -> Transform:
    def transform(img: Image.Image, g: torch.Generator) -> torch.Tensor:
        img = resize(img, base)
        m = base - crop
        centre = round(m / 2.0)  # torchvision's center_crop (round half to even)
        boxes = [(0, 0), (m, 0), (0, m), (m, m), (centre, centre)]
        # torchvision's ten_crop: these five crops, then the mirrored image's five
        mirror = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        views = [source.crop((x, y, x + crop, y + crop)) for source in (img, mirror) for x, y in boxes]
        return torch.stack([to_tensor(v) for v in views])

    return transform


def _collate_readable(batch: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[tuple[int, str]]]:
    """(the readable items collated, or None; (index, error) of the unreadable ones)."""
    good = [item for item in batch if "error" not in item]
    failed = [(int(item["index"]), str(item["error"])) for item in batch if "error" in item]
    return (default_collate(good) if good else None), failed


def predict_paths(
    predictor: Predictor,
    paths: Sequence[Path],
    *,
    tta: str = "none",
    average: str = "probs",
    batch_size: int = 32,
    workers: int = 0,
    progress: object = None,
    errors: list[tuple[int, str]] | None = None,
) -> np.ndarray:
    """(n, labels) probabilities for image files, in order.

    An unreadable file raises ImageReadError, unless `errors` is a list: then it is skipped (its row stays 0) and
    (its index, the message) appended there, in worker processes too."""
    if tta not in TTA:
        raise InputError(f"--tta must be one of {', '.join(TTA)}, not {tta!r}")
    if average not in ("probs", "logits"):
        raise InputError(f"--tta-average must be probs or logits, not {average!r}")
    transform = (
        tencrop_transform(base=predictor.tencrop_base(), crop=predictor.crop)
        if tta == "tencrop"
        else classifier_eval(crop=predictor.crop)
    )
    skip = errors is not None
    dataset = ImageDataset(paths, None, transform, seed=0, tag="eval", skip_unreadable=skip)
    loader = DataLoader(
        dataset,
        batch_size=max(1, batch_size // (10 if tta == "tencrop" else 1)),
        sampler=EpochSampler(len(dataset), seed=0, shuffle=False),
        num_workers=workers,
        pin_memory=predictor.device.type == "cuda",
        worker_init_fn=ignore_in_worker if workers > 0 else None,
        collate_fn=_collate_readable if skip else None,
    )
    out = np.zeros((len(dataset), len(predictor.info.labels)), dtype=np.float64)
    amp = predictor.device.type == "cuda"
    for batch in loader:
        if skip:
            batch, failed = batch
            errors.extend(failed)  # type: ignore[union-attr]
            if callable(progress) and failed:
                progress(len(failed))
            if batch is None:
                continue
        x = batch["image"].to(predictor.device, non_blocking=True)
        views = x.shape[1] if x.dim() == 5 else 1
        x = x.flatten(0, 1) if x.dim() == 5 else x
        # no_grad here rather than as a decorator, which would hide the function from mutation testing (README)
        with torch.no_grad(), torch.autocast(predictor.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = predictor.model(x)["logits"].float().view(-1, views, out.shape[1])
        probs = torch.sigmoid(logits).mean(1) if average == "probs" else torch.sigmoid(logits.mean(1))
        out[batch["index"].numpy()] = probs.cpu().numpy()
        if callable(progress):
            progress(len(batch["index"]))
    return out
