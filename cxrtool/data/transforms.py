"""Per-phase transform builders (SPEC §1). A transform maps (single-channel PIL image, torch.Generator) to a
1×H×W float32 tensor in [0, 1]; ImageNet normalisation happens inside the models, on the device.

Every random draw comes from the generator passed in, which the dataset seeds from (seed, epoch, index), so a
sample's augmentation depends on neither the worker that loads it nor what was loaded before: a resumed run sees
exactly the draws of an uninterrupted one. The draws are made in torchvision's order and with torchvision's calls
(RandomCrop, RandomHorizontalFlip, RandomRotation, ColorJitter), so for the same seed they equal the plain
torchvision pipeline's; tests check it.

Speed: a 1024² → 256² resize is an exact 4×4 box average (`Image.reduce`) on one channel, instead of
torchvision's antialiased bilinear resize on three, and 8-bit grayscale PNGs are decoded by torchvision's libpng
decoder (see datasets.read_image). Together they are the input pipeline's gain over the plain torchvision pipeline
(benchmarks/bench_pipeline.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cxrtool.data.images import resize_square, to_unit

Transform = Callable[[Image.Image, torch.Generator], torch.Tensor]
ROTATION_DEGREES = 5.0
CONTRAST = 0.25


def sample_seed(seed: int, epoch: int, index: int, tag: str = "") -> int:
    """A 63-bit seed for one sample's draws, from (seed, epoch, index) only."""
    key = f"{seed}/{epoch}/{index}/{tag}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & ((1 << 63) - 1)


def sample_generator(seed: int, epoch: int, index: int, tag: str = "") -> torch.Generator:
    return torch.Generator().manual_seed(sample_seed(seed, epoch, index, tag))


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(to_unit(img)))[None]


resize = resize_square  # one resize for training, evaluation and `prepare`


@dataclass(frozen=True)
class Draws:
    """One sample's random parameters, drawn exactly as torchvision's transforms draw them."""

    top: int
    left: int
    flip: bool
    angle: float
    contrast: float | None
    rotate_first: bool = False  # stage 3 rotates before it flips


def draw(
    g: torch.Generator,
    *,
    size: tuple[int, int],
    crop: int,
    flip: bool = True,
    rotate: bool = True,
    contrast: bool = True,
    rotate_first: bool = False,
) -> Draws:
    """Draws in the pipeline's order: crop, flip, rotation, contrast (stage 1), or with `rotate_first` crop,
    rotation, flip (stage 3, SPEC §1)."""
    w, h = size
    # RandomCrop.get_params: top, then left
    top = int(torch.randint(0, h - crop + 1, size=(1,), generator=g).item()) if h > crop else 0
    left = int(torch.randint(0, w - crop + 1, size=(1,), generator=g).item()) if w > crop else 0

    def flip_draw() -> bool:  # RandomHorizontalFlip: torch.rand(1) < 0.5
        return bool(torch.rand(1, generator=g).item() < 0.5) if flip else False

    def angle_draw() -> float:  # RandomRotation.get_params: uniform(-d, d)
        return (
            float(torch.empty(1).uniform_(-ROTATION_DEGREES, ROTATION_DEGREES, generator=g).item()) if rotate else 0.0
        )

    if rotate_first:
        angle = angle_draw()
        flipped = flip_draw()
    else:
        flipped = flip_draw()
        angle = angle_draw()
    factor = None
    if contrast:
        torch.randperm(4, generator=g)  # ColorJitter draws the order of its four ops first
        factor = float(torch.empty(1).uniform_(1 - CONTRAST, 1 + CONTRAST, generator=g).item())
    return Draws(top, left, flipped, angle, factor, rotate_first)


def apply(img: Image.Image, d: Draws, crop: int) -> Image.Image:
    if img.size != (crop, crop):
        img = img.crop((d.left, d.top, d.left + crop, d.top + crop))
    if d.angle and d.rotate_first:
        img = img.rotate(d.angle, resample=Image.Resampling.NEAREST, fillcolor=0)  # RandomRotation's defaults
    if d.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if d.angle and not d.rotate_first:
        img = img.rotate(d.angle, resample=Image.Resampling.NEAREST, fillcolor=0)
    return img


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean grey, as torchvision's adjust_contrast does."""
    mean = x.mean()
    return (mean + factor * (x - mean)).clamp_(0.0, 1.0)


def classifier_train(*, resize_to: int, crop: int, augment: str) -> Transform:
    """Stage 1 training. bl5: resize, RandomCrop, flip, rotation ±5°, contrast 0.25; fmix: resize and RandomCrop
    only (FMix mixes whole batches later); none: resize to the crop size."""
    if augment == "none":
        return classifier_eval(crop=crop)
    full = augment == "bl5"

    def transform(img: Image.Image, g: torch.Generator) -> torch.Tensor:
        img = resize(img, resize_to)
        d = draw(g, size=img.size, crop=crop, flip=full, rotate=full, contrast=full)
        x = to_tensor(apply(img, d, crop))
        return adjust_contrast(x, d.contrast) if d.contrast is not None else x

    return transform


def classifier_eval(*, crop: int) -> Transform:
    """Validation and evaluation: resize to the crop size, no augmentation."""

    def transform(img: Image.Image, g: torch.Generator) -> torch.Tensor:
        return to_tensor(resize(img, crop))

    return transform


def joint_train(*, crop: int) -> Transform:
    """Stage 3 training: RandomCrop of the full image, rotation ±5°, horizontal flip (no resize), in that order."""

    def transform(img: Image.Image, g: torch.Generator) -> torch.Tensor:
        if min(img.size) < crop:
            img = resize(img, crop)
        d = draw(g, size=img.size, crop=crop, flip=True, rotate=True, contrast=False, rotate_first=True)
        return to_tensor(apply(img, d, crop))

    return transform


def patches(img: Image.Image, g: torch.Generator, *, size: int, count: int, flips: bool) -> torch.Tensor:
    """`count` random size×size patches of the full-resolution image (stage 2), with random h/v flips."""
    x = to_tensor(img)
    h, w = x.shape[-2:]
    if h < size or w < size:
        x = to_tensor(resize(img, size))
        h, w = size, size
    tops = torch.randint(0, h - size + 1, (count,), generator=g)
    lefts = torch.randint(0, w - size + 1, (count,), generator=g)
    flip = torch.rand(count, 2, generator=g) < 0.5 if flips else torch.zeros(count, 2, dtype=torch.bool)
    out = torch.stack([x[:, t : t + size, s : s + size] for t, s in zip(tops.tolist(), lefts.tolist())])
    for i in range(count):
        dims = [d for d, f in zip((-1, -2), flip[i].tolist()) if f]
        if dims:
            out[i] = out[i].flip(dims)
    return out
