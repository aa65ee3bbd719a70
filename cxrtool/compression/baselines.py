"""Classic baselines for the latent codec at the same size budget: resampling, JPEG, WebP and JPEG 2000 (Pillow).

The autoencoder stores 1 byte per latent pixel at 4× down per side, i.e. 0.5 bits per original pixel. Each baseline
is compared at that rate: resampling keeps the same number of 8-bit samples; a codec is run at the one setting
(`search_setting_for_set`) whose bits per pixel over the whole image set lie nearest the target.

Every codec has one numeric knob, its *setting*, and file size grows monotonically (up to small wiggles) with it:

    codec     setting                               range     file
    jpeg      Pillow quality (integer)              1..95     JFIF, optimised Huffman tables
    webp      Pillow quality, lossy (integer)       0..100    RIFF/WebP, method 4
    jpeg2000  compression ratio, raw/coded (float)  1..10000  raw J2K codestream, 9/7 wavelet, one layer

For JPEG 2000 the setting is a *ratio* (`quality_mode="rates"`, `quality_layers=[ratio]`), so its file *shrinks* as
the setting grows; the searches know each codec's direction. Sizes are whole files, headers included.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from cxrtool.errors import InputError, RunFailure

Codec = Literal["jpeg", "webp", "jpeg2000"]
Resampling = Literal["bicubic", "lanczos"]

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
# A search stops once the JPEG 2000 ratio is known to within 0.1%: OpenJPEG's rate control meets a ratio to ~0.2%.
_RATIO_TOLERANCE = 1e-3


class CodecUnavailable(RunFailure):
    """The installed Pillow was built without the library a codec needs."""


class EncodedImage(NamedTuple):
    setting: float  # an int for jpeg and webp
    data: bytes


class EncodedSet(NamedTuple):
    setting: float  # an int for jpeg and webp
    bpp: float  # 8·(bytes of all files) / (pixels of all images)
    data: list[bytes]


@dataclass(frozen=True)
class _CodecSpec:
    pillow_format: str
    feature: str  # the name PIL.features.check knows
    low: float
    high: float
    integer: bool
    grows: bool  # True when a larger setting gives a larger file
    options: Callable[[float], dict]


def _jpeg2000_options(ratio: float) -> dict:
    # Pillow lowers OpenJPEG's 6 resolution levels by itself for images too small for them.
    return {
        "quality_mode": "rates",
        "quality_layers": [float(ratio)],
        "irreversible": True,  # the 9/7 wavelet of lossy JPEG 2000; Pillow's default 5/3 is the lossless one
        "no_jp2": True,  # a bare codestream: the smallest complete file, no JP2 boxes
    }


CODECS: dict[str, _CodecSpec] = {
    "jpeg": _CodecSpec("JPEG", "jpg", 1, 95, True, True, lambda q: {"quality": int(q), "optimize": True}),
    "webp": _CodecSpec("WEBP", "webp", 0, 100, True, True, lambda q: {"quality": int(q), "lossless": False}),
    "jpeg2000": _CodecSpec("JPEG2000", "jpg_2000", 1.0, 10000.0, False, False, _jpeg2000_options),
}


def downsampled_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """The stored size of an H×W image at `factor`× down: ceil(H/f)×ceil(W/f), the autoencoder's latent size."""
    return -(-shape[0] // factor), -(-shape[1] // factor)


def resample_roundtrip(image: np.ndarray, factor: int, method: Resampling) -> np.ndarray:
    """Down `factor`× per side and back with one of Pillow's filters, on 8-bit `L` images; float32 in [0, 1].

    A side that is not a multiple of `factor` is edge-padded to one first and the result cropped back, as the
    autoencoder does (SPEC §1): the stored image is ceil(H/f)×ceil(W/f) 8-bit samples, both filters scale by exactly
    `factor` so pixel grids stay aligned, and the output has the input's shape.
    """
    if method not in _FILTERS:
        raise InputError(f"unknown resampling method {method!r}; choose one of {', '.join(_FILTERS)}")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InputError(f"resampling factor must be a positive integer, got {factor!r}")
    u8 = _as_uint8(image)
    height, width = u8.shape
    small_h, small_w = downsampled_shape((height, width), int(factor))
    padded = np.pad(u8, ((0, small_h * factor - height), (0, small_w * factor - width)), mode="edge")
    full = Image.fromarray(padded, mode="L")
    small = full.resize((small_w, small_h), _FILTERS[method])
    back = np.asarray(small.resize(full.size, _FILTERS[method]))[:height, :width]
    return back.astype(np.float32) * np.float32(1.0 / 255.0)


def check_codec(codec: str) -> _CodecSpec:
    """The codec's description, or a typed error when the name is unknown or Pillow was built without it."""
    spec = CODECS.get(codec)
    if spec is None:
        raise InputError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if not features.check(spec.feature):
        raise CodecUnavailable(
            f"codec {codec!r} is not available: this Pillow ({Image.__version__}) was built without "
            f"{spec.feature!r} support; install a Pillow wheel from PyPI (which bundles it) or leave {codec} out"
        )
    return spec


def encode_with(image_u8: np.ndarray, codec: Codec, setting: float) -> bytes:
    """One 8-bit grayscale image as a complete file of `codec` at `setting` (see the module's table)."""
    spec = check_codec(codec)
    image = _check_u8(image_u8)
    _check_setting(codec, spec, setting)
    buffer = io.BytesIO()
    try:
        Image.fromarray(image, mode="L").save(buffer, format=spec.pillow_format, **spec.options(setting))
    except (OSError, ValueError) as e:
        raise RunFailure(f"{codec} encoding of a {image.shape[1]}×{image.shape[0]} image failed: {e}") from None
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Any file `encode_with` wrote, back to an H×W uint8 array (WebP's RGB output is converted to luma)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            gray = img if img.mode == "L" else img.convert("L")
            return np.array(gray, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot decode {len(data)} bytes as an image: {e}") from None


def search_setting(image_u8: np.ndarray, codec: Codec, target_bytes: float) -> EncodedImage:
    """The setting whose file size is nearest `target_bytes`, and that file. Ties go to the smaller file."""
    image = _check_u8(image_u8)
    check_codec(codec)
    setting, files = _search(lambda s: [encode_with(image, codec, s)], codec, target_bytes, float(image.size))
    return EncodedImage(setting, files[0])


def search_setting_for_set(images: Sequence[np.ndarray], codec: Codec, target_bpp: float) -> EncodedSet:
    """One setting for all `images` whose bits per pixel over the set, 8·Σbytes / Σpixels, lie nearest `target_bpp`.

    This is how a codec report compares codecs at equal rate. Each step of the search encodes every image once;
    the bits per pixel are pooled (a pixel-weighted mean, equal to the plain mean for same-sized images, and the
    same definition as a latent store's `summary.json`).
    """
    if not images:
        raise InputError("search_setting_for_set needs at least one image")
    arrays = [_check_u8(image) for image in images]
    check_codec(codec)
    pixels = float(sum(a.size for a in arrays))
    setting, files = _search(
        lambda s: [encode_with(a, codec, s) for a in arrays], codec, target_bpp * pixels / 8.0, pixels
    )
    return EncodedSet(setting, 8.0 * sum(len(f) for f in files) / pixels, files)


class _Tracker:
    """Encodes at a setting once, remembers total sizes, and keeps the files of the best setting seen so far."""

    def __init__(self, encode: Callable[[float], list[bytes]], target: float) -> None:
        self.encode, self.target = encode, target
        self.sizes: dict[float, int] = {}
        self.best: tuple[float, int, float, list[bytes]] | None = None  # (distance, size, setting, files)

    def size(self, setting: float) -> int:
        if setting not in self.sizes:
            files = self.encode(setting)
            total = sum(len(f) for f in files)
            self.sizes[setting] = total
            candidate = (abs(total - self.target), total, setting, files)
            if self.best is None or candidate[:2] < self.best[:2]:
                self.best = candidate
        return self.sizes[setting]


def _search(
    encode: Callable[[float], list[bytes]], codec: str, target: float, raw_bytes: float
) -> tuple[float, list[bytes]]:
    """The best (setting, files) for a total size `target`; `raw_bytes` (one per pixel) seeds the ratio search."""
    if not (math.isfinite(target) and target > 0):
        raise InputError(f"target size must be a positive number, got {target!r}")
    spec = CODECS[codec]
    tracker = _Tracker(encode, target)
    if spec.integer:
        _bisect_integer(tracker, int(spec.low), int(spec.high))
    else:
        _bisect_log_ratio(tracker, spec.low, spec.high, raw_bytes)
    assert tracker.best is not None
    _, _, setting, files = tracker.best
    return (int(setting) if spec.integer else setting), files


def _bisect_integer(tracker: _Tracker, low: int, high: int) -> None:
    """Bisection for the pair of neighbouring qualities that bracket the target, then a local descent.

    Size grows with quality but not strictly (JPEG and WebP have small wiggles), so after bisection the best setting
    is moved to a nearer neighbour while one exists: the result is never beaten by the settings just beside it.
    """
    lo, hi = low, high
    if tracker.size(lo) < tracker.target < tracker.size(hi):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tracker.size(mid) <= tracker.target:
                lo = mid
            else:
                hi = mid
    while True:
        assert tracker.best is not None
        setting = int(tracker.best[2])
        for neighbour in (setting - 1, setting + 1):
            if low <= neighbour <= high:
                tracker.size(neighbour)
        if int(tracker.best[2]) == setting:
            return


def _bisect_log_ratio(tracker: _Tracker, low: float, high: float, raw_bytes: float) -> None:
    """Bisection on log(ratio) for JPEG 2000, whose file shrinks as the ratio grows.

    OpenJPEG aims at raw_bytes / ratio (one byte per 8-bit pixel), so ratio ×/÷ 1.1 around that guess usually
    brackets the target; otherwise the bracket is widened in doubling steps of log-ratio. It is then halved until the
    ratio is known to 0.1%.
    """
    lo, hi = math.log(low), math.log(high)

    def size(log_ratio: float) -> int:
        return tracker.size(min(max(math.exp(log_ratio), low), high))  # exp(log(x)) may overshoot x by an ulp

    guess = min(max(math.log(raw_bytes / tracker.target), lo), hi)
    step = math.log(1.1)
    small, large = max(guess - step, lo), min(guess + step, hi)  # small ratio = larger file
    widen = step
    while size(small) < tracker.target and small > lo:
        small, widen = max(small - widen, lo), 2 * widen
    widen = step
    while size(large) > tracker.target and large < hi:
        large, widen = min(large + widen, hi), 2 * widen
    if not size(small) >= tracker.target >= size(large):
        return  # the target lies beyond what the ratio range reaches: the nearest end is already the best
    while large - small > math.log1p(_RATIO_TOLERANCE):
        mid = 0.5 * (small + large)
        mid_size = size(mid)
        if mid_size == tracker.target:
            return
        if mid_size > tracker.target:
            small = mid
        else:
            large = mid


def _check_setting(codec: str, spec: _CodecSpec, setting: float) -> None:
    value = float(setting)
    if not (spec.low <= value <= spec.high) or (spec.integer and not value.is_integer()):
        kind = "an integer quality" if spec.integer else "a compression ratio"
        raise InputError(f"{codec} setting must be {kind} in {spec.low:g}..{spec.high:g}, got {setting!r}")


def _check_u8(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2 or array.size == 0:
        raise InputError(f"codecs take a non-empty H×W uint8 image, got dtype {array.dtype} and shape {array.shape}")
    return np.ascontiguousarray(array)


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as is; floats in [0, 1] as round(clip(x)·255), the 8-bit rounding of `stats.quality`."""
    array = np.asarray(image)
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"expected a non-empty H×W single-channel image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"expected a uint8 image or floats in [0, 1], got dtype {array.dtype}")
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
