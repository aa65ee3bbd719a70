"""A synthetic ChestX-ray14: same layout and metadata format as the real dataset, with findings drawn into the pixels.

Each of the 14 findings has a visible, roughly radiological sign (a wide heart shadow for Cardiomegaly, a fluid
level for Effusion, round opacities for Nodule and Mass, ...), so a classifier trained on it learns something real
and a small split still holds positives of every label. It is a test bed for the pipeline, not a model of disease.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from cxrtool.artifacts import UMASK
from cxrtool.data.labels import LABELS
from cxrtool.data.metadata import TEST_LIST, TRAIN_VAL_LIST
from cxrtool.errors import InputError

# Prevalences inside 8-30% so that ~50 validation images hold positives of every label.
SYNTH_PREVALENCE = dict(
    zip(LABELS, (0.22, 0.15, 0.15, 0.15, 0.25, 0.14, 0.15, 0.12, 0.28, 0.15, 0.18, 0.14, 0.15, 0.15))
)
# ChestX-ray14's own rates (positives / 112,120 in Data_Entry_2017_v2020).
REAL_COUNTS = (11559, 2776, 4667, 2303, 13317, 2516, 1686, 227, 19894, 5782, 6331, 3385, 1431, 5302)
REAL_PREVALENCE = {label: count / 112_120 for label, count in zip(LABELS, REAL_COUNTS)}
TEST_PATIENT_SHARE = 0.23
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)


@dataclass(frozen=True)
class SynthConfig:
    n: int = 1000
    size: int = 128
    seed: int = 0
    prevalence: Literal["synthetic", "real"] = "synthetic"


@dataclass(frozen=True)
class _Record:
    name: str
    patient_id: int
    follow_up: int
    age: int
    sex: str
    view: str
    labels: tuple[str, ...]
    test: bool


class _Canvas:
    """Normalised coordinates of an S×S image and a few shape primitives (soft-edged, anti-aliased)."""

    def __init__(self, size: int) -> None:
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")
        self.edge = 1.5 / size  # softness of an edge: about one pixel and a half

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        d = np.sqrt(((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2)
        return np.clip((1.0 - d) * min(rx, ry) / self.edge + 0.5, 0.0, 1.0)

    def gaussian(self, cx: float, cy: float, sigma: float) -> np.ndarray:
        return np.exp(-((self.x - cx) ** 2 + (self.y - cy) ** 2) / (2 * sigma**2))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))


def render(labels: tuple[str, ...], size: int, rng: np.random.Generator) -> np.ndarray:
    """One radiograph-like 8-bit image with the signs of `labels` drawn in."""
    c = _Canvas(size)
    has = set(labels)
    shift_x, shift_y = rng.uniform(-0.03, 0.03, 2)
    lung_scale = 1.12 if "Emphysema" in has else 1.0
    lung_ry = 0.27 * lung_scale * (0.85 if "Atelectasis" in has else 1.0)
    img: np.ndarray = np.full((size, size), 0.06, np.float32)  # float64 once the float64 shapes are added
    body = c.ellipse(0.5 + shift_x, 0.56 + shift_y, 0.44, 0.5)
    img = img + body * 0.42
    sides = (0.31 + shift_x, 0.69 + shift_x)
    lung_cy = 0.45 + shift_y
    texture = _smooth_noise(rng, size, 12) * 0.03
    lung_level = 0.06 if "Emphysema" in has else 0.17
    lungs = np.zeros_like(img)
    for cx in sides:
        lungs = np.maximum(lungs, c.ellipse(cx, lung_cy, 0.14 * lung_scale, lung_ry))
    img = img * (1 - lungs) + lungs * (lung_level + (0 if "Emphysema" in has else texture))
    spine = np.clip(1 - np.abs(c.x - 0.5 - shift_x) / 0.05, 0, 1) * (c.y > 0.12)
    img = np.maximum(img, spine * 0.62)
    big_heart = "Cardiomegaly" in has
    heart_rx, heart_level = (0.23, 0.75) if big_heart else (0.11, 0.6)
    img = np.maximum(img, c.ellipse(0.53 + shift_x, 0.6 + shift_y, heart_rx, 0.13 if big_heart else 0.1) * heart_level)

    def lung_of(side: int) -> np.ndarray:
        return c.ellipse(sides[side], lung_cy, 0.14 * lung_scale, lung_ry)

    def in_lung(rx: float, ry: float) -> tuple[float, float]:
        side = int(rng.integers(2))
        return sides[side] + rng.uniform(-rx, rx), lung_cy + rng.uniform(-ry, ry)

    def paint(mask: np.ndarray, value: float) -> None:
        nonlocal img
        img = img * (1 - mask) + mask * value

    if "Effusion" in has:  # fluid level: the lung base is white below a flat line, curving up at the side
        side = int(rng.integers(2))
        level = lung_cy + rng.uniform(-0.02, 0.05)
        meniscus = level - 0.08 * np.clip(np.abs(c.x - sides[side]) / 0.14 - 0.3, 0, 1)
        paint(lung_of(side) * np.clip((c.y - meniscus) * size / 1.5, 0, 1), 0.68)
    if "Pneumothorax" in has:  # collapsed apex: black, no lung markings, a bright pleural line
        side = int(rng.integers(2))
        region = c.ellipse(sides[side] + (0.05 if side else -0.05), lung_cy - 0.12, 0.13, 0.17) * lung_of(side)
        paint(region, 0.0)
        rim = c.ellipse(sides[side] + (0.02 if side else -0.02), lung_cy - 0.12, 0.08, 0.12)
        paint(np.clip(rim - c.ellipse(sides[side] + (0.02 if side else -0.02), lung_cy - 0.12, 0.06, 0.1), 0, 1), 0.8)
    if "Atelectasis" in has:  # a collapsed lobe: a dense wedge from the hilum out to the lateral wall
        side = int(rng.integers(2))
        out_x = sides[side] + (-0.14 if side == 0 else 0.14)
        t = np.clip((c.x - 0.5 - shift_x) / (out_x - 0.5 - shift_x), 0, 1)  # 0 at the hilum, 1 at the wall
        mid = lung_cy + rng.uniform(-0.02, 0.06)
        wedge = np.clip(1 - np.abs(c.y - mid) / (0.01 + 0.07 * t), 0, 1) * lung_of(side)
        paint(np.clip(wedge * 2, 0, 1), 0.78)
    if "Consolidation" in has:  # a large homogeneous dense region
        side = int(rng.integers(2))  # a whole upper lobe, white, with dark air bronchograms
        cx, cy = sides[side], lung_cy - 0.1
        lobe = lung_of(side) * np.clip((lung_cy + 0.02 - c.y) * size / 2, 0, 1)
        paint(lobe, 0.58)
        for k in range(3):
            line = np.clip(1 - np.abs((c.x - cx) * np.cos(k) - (c.y - cy) * np.sin(k)) / 0.01, 0, 1)
            paint(line * lobe * c.ellipse(cx, cy, 0.1, 0.12), 0.25)
    if "Pneumonia" in has:  # a patchy, mottled opacity in a lower zone
        side = int(rng.integers(2))
        lower = lung_of(side) * np.clip((c.y - lung_cy - 0.02) * size / 2, 0, 1)
        mottle = np.clip(0.6 + 1.2 * _smooth_noise(rng, size, 14), 0, 1)  # confluent patches, not homogeneous
        paint(lower * mottle, 0.7)
    if "Edema" in has:  # bilateral perihilar haze (the "butterfly")
        haze = np.maximum(c.gaussian(0.37 + shift_x, lung_cy, 0.1), c.gaussian(0.63 + shift_x, lung_cy, 0.1))
        paint(np.clip(haze * 1.3, 0, 1) * lungs, 0.55)
    if "Infiltration" in has:  # scattered fuzzy blobs in both lungs
        for _ in range(int(rng.integers(10, 15))):
            cx, cy = in_lung(0.09, 0.2)
            paint(np.clip(c.gaussian(cx, cy, 0.03) * 1.2, 0, 1), 0.58)
    if "Fibrosis" in has:  # a coarse reticular net in the upper zones
        net = np.maximum(np.abs(np.sin(c.x * np.pi / 0.08)), np.abs(np.sin(c.y * np.pi / 0.08))) > 0.8
        paint(net * lungs * (c.y < lung_cy + 0.08) * 0.95, 0.65)
    if "Pleural_Thickening" in has:  # a white rim along the lateral pleura
        for side, cx in enumerate(sides):
            outer = c.ellipse(cx, lung_cy, 0.14 * lung_scale, lung_ry)
            inner = c.ellipse(
                cx + (0.035 if side == 0 else -0.035), lung_cy, 0.14 * lung_scale - 0.035, lung_ry - 0.015
            )
            paint(np.clip(outer - inner, 0, 1), 0.78)
    if "Mass" in has:  # one large round opacity
        cx, cy = in_lung(0.05, 0.12)
        paint(c.ellipse(cx, cy, 0.1, 0.1), 0.92)
    if "Nodule" in has:  # a few small round opacities
        for _ in range(int(rng.integers(4, 8))):
            cx, cy = in_lung(0.08, 0.18)
            paint(c.ellipse(cx, cy, 0.032, 0.032), 0.88)
    if "Hernia" in has:  # a gas bubble with a bright wall behind the heart
        cy = 0.7 + shift_y
        paint(c.ellipse(0.5 + shift_x, cy, 0.1, 0.085), 0.85)
        paint(c.ellipse(0.5 + shift_x, cy, 0.08, 0.065), 0.02)
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    gamma = rng.uniform(0.92, 1.08)
    return (np.clip(img, 0, 1) ** gamma * 255 + 0.5).astype(np.uint8)


def _records(config: SynthConfig, rng: np.random.Generator) -> list[_Record]:
    rates = SYNTH_PREVALENCE if config.prevalence == "synthetic" else REAL_PREVALENCE
    records: list[_Record] = []
    patient = 0
    while len(records) < config.n:
        patient += 1
        count = min(int(rng.integers(1, 7)), config.n - len(records))  # 1-6 images per patient
        test = bool(rng.random() < TEST_PATIENT_SHARE)
        age, sex = int(rng.integers(18, 90)), str(rng.choice(["M", "F"]))
        for k in range(count):
            labels = tuple(label for label in LABELS if rng.random() < rates[label])
            view = "AP" if rng.random() < 0.4 else "PA"
            records.append(_Record(f"{patient:08d}_{k:03d}.png", patient, k, age + k // 3, sex, view, labels, test))
    return records


def _metadata_line(r: _Record, size: int) -> str:
    findings = "|".join(r.labels) or "No Finding"
    return f"{r.name},{findings},{r.follow_up},{r.patient_id},{r.age},{r.sex},{r.view},{size},{size},0.143,0.143"


def write_synthetic(
    out_dir: Path,
    config: SynthConfig,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write the dataset into `out_dir` (built in a temporary folder, then renamed into place)."""
    if config.n < 1 or config.size < 16:
        raise InputError("synth needs --n >= 1 and --size >= 16")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir} already exists; pass --overwrite to replace it or choose another folder")
    rng = np.random.default_rng(config.seed)
    records = _records(config, rng)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes 0700; the dataset should be as readable as any new folder
    try:
        (staging / "images").mkdir()
        for i, record in enumerate(records):
            # each image has its own generator, so an image does not depend on how many came before it
            pixels = render(record.labels, config.size, np.random.default_rng([config.seed, i]))
            Image.fromarray(pixels, mode="L").save(staging / "images" / record.name, compress_level=1)
            if progress:
                progress(1)
        lines = [HEADER, *(_metadata_line(r, config.size) for r in records)]
        (staging / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (staging / TRAIN_VAL_LIST).write_text("\n".join(r.name for r in records if not r.test), encoding="utf-8")
        (staging / TEST_LIST).write_text("\n".join(r.name for r in records if r.test), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {
        "images": len(records),
        "patients": len({r.patient_id for r in records}),
        "test_images": sum(r.test for r in records),
        **{label: sum(label in r.labels for r in records) for label in LABELS},
    }
