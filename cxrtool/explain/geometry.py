"""From the target layer's grid back to the original image's pixels, through the model's input geometry.

    original W×H ─ resize ─► crop×crop ─┬─ classifier: DenseNet input n = crop ──────────────────► grid h×w
                                        └─ joint: edge-pad to 4·n, encoder /4 ─► latent n×n ─ DenseNet ─► grid h×w

Every step maps pixel centres linearly (Pillow's resize and `reduce` are centre-aligned; latent pixel l covers crop
pixels [4l, 4l + 4)), so the grid spans `span = W · (scale·n) / crop` original pixels from the top-left corner,
where scale·n is the crop side the DenseNet input covers (crop for a classifier; 4·ceil(crop/4) for a joint model,
the encoder's edge padding included) and the grid is spread evenly over the DenseNet input, as pytorch-grad-cam
spreads it. For DenseNet121 that is exact when its input side is a multiple of 32 (224: the paper's classifier, and
the joint model's 896 → 224 latent); otherwise its last cells sit up to (n mod 32)/n of the side off.

A map is sampled bilinearly at pixel centres with the grid's edge values held beyond its first and last cell
centres, which is `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` when the span is the
output size. Bilinear sampling is separable, so a map is two small matrix products, not a per-pixel gather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cxrtool.models.autoencoder import SCALE


def model_side(kind: str, crop: int) -> tuple[int, int]:
    """(DenseNet input side n, crop pixels per DenseNet input pixel) for a checkpoint kind at its crop size."""
    if kind == "joint":
        return math.ceil(crop / SCALE), SCALE  # pad_to_multiple, then the stride-4 encoder
    return crop, 1


def interp_matrix(out: int, cells: int, span: float, extent: float) -> np.ndarray:
    """(out, cells) weights sampling `cells` grid values spread over `span` units at the centres of `out` pixels
    that tile `extent` units: output pixel u has centre (u + 0.5)·extent/out, grid cell i has centre
    (i + 0.5)·span/cells; linear between neighbouring cells, the edge cell's value beyond the edge centres."""
    centres = (np.arange(out, dtype=np.float64) + 0.5) * (extent / out)
    pos = np.clip(centres * (cells / span) - 0.5, 0.0, cells - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, cells - 1)
    frac = pos - low
    weights = np.zeros((out, cells), dtype=np.float64)
    rows = np.arange(out)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


@dataclass(frozen=True)
class Heatmap:
    """One label's map for one image: the target layer's grid (non-negative) and where it lies on the original.

    `width`×`height` is the original image; the grid spans `span_x`×`span_y` original pixels from its top-left
    corner (more than the image where the joint model's encoder padded the crop)."""

    grid: np.ndarray  # (h, w) float32, >= 0
    width: int
    height: int
    span_x: float
    span_y: float

    @property
    def max(self) -> float:
        return float(self.grid.max()) if self.grid.size else 0.0

    def render(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The map as a (height, width) float32 array over the whole original image (default: its own size)."""
        width, height = width or self.width, height or self.height
        h, w = self.grid.shape
        rows = interp_matrix(height, h, self.span_y, self.height)
        cols = interp_matrix(width, w, self.span_x, self.width)
        # torch's matmul: numpy's multi-threaded OpenBLAS took 15× longer on this thin (k = grid side) product.
        import torch

        left = torch.from_numpy(rows.astype(np.float32)) @ torch.from_numpy(self.grid.astype(np.float32))
        return (left @ torch.from_numpy(np.ascontiguousarray(cols.T, dtype=np.float32))).numpy()


def image_heatmap(grid: np.ndarray, *, kind: str, crop: int, width: int, height: int) -> Heatmap:
    """Place a grid computed on a `kind` model's input (the image resized to crop×crop) on the W×H original."""
    n, scale = model_side(kind, crop)
    covered = scale * n / crop  # DenseNet input extent in crop pixels, per crop pixel
    return Heatmap(
        grid=np.asarray(grid, dtype=np.float32),
        width=width,
        height=height,
        span_x=width * covered,
        span_y=height * covered,
    )


def fitted_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the longer side `long_side` (never enlarged) and the aspect ratio kept."""
    factor = min(1.0, long_side / max(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def peak(values: np.ndarray) -> tuple[int, int] | None:
    """(x, y) pixel of a rendered map's maximum (the first in row-major order), or None for an all-zero map."""
    if values.size == 0 or not values.max() > 0:
        return None
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(x), int(y)
