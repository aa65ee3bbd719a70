"""DICOM radiographs read the way cxrtool reads a PNG: one channel, mode `L` (8-bit) or `F` on the 0–255 scale.

    stored values ── Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence) ── VOI ── MONOCHROME1
    inverted (bone bright, as in ChestX-ray14) ── [0, 1], handed over ×255

VOI, by `--dicom-window`: `file` (default) applies the file's VOI LUT Sequence or its first Window Center/Width
(LINEAR, LINEAR_EXACT or SIGMOID, as PS3.3 C.11.2.1.2 defines them) and falls back to `minmax` where the file has
neither; `minmax` maps the smallest and largest value after the Modality LUT, Pixel Padding Value (and Range Limit)
excluded, to 0 and 1; `none` maps the whole range that Bits Stored allows (through the Modality LUT) to 0 and 1.

Rescale and linear windows are affine, so the chain collapses to one clip(K·stored + C, 0, 255) computed once in
float32; where K = ±1 and C is an integer (an 8-bit MONOCHROME2 or MONOCHROME1 file without a window whose pixels
span 0–255, or with the window 128/256) the result is computed in integers and returned as mode `L`, so such a file
reads exactly like the PNG of its pixels. Lookup tables (Modality or VOI LUT Sequence) are pydicom's own
`apply_modality_lut` / `apply_voi`.

Only the Image Pixel and VOI/Modality LUT elements (group 0028) and the frame itself are read, never patient or study
attributes: nothing identifying leaves this module. The first frame of a multi-frame file is used and a colour file
becomes luma (ITU-R 601, as Pillow's `L` conversion), each with a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image

from cxrtool.log import warn

if TYPE_CHECKING:
    from pydicom.uid import UID

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
WINDOWS = ("file", "minmax", "none")
PREAMBLE = 132  # 128 bytes of preamble, then b"DICM"
# The setting lives in the environment so that every worker process inherits it, whatever the start method (fork,
# spawn, forkserver), including processes a command starts without knowing about DICOM (compress's loader).
WINDOW_ENV = "CXRTOOL_DICOM_WINDOW"
# the standard name of a DICOM media directory: it has the preamble but indexes files rather than holding an image
DICOMDIR = "DICOMDIR"


class DicomError(ValueError):
    """Not a DICOM image cxrtool can read; images.open_image turns it into an ImageReadError naming the file."""


def set_dicom_window(window: str) -> None:
    """Set `--dicom-window` for this process and every process it starts from now on."""
    check_window(window)
    os.environ[WINDOW_ENV] = window


def dicom_window() -> str:
    """The current `--dicom-window` (default `file`)."""
    return os.environ.get(WINDOW_ENV, "file")


def check_window(window: str) -> str:
    from cxrtool.errors import InputError

    if window not in WINDOWS:
        raise InputError(f"--dicom-window must be one of {', '.join(WINDOWS)}, not {window!r}")
    return window


def has_preamble(head: bytes) -> bool:
    return len(head) >= PREAMBLE and head[128:PREAMBLE] == b"DICM"


def sniff(path: str | os.PathLike[str]) -> bool:
    """Whether a file without an image suffix is DICOM: its 132 first bytes end in `DICM`."""
    try:
        with open(path, "rb") as f:
            return has_preamble(f.read(PREAMBLE))
    except OSError:
        return False


# ---- reading ----------------------------------------------------------------------------------------------------


def read_dicom(f: BinaryIO, name: str, window: str) -> Image.Image:
    """The first frame of the DICOM in `f` as an `L` or `F` image (see the module docstring); DicomError if none."""
    check_window(window)
    with warnings.catch_warnings():  # pydicom warns about many a harmless quirk; what fails is reported instead
        warnings.simplefilter("ignore")
        stored, tags = _first_frame(f)
        frames = int(tags.get("NumberOfFrames") or 1)
        if frames > 1:
            warn(f"{name} holds {frames} frames; using the first")
        try:
            return render(stored, tags, window, name)
        except DicomError:
            raise
        except Exception as e:  # a malformed LUT or tag value
            raise DicomError(f"unusable pixel attributes ({_one_line(e)})") from None


def _first_frame(f: BinaryIO) -> tuple[np.ndarray, Any]:
    """(stored values of frame 0, a dataset holding at least group 0028).

    First pydicom's streaming reader: group 0028 and the first frame only, so a multi-frame file is not decoded whole
    and nothing else is parsed. Where it cannot (a deflated file, a file without file meta, an odd offset table), the
    whole dataset is read and decoded instead; only its group 0028 is ever used."""
    from pydicom import Dataset, dcmread
    from pydicom.pixels import pixel_array

    tags = Dataset()
    try:
        return pixel_array(f, ds_out=tags, index=0), tags
    except Exception as e:  # pydicom and its plugins raise many types for a malformed file: all mean unreadable
        streaming = e
    try:
        f.seek(0)
        ds = dcmread(f, force=True)
    except Exception:
        raise DicomError(f"not a readable DICOM file ({_one_line(streaming)})") from None
    if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if "SOPClassUID" not in ds and "Modality" not in ds:
            raise DicomError(f"not a DICOM image ({_one_line(streaming)})")
        sop = ds.get("SOPClassUID")
        kind = f"Modality {ds.get('Modality') or '?'}, {getattr(sop, 'name', sop) or 'no SOP class'}"
        raise DicomError(f"a DICOM without pixel data ({kind}), not an image")
    if not ds.file_meta.get("TransferSyntaxUID"):  # no file meta: the encoding pydicom found decides
        ds.file_meta.TransferSyntaxUID = _syntax_of(ds.original_encoding)
    try:
        return pixel_array(ds, index=0), ds
    except Exception as e:
        raise DicomError(f"not a decodable DICOM image ({_one_line(e)})") from None


def _syntax_of(encoding: tuple[bool | None, bool | None]) -> UID:
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _one_line(error: Exception, limit: int = 300) -> str:
    """An exception as one short line: a plugin's multi-line report would break errors.csv and stderr listings."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(stored: np.ndarray, tags: Any, window: str, name: str = "") -> Image.Image:
    """Decoded stored values and their group-0028 tags → mode `L` or `F` (0–255)."""
    photometric = str(tags.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(tags.get("BitsStored") or 0)
    if not 8 <= bits <= 16 or not np.issubdtype(stored.dtype, np.integer):
        raise DicomError(f"Bits Stored {bits or 'absent'} ({stored.dtype}) is not supported: cxrtool reads 8 to 16")
    if photometric == "PALETTE COLOR" or stored.ndim == 3:
        return _colour_to_grey(stored, tags, photometric, bits, name)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"Photometric Interpretation {photometric} is not supported")
    voi = _voi_choice(tags, window, name)
    padding = _padding_mask(stored, tags) if voi == "minmax" else None  # in stored values, before any LUT
    signed = int(tags.get("PixelRepresentation") or 0) == 1
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    # Modality LUT: a rescale stays (slope, intercept), folded into the one final mapping; a LUT is applied here
    slope, intercept = 1.0, 0.0
    if tags.get("ModalityLUTSequence"):
        from pydicom.pixels.processing import apply_modality_lut

        stored = apply_modality_lut(stored, tags)
        lo, hi = 0, (1 << int(tags.ModalityLUTSequence[0].LUTDescriptor[2])) - 1
    else:
        slope = _number(tags.get("RescaleSlope"), 1.0)
        intercept = _number(tags.get("RescaleIntercept"), 0.0)
    inverted = photometric == "MONOCHROME1"
    if voi == "none":
        m0, m1 = sorted((slope * lo + intercept, slope * hi + intercept))
        p, q = 1.0 / (m1 - m0), -m0 / (m1 - m0)
    elif voi == "minmax":
        p, q = _minmax(stored, padding, slope, intercept)
    else:
        linear = _linear(voi) if isinstance(voi, tuple) else None
        if linear is None:  # a VOI LUT, a threshold or a sigmoid: not affine
            return _to_image(_nonlinear_voi(stored, tags, voi, slope, intercept), inverted)
        p, q = linear
    # t = p·m + q with m = slope·stored + intercept; MONOCHROME1: 1 − t; ×255 for Pillow's 0–255 scale
    k, c = 255.0 * p * slope, 255.0 * (p * intercept + q)
    if inverted:
        k, c = -k, 255.0 - c
    return _affine(stored, k, c)


Window = tuple[float, float, str]  # center, width, VOI LUT Function


def _voi_choice(tags: Any, window: str, name: str) -> str | Window:
    """`lut`, a window, `minmax` or `none`: what `--dicom-window` means for this file."""
    if window != "file":
        return window
    if _voi_lut(tags) is not None:
        return "lut"
    return _window(tags, name) or "minmax"


def _number(value: Any, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _first(value: Any) -> float:
    """The first of a multi-valued DS (Window Center/Width may hold several windows)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _voi_lut(tags: Any) -> Any:
    seq = tags.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return seq[0]
    return None


def _window(tags: Any, name: str) -> Window | None:
    """The first window, or None where absent or unusable (then `minmax`)."""
    if tags.get("WindowCenter") is None or tags.get("WindowWidth") is None:
        return None
    try:
        center, width = _first(tags.WindowCenter), _first(tags.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    function = str(tags.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID") or width <= 0 or (function == "LINEAR" and width < 1):
        warn(f"{name}: ignoring its window {center}/{width} ({function}), not a valid one; using min and max")
        return None
    return center, width, function


def _linear(window: Window) -> tuple[float, float] | None:
    """(p, q) with t = p·m + q for a linear window (PS3.3 C.11.2.1.2.1 and C.11.2.1.3.2), else None."""
    center, width, function = window
    if function == "LINEAR" and width > 1:
        # the standard's LINEAR: ((x − (c − 0.5)) / (w − 1) + 0.5) on [0, 1], clipped
        return 1.0 / (width - 1.0), 0.5 - (center - 0.5) / (width - 1.0)
    if function == "LINEAR_EXACT":
        return 1.0 / width, 0.5 - center / width
    return None  # LINEAR with width 1 (a threshold) or SIGMOID


def _nonlinear_voi(stored: np.ndarray, tags: Any, voi: str | Window, slope: float, intercept: float) -> np.ndarray:
    """t in [0, 1] for a VOI LUT Sequence (pydicom's apply_voi), a threshold window or a SIGMOID window."""
    if isinstance(voi, str):  # "lut": the file's VOI LUT Sequence
        from pydicom.pixels.processing import apply_voi

        m = stored if (slope, intercept) == (1.0, 0.0) else np.rint(stored * slope + intercept).astype(np.int32)
        top = (1 << int(_voi_lut(tags).LUTDescriptor[2])) - 1
        return apply_voi(m, tags).astype(np.float32) / np.float32(top)
    center, width, function = voi
    m = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    if function == "SIGMOID":  # PS3.3 C.11.2.1.3.1
        return 1.0 / (1.0 + np.exp(-4.0 * (m - np.float32(center)) / np.float32(width)))
    return (m > center - 0.5).astype(np.float32)  # LINEAR, width 1: below or above the center


def _padding_mask(stored: np.ndarray, tags: Any) -> np.ndarray | None:
    """True where a pixel is padding (Pixel Padding Value, up to the Pixel Padding Range Limit), in stored values."""
    value = tags.get("PixelPaddingValue")
    if value is None or isinstance(value, bytes):
        return None
    limit = tags.get("PixelPaddingRangeLimit")
    lo, hi = (int(value), int(value)) if limit is None or isinstance(limit, bytes) else sorted((int(value), int(limit)))
    return (stored >= lo) & (stored <= hi) if lo != hi else stored == lo


def _minmax(stored: np.ndarray, padding: np.ndarray | None, slope: float, intercept: float) -> tuple[float, float]:
    """(p, q) mapping the image's own range after the Modality LUT (padding excluded) to [0, 1]."""
    values = stored if padding is None else stored[~padding]
    if values.size == 0:
        return 0.0, 0.0
    m0, m1 = sorted((float(values.min()) * slope + intercept, float(values.max()) * slope + intercept))
    if m1 <= m0:
        return 0.0, 0.0  # a constant image: black rather than a division by zero
    return 1.0 / (m1 - m0), -m0 / (m1 - m0)


def _affine(stored: np.ndarray, k: float, c: float) -> Image.Image:
    """clip(k·stored + c, 0, 255): in integers (mode L) when that is exact, else in float32 (mode F)."""
    if abs(abs(k) - 1.0) < 1e-9 and abs(c - round(c)) < 1e-6:
        shift = round(c)
        if k > 0 and shift == 0 and stored.dtype == np.uint8:
            out = stored
        else:
            wide = stored.astype(np.int32)
            out = np.clip(shift - wide if k < 0 else wide + shift, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(out), mode="L")
    out = stored.astype(np.float32)
    out *= np.float32(k)
    out += np.float32(c)
    np.clip(out, 0.0, 255.0, out=out)
    return Image.fromarray(out, mode="F")


def _to_image(t: np.ndarray, inverted: bool) -> Image.Image:
    t = np.clip(t, 0.0, 1.0).astype(np.float32, copy=False)
    if inverted:
        t = 1.0 - t
    return Image.fromarray(np.ascontiguousarray(t * np.float32(255.0)), mode="F")


def _colour_to_grey(stored: np.ndarray, tags: Any, photometric: str, bits: int, name: str) -> Image.Image:
    """Luma of a colour frame (pydicom already turned YBR into RGB); windows do not apply to colour."""
    warn(f"{name} is a colour DICOM ({photometric}); converted to grey")
    rgb = stored
    if photometric == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        rgb = apply_color_lut(stored, tags)
        bits = 8 if rgb.dtype == np.uint8 else 16
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DicomError(f"{photometric} with {rgb.shape[-1] if rgb.ndim == 3 else 1} samples per pixel")
    if rgb.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").convert("L")
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32) * np.float32(255.0 / ((1 << bits) - 1))
    grey = np.clip(rgb.astype(np.float32) @ weights, 0.0, 255.0)
    return Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), mode="F")


# ---- headers ----------------------------------------------------------------------------------------------------


HEADER_TAGS = ["Rows", "Columns", "BitsStored", "PixelRepresentation", "PhotometricInterpretation", "SamplesPerPixel"]


def dicom_header(f: BinaryIO) -> tuple[int, int, str]:
    """(width, height, mode) from the header alone; mode is `<Photometric Interpretation>:<Bits Stored>`, with an `s`
    for signed pixels (e.g. `MONOCHROME1:12`)."""
    from pydicom import dcmread

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(f, force=True, stop_before_pixels=True, specific_tags=HEADER_TAGS)
            rows, columns = ds.get("Rows"), ds.get("Columns")
    except Exception as e:  # see _first_frame
        raise DicomError(f"not a readable DICOM header ({_one_line(e)})") from None
    if not rows or not columns:
        raise DicomError("a DICOM without Rows/Columns: not an image")
    photometric = str(ds.get("PhotometricInterpretation") or "?").strip()
    signed = "s" if int(ds.get("PixelRepresentation") or 0) == 1 else ""
    return int(columns), int(rows), f"{photometric}:{ds.get('BitsStored', '?')}{signed}"


def read_dicom_header(path: Path) -> bytes:
    """The whole DICOM file except its pixel data (and anything after it), as a DICOM file in its own encoding: what
    a store may keep to restore a source's attributes around new pixels."""
    from io import BytesIO

    from pydicom import dcmread, dcmwrite

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, force=True, stop_before_pixels=True)
            buffer = BytesIO()
            dcmwrite(buffer, ds)
    except Exception as e:  # see _first_frame
        raise DicomError(f"not a readable DICOM header ({_one_line(e)})") from None
    return buffer.getvalue()
