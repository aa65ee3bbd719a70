"""The codec report: the autoencoder against classic codecs at the same rate, on one set of images.

    image (8-bit) ─┬─ encoder ─ z ─┬─ round(clamp(z,0,1)·255)/255 ─ decoder ─► x̂   autoencoder uint8    1 B/latent
                   │   (LatentCodec: the model's clamp, the store's quantisation, decompress's 8-bit decoding)
                   │               │    └─ PNG / lossless WebP of those bytes ───► the same x̂, uint8+png, uint8+webp
                   │               └─ z as float16 ────────────────── decoder ─► x̂   autoencoder float16  2 B/latent
                   ├─ down 4× and up (bicubic, Lanczos) ───────────────────────► x̂   same 8-bit samples as uint8
                   └─ JPEG / WebP / JPEG 2000 at the one setting whose pooled bpp is nearest the uint8 row's ─► x̂

Every row is scored against the image's 8-bit values (a 16-bit source is rounded to 8 bits first, so every method
sees the same reference): PSNR is the mean over images of `psnr_8bit`, SSIM the mean of `ssim` (Wang et al. 2004,
Gaussian σ = 1.5, data range 255), both on the 8-bit-rounded reconstruction.

Bits per pixel are pooled over the set, 8·Σbytes / Σpixels of the images as scored (after `size`), the definition of
`search_setting_for_set` and of a latent store's summary.json:
* autoencoder: the latent's payload, ceil(H/4)·ceil(W/4) values of 1 byte (uint8) or 2 (float16), so 0.5 and 1.0
  bpp when both sides are multiples of 4 and a little more otherwise (the edge padding is stored too); the coded rows
  count the PNG or WebP files `compress --entropy` stores, whole (`LatentFormat.pack`). Their coding is lossless
  (checked here on every image), so they share the uint8 row's reconstructions and scores. A latent store adds its
  shard header and manifest on top; that overhead is tiny per image, and `compress` reports the bpp of the bytes on
  disk in its summary.json;
* bicubic and Lanczos: the 8-bit downsampled image, the same count of bytes as the uint8 latent;
* JPEG, WebP, JPEG 2000: whole files, headers included (a few hundred bytes each, which matters on small images).

An image the autoencoder reconstructs exactly has PSNR = inf and so would the row's mean; the report keeps that
(honestly, rather than leaving the image out) and says so in a note. A real radiograph at 0.5 bpp never gets there.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxrtool.compression.baselines import (
    CODECS,
    CodecUnavailable,
    check_codec,
    decode,
    downsampled_shape,
    resample_roundtrip,
    search_setting_for_set,
)
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.data.images import IMAGE_SUFFIXES, ImageReadError, list_image_files, open_image, to_unit
from cxrtool.errors import InputError, RunFailure
from cxrtool.stats.quality import SSIM_WINDOW, psnr_8bit, ssim

if TYPE_CHECKING:  # torch stays out of this module's import (codec-report's --help)
    from cxrtool.compression.codec import LatentCodec

COLUMNS = ("method", "setting", "bpp", "psnr", "ssim", "images")
RESAMPLING = ("bicubic", "lanczos")
# A codec whose pooled bpp misses the target by more than this share gets a note (small images: headers dominate).
RATE_TOLERANCE = 0.05

Advance = Callable[..., None]
ProgressFactory = Callable[[str, "int | None"], AbstractContextManager[Advance]]


@dataclass
class CodecReport:
    """`table` has the columns of `COLUMNS`, one row per method and setting; notes and warnings are for the log."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # a codec left out or off its rate, an infinite PSNR
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (image, why)


@contextlib.contextmanager
def _no_progress(description: str, total: int | None) -> Iterator[Advance]:
    yield lambda n=1, info=None: None


def list_images(folder: Path, *, limit: int | None = None) -> list[Path]:
    """Image files below `folder` (any nesting, hidden entries skipped), sorted by relative path; the first `limit`."""
    found = [Path(folder) / rel for rel in list_image_files(folder)]
    if not found:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found below {folder} (IN_DIR)")
    return found[:limit] if limit is not None else found


def resolve_codecs(codecs: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(codecs to run, warnings). None: every codec this Pillow has, a missing one warned of; a named one must exist."""
    if codecs is not None:
        for codec in codecs:
            check_codec(codec)  # unknown or unavailable: a typed error naming the fix
        return list(dict.fromkeys(codecs)), []
    chosen, warnings = [], []
    for codec in CODECS:
        try:
            check_codec(codec)
        except CodecUnavailable as e:
            warnings.append(f"left out: {e}")
        else:
            chosen.append(codec)
    return chosen, warnings


def load_references(
    paths: Sequence[Path], *, size: int | None, progress: ProgressFactory = _no_progress
) -> tuple[list[np.ndarray], list[tuple[Path, str]]]:
    """(8-bit images, skipped (path, why)): each image as one channel, resized to size×size if asked."""
    from cxrtool.data.transforms import resize

    images, skipped = [], []
    with progress("load", len(paths)) as advance:
        for path in paths:
            try:
                img = open_image(path)
            except ImageReadError as e:
                skipped.append((path, str(e)))
            else:
                img = resize(img, size) if size is not None else img
                if min(img.size) < SSIM_WINDOW:
                    skipped.append((path, f"{img.width}×{img.height} is smaller than SSIM's {SSIM_WINDOW}-px window"))
                else:
                    images.append(np.round(to_unit(img) * 255.0).astype(np.uint8))
            advance()
    return images, skipped


class _Scores:
    """Running PSNR/SSIM of one row."""

    def __init__(self) -> None:
        self.psnr: list[float] = []
        self.ssim: list[float] = []

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        self.psnr.append(psnr_8bit(reference, test))
        self.ssim.append(ssim(reference, test))

    def row(self, method: str, setting: str, bpp: float) -> dict:
        # One exact image makes the mean inf: kept, and warned of, rather than dropping that image.
        psnr, mean_ssim = float(np.mean(self.psnr)), float(np.mean(self.ssim))
        return {"method": method, "setting": setting, "bpp": bpp, "psnr": psnr, "ssim": mean_ssim}


def _pooled_bpp(images: Sequence[np.ndarray], bytes_per_image: Callable[[np.ndarray], int]) -> float:
    return 8.0 * sum(bytes_per_image(a) for a in images) / sum(a.size for a in images)


def coded_forms() -> tuple[list[LatentFormat], list[str]]:
    """The lossless codings of the uint8 latent this Pillow can write, and a warning for one it cannot."""
    forms, warnings = [LatentFormat("uint8", "png")], []
    try:
        forms.append(LatentFormat("uint8", "webp"))
    except InputError as e:
        warnings.append(f"left out the uint8+webp row: {e}")
    return forms, warnings


def autoencoder_rows(
    codec: LatentCodec,
    images: Sequence[np.ndarray],
    *,
    forms: Sequence[LatentFormat] = (),
    progress: ProgressFactory = _no_progress,
) -> tuple[list[dict], list[str]]:
    """The uint8 row, a row per lossless coding in `forms` (see `coded_forms`) and the float16 row of an autoencoder
    or joint checkpoint's codec: each latent stored as `compress` stores it and decoded as `decompress` does."""
    import torch

    from cxrtool.models.autoencoder import SCALE, pad_to_multiple

    encode, decode = codec.encoder(), codec.decoder(eight_bit=False)  # scored as `_levels` rounds it
    u8, f16 = _Scores(), _Scores()
    raw_u8, raw_f16 = LatentFormat("uint8", "none"), LatentFormat("float16", "none")
    coded_bytes = dict.fromkeys((f.name for f in forms), 0)
    outside = values = 0
    with progress("autoencoder", len(images)) as advance, torch.inference_mode():
        for image in images:
            x = torch.from_numpy(image.astype(np.float32) * np.float32(1.0 / 255.0))[None, None]
            z = encode(pad_to_multiple(x))  # clamped by the model where it clamps (joint); else uint8 clips it
            outside += int(np.count_nonzero((z < 0) | (z > 1)))
            values += z.size
            stored = codec.quantise(z, raw_u8)
            for form in forms:
                coded_bytes[form.name] += _coded_size(form, stored)
            u8.add(image, decode(codec.dequantise(stored), image.shape))
            f16.add(image, decode(codec.dequantise(codec.quantise(z, raw_f16)), image.shape))
            advance()

    def latent_values(image: np.ndarray) -> int:
        return math.prod(downsampled_shape(image.shape, SCALE))

    rows = [u8.row("autoencoder", "uint8", _pooled_bpp(images, latent_values))]
    pixels = sum(a.size for a in images)
    rows += [u8.row("autoencoder", name, 8.0 * size / pixels) for name, size in coded_bytes.items()]
    rows.append(f16.row("autoencoder", "float16", _pooled_bpp(images, lambda a: 2 * latent_values(a))))
    notes = []
    if not codec.clamps:
        notes.append(
            f"autoencoder: {outside / values:.4%} of latent values lie outside [0, 1] (stage-2 latents are not "
            "clamped); the uint8 rows clip them, the float16 row keeps them"
        )
    return rows, notes


def _coded_size(form: LatentFormat, latent: np.ndarray) -> int:
    """Bytes of the coded latent, once its decoding is checked to give the latent back exactly."""
    data = form.pack(latent)
    if not np.array_equal(form.unpack(np.frombuffer(data, np.uint8), latent.shape), latent):
        raise RunFailure(f"{form.name} did not give a latent back exactly; this is a bug, please report it")
    return len(data)


def resampling_rows(images: Sequence[np.ndarray], *, progress: ProgressFactory = _no_progress) -> list[dict]:
    """Bicubic and Lanczos down 4× per side and back: the 8-bit samples the uint8 latent would hold."""
    from cxrtool.models.autoencoder import SCALE

    rows = []
    bpp = _pooled_bpp(images, lambda a: math.prod(downsampled_shape(a.shape, SCALE)))
    for method in RESAMPLING:
        scores = _Scores()
        with progress(method, len(images)) as advance:
            for image in images:
                scores.add(image, resample_roundtrip(image, SCALE, method))  # type: ignore[arg-type]
                advance()
        rows.append(scores.row(method, f"{SCALE}x", bpp))
    return rows


def codec_row(
    images: Sequence[np.ndarray], codec: str, target_bpp: float, *, progress: ProgressFactory = _no_progress
) -> tuple[dict, list[str]]:
    """One codec at the single setting whose pooled bpp over `images` is nearest `target_bpp`, and its warnings."""
    scores = _Scores()
    with progress(codec, len(images)) as advance:
        advance(0, info="searching the setting")
        found = search_setting_for_set(images, codec, target_bpp)  # type: ignore[arg-type]
        setting = f"ratio={found.setting:.2f}" if codec == "jpeg2000" else f"quality={int(found.setting)}"
        for image, data in zip(images, found.data):
            scores.add(image, decode(data))
            advance(info=setting)
    warnings = []
    if abs(found.bpp - target_bpp) > RATE_TOLERANCE * target_bpp:
        warnings.append(
            f"{codec}: the nearest rate it reaches is {found.bpp:.4f} bpp ({setting}), not {target_bpp:.4f}; "
            "on small images the file headers alone can exceed the budget"
        )
    return scores.row(codec, setting, found.bpp), warnings


def codec_report(
    paths: Sequence[Path],
    ckpt: Path,
    *,
    size: int | None = None,
    codecs: Sequence[str] | None = None,
    progress: ProgressFactory | None = None,
) -> CodecReport:
    """The report on `paths` for the autoencoder (or joint) checkpoint `ckpt`; see the module's docstring.

    `size` resizes every image to size×size first (bilinear, as evaluation does; e.g. 896 for a joint model).
    `codecs` None runs every codec Pillow has (a missing one is noted); a named codec Pillow lacks is an error.
    `progress(description, total)` is a context manager yielding `advance(n=1, info=None)`, one per phase.
    """
    from cxrtool.compression.codec import load_codec

    if size is not None and size < SSIM_WINDOW:
        raise InputError(f"--size {size} is too small: SSIM needs at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels")
    progress = progress or _no_progress
    chosen, warnings = resolve_codecs(codecs)
    latent_codec = load_codec(ckpt)
    images, skipped = load_references(paths, size=size, progress=progress)
    if not images:
        raise InputError(f"none of the {len(paths)} image(s) could be used; first problem: {skipped[0][1]}")
    forms, form_warnings = coded_forms()
    warnings += form_warnings
    rows, notes = autoencoder_rows(latent_codec, images, forms=forms, progress=progress)
    rows += resampling_rows(images, progress=progress)
    for name in chosen:
        row, codec_warnings = codec_row(images, name, rows[0]["bpp"], progress=progress)
        rows.append(row)
        warnings += codec_warnings
    inf_rows = [f"{r['method']} {r['setting']}" for r in rows if math.isinf(r["psnr"])]
    if inf_rows:
        warnings.append(f"PSNR is inf for {', '.join(inf_rows)}: at least one image was reconstructed exactly")
    table = pd.DataFrame(rows).assign(images=len(images))[list(COLUMNS)]
    return CodecReport(table=table, notes=notes, warnings=warnings, skipped=skipped)


def best_marks(table: pd.DataFrame) -> list[str]:
    """Per row: 'psnr', 'ssim', 'psnr, ssim' or '' where the row has the highest value of that metric (ties too)."""
    marks: list[list[str]] = [[] for _ in range(len(table))]
    for metric in ("psnr", "ssim"):
        values = table[metric].to_numpy(dtype=float)
        if np.isnan(values).all():
            continue
        for i in np.flatnonzero(values == np.nanmax(values)):
            marks[i].append(metric)
    return [", ".join(m) for m in marks]


def plot_rate_distortion(table: pd.DataFrame, path: Path) -> list[str]:
    """PSNR and SSIM against bits per pixel for every row of the report (report.png): the autoencoder's points as
    stars joined in order of rate, each other method as one labelled circle. Returns the rows left off the plot
    (an infinite PSNR cannot be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cxrtool.artifacts import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    left_off: list[str] = []
    ae = table[table["method"] == "autoencoder"].sort_values("bpp")
    others = table[table["method"] != "autoencoder"]
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        keep = np.isfinite(ae[metric].to_numpy(dtype=float))
        left_off += [f"autoencoder {setting}" for setting in ae["setting"][~keep]]
        finite = ae[keep]
        ax.plot(finite["bpp"], finite[metric], "-", color="C3", lw=0.8, alpha=0.6)
        ax.plot(finite["bpp"], finite[metric], "*", color="C3", ms=13, label="autoencoder", ls="none")
        for k, row in enumerate(finite.itertuples()):  # neighbours (png, webp) labelled below and above in turn
            ax.annotate(row.setting, (row.bpp, getattr(row, metric)), textcoords="offset points",
                        xytext=(-4, -13 if k % 2 else 8), fontsize=7, color="C3")  # fmt: skip
        for i, row in enumerate(others.itertuples()):
            value = getattr(row, metric)
            if not math.isfinite(value):
                left_off.append(f"{row.method} {row.setting}")
                continue
            ax.plot(row.bpp, value, "o", color=f"C{i if i < 3 else i + 1}", ms=7, label=row.method)  # C3: ae
            ax.annotate(row.method, (row.bpp, value), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.set_xlim(0, 1.1 * float(table["bpp"].max()) if len(table) else 1)  # room for the labels
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    images = int(table["images"].iloc[0]) if len(table) else 0
    fig.suptitle(f"Rate and distortion on {images} image(s)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return sorted(set(left_off))
