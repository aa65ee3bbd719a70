"""The pictures: one radiograph with a label's heatmap over it (`explain`), and a grid of boxed examples (`localize`).

Heatmaps are drawn with the `jet` colour map relative to their own maximum, with an opacity that grows with the
value, so the anatomy stays visible where the model did not look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import Image

from cxrtool.artifacts import atomic_path
from cxrtool.data.images import to_unit
from cxrtool.explain.geometry import Heatmap, fitted_size

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

CMAP = "jet"
MAX_OPACITY = 0.55
OVERLAY_SIDE = 1024  # overlays are drawn at the original size up to this long side
THUMB_SIDE = 320


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def display(img: Image.Image, heatmap: Heatmap, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """(gray [0,1], map relative to its maximum [0,1]) at the fitted display size."""
    width, height = fitted_size(*img.size, long_side)
    gray = to_unit(img.resize((width, height), Image.Resampling.BILINEAR) if img.size != (width, height) else img)
    values = heatmap.render(width, height)
    top = float(values.max())
    return gray, (values / top if top > 0 else values)


def blend(gray: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """RGB in [0, 1]: the colour-mapped map over the radiograph, opaque in proportion to the map's value."""
    from matplotlib import colormaps

    colour = colormaps[CMAP](np.clip(relative, 0.0, 1.0))[..., :3]
    alpha = (np.clip(relative, 0.0, 1.0) * MAX_OPACITY)[..., None]
    return np.clip(gray[..., None] * (1.0 - alpha) + colour * alpha, 0.0, 1.0)


def _draw_map(ax: Axes, gray: np.ndarray, relative: np.ndarray) -> None:
    # Composed once in numpy at the size it is drawn: no colour mapping or resampling left to matplotlib.
    ax.imshow(blend(gray, relative), interpolation="nearest")
    ax.set_axis_off()


def draw_overlay(
    path: Path,
    img: Image.Image,
    heatmap: Heatmap,
    *,
    label: str,
    probability: float,
    peak: tuple[int, int] | None,
    method: str,
) -> None:
    """`<image>_<label>.png`: the radiograph, the map over it, a colour bar, label and probability in the corner."""
    plt = _pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    gray, relative = display(img, heatmap, OVERLAY_SIDE)
    height, width = gray.shape
    bar = max(70, width // 9)  # room for the colour bar and its labels
    dpi = 100
    fig = plt.figure(figsize=((width + bar) / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, width / (width + bar), 1.0))
    _draw_map(ax, gray, relative)
    size = max(7.0, height / 45)
    ax.text(
        0.015 * width,
        0.015 * height,
        f"{label}  p = {probability:.3f}",
        color="white",
        fontsize=size,
        va="top",
        ha="left",
        bbox={"facecolor": "black", "alpha": 0.65, "pad": 3, "edgecolor": "none"},
    )
    ax.text(0.015 * width, 0.985 * height, method, color="white", fontsize=size * 0.6, va="bottom", ha="left")
    if peak is not None:
        sx, sy = width / img.size[0], height / img.size[1]
        ax.plot((peak[0] + 0.5) * sx, (peak[1] + 0.5) * sy, marker="+", color="white", ms=size, mew=2)
    cax = fig.add_axes(((width + bar * 0.15) / (width + bar), 0.1, bar * 0.18 / (width + bar), 0.8))
    colorbar = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=CMAP), cax=cax)
    colorbar.set_label("share of the map's maximum", fontsize=size * 0.6)
    colorbar.ax.tick_params(labelsize=size * 0.55)
    _save_rgb(fig, path)
    plt.close(fig)


def _save_rgb(fig: Figure, path: Path) -> None:
    """The canvas as an RGB PNG at zlib level 3: a quarter of savefig's time (RGBA, level 6) for a grainy
    radiograph, for a file ~8% larger."""
    canvas = cast("FigureCanvasAgg", fig.canvas)  # `_pyplot` selects the Agg backend
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    with atomic_path(path) as tmp:
        rgb.save(tmp, format="PNG", compress_level=3)


@dataclass(frozen=True)
class Panel:
    """One example of `localize`: a radiograph, its label's map, the radiologist's box and the predicted one."""

    img: Image.Image
    heatmap: Heatmap
    box: tuple[float, float, float, float]  # x, y, w, h in original pixels
    predicted: tuple[float, float, float, float] | None
    peak: tuple[int, int] | None
    title: str


def draw_examples(path: Path, rows: Sequence[Sequence[Panel | None]], *, column_titles: Sequence[str]) -> None:
    """A grid of panels (one row per label); a ground-truth box in green, the predicted box dashed in white."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    n_rows, n_cols = max(1, len(rows)), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.3 * n_cols, 3.55 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            ax = axes[r][c]
            ax.set_axis_off()
            if panel is None:
                continue
            gray, relative = display(panel.img, panel.heatmap, THUMB_SIDE)
            _draw_map(ax, gray, relative)
            sx, sy = gray.shape[1] / panel.img.size[0], gray.shape[0] / panel.img.size[1]
            x, y, w, h = panel.box
            ax.add_patch(Rectangle((x * sx, y * sy), w * sx, h * sy, fill=False, edgecolor="lime", lw=1.6))
            if panel.predicted is not None:
                px, py, pw, ph = panel.predicted
                ax.add_patch(
                    Rectangle((px * sx, py * sy), pw * sx, ph * sy, fill=False, edgecolor="white", lw=1.3, ls="--")
                )
            if panel.peak is not None:
                ax.plot((panel.peak[0] + 0.5) * sx, (panel.peak[1] + 0.5) * sy, "w+", ms=9, mew=1.5)
            ax.set_title(panel.title, fontsize=7.5)
    for c, title in enumerate(column_titles):
        axes[0][c].text(0.5, 1.18, title, transform=axes[0][c].transAxes, ha="center", fontsize=10, weight="bold")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
