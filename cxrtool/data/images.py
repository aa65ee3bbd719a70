"""Find images by file name in any folder layout, and load any PNG/JPEG mode or DICOM as one channel in [0, 1].

A file is an image by its suffix (PNG, JPEG, DICOM) or, without one of those, by the `DICM` marker that ends a DICOM
file's 132-byte preamble. Opening dispatches on the file's first bytes, not its name, so a PNG named `x.dcm` (a
`prepare` cache of a DICOM dataset keeps the names) reads as the PNG it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrtool.data.dicom import (
    DICOM_SUFFIXES,
    DICOMDIR,
    PREAMBLE,
    DicomError,
    dicom_header,
    has_preamble,
    read_dicom,
    sniff,
)
from cxrtool.data.dicom import dicom_window as process_dicom_window
from cxrtool.errors import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"}) | DICOM_SUFFIXES
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


class ImageReadError(InputError):
    """A file that is not a readable image: corrupt, truncated or of an unknown format."""


@dataclass(frozen=True)
class ImageIndex:
    """Every image file below `root`, by file name: NIH's flat `images/`, Kaggle's `images_001/images/…`, or any
    nesting. Built by one walk of the tree, never a search per image."""

    root: Path
    relpaths: dict[str, str]  # file name -> path relative to root (POSIX separators)

    @classmethod
    def build(cls, root: Path, *, flag: str = "--images") -> ImageIndex:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"image folder {root} ({flag}) does not exist or is not a folder")
        found: dict[str, str] = {}
        dups: dict[str, list[str]] = {}
        for rel in _walk(root, "", _folder_key(root)):
            name = rel.rsplit("/", 1)[-1]
            if name in found:
                dups.setdefault(name, [found[name]]).append(rel)
            else:
                found[name] = rel
        if dups:
            shown = "; ".join(f"{n}: {', '.join(paths)}" for n, paths in sorted(dups.items())[:5])
            raise InputError(
                f"{len(dups)} file name(s) occur more than once under {root} ({flag}), so an image name is "
                f"ambiguous: {shown}; remove the copies or point {flag} at one of the folders"
            )
        return cls(root=root, relpaths=found)

    def __len__(self) -> int:
        return len(self.relpaths)

    def __contains__(self, name: object) -> bool:
        return name in self.relpaths

    def path(self, name: str) -> Path:
        return self.root / self.relpaths[name]


def list_image_files(root: Path, *, flag: str = "IN_DIR", skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """POSIX paths relative to `root` of every image below it (any nesting, hidden entries skipped), sorted.
    Unlike ImageIndex, the same file name may appear in several folders. A subfolder that cannot be read, or a
    symbolic link back into a folder being walked (a loop), is not followed: a warning, and (folder, why) appended
    to `skipped` when given."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} ({flag}) does not exist or is not a folder")
    return sorted(_walk(root, "", _folder_key(root), skipped=skipped))


def _folder_key(path: Path | str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _walk(
    folder: Path, prefix: str, *ancestors: tuple[int, int], skipped: list[tuple[str, str]] | None = None
) -> Iterable[str]:
    """Relative paths of image files, skipping hidden entries (and so cxrtool's own temporary files)."""
    try:
        entries = list(os.scandir(folder))
    except OSError as e:
        if not prefix:
            raise  # the folder given itself: the caller's error, mapped to a one-line message
        _skip(prefix.rstrip("/"), f"folder not read ({e.strerror or e})", skipped)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = f"{prefix}{entry.name}"
        if _is_dir(entry):
            key = _folder_key(entry.path)
            if key in ancestors:
                _skip(rel, "a symbolic link back into a folder above it (a loop): not followed", skipped)
                continue
            yield from _walk(Path(entry.path), rel + "/", *ancestors, key, skipped=skipped)
        elif _is_image_name(entry.name, entry.path):
            yield rel


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A folder or a link to one; a broken or looping link is not (it is listed if named like an image, and then
    fails to read like any unreadable image)."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _skip(rel: str, why: str, skipped: list[tuple[str, str]] | None) -> None:
    from cxrtool.log import warn

    warn(f"{rel}: {why}")
    if skipped is not None:
        skipped.append((rel, why))


def is_image_file(path: Path) -> bool:
    """An image cxrtool reads: a PNG/JPEG/DICOM suffix, or a DICOM without one (archives name files by UID)."""
    return _is_image_name(path.name, path)


def _is_image_name(name: str, path: str | os.PathLike[str]) -> bool:
    if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
        return True
    # 132 bytes read, only for files without an image suffix; a DICOMDIR indexes a CD's images but holds none
    return name != DICOMDIR and sniff(path)


def open_image(path: Path, *, dicom_window: str | None = None) -> Image.Image:
    """Decode an image to a single channel: mode `L` (8-bit) or `F` on the same 0–255 scale (deeper sources).

    Colour and palette images become luma (ITU-R 601, Pillow's `L` conversion); an alpha channel is ignored.
    16-bit data is scaled by its own bit depth, so 65535 maps to 255.0. A DICOM goes through its Modality LUT and
    the VOI that `dicom_window` names (default: the process's `--dicom-window`), see `cxrtool.data.dicom`.
    """
    try:
        with open(path, "rb") as f:
            if _is_dicom(f, path):
                return read_dicom(f, str(path), dicom_window or process_dicom_window())
            with Image.open(f) as img:
                img.load()
                return _to_single_channel(img)
    except DicomError as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None


def is_dicom_file(path: Path) -> bool:
    """Whether `open_image` reads `path` as a DICOM (see `_is_dicom`); False for a file it cannot open."""
    try:
        with open(path, "rb") as f:
            return _is_dicom(f, path)
    except OSError:
        return False


def _is_dicom(f: BinaryIO, path: Path) -> bool:
    """By content: a PNG or JPEG signature is not DICOM; the DICM marker is; else a DICOM suffix decides (a DICOM
    without preamble and file meta, which pydicom may still read). Leaves `f` at its start."""
    head = f.read(PREAMBLE)
    f.seek(0)
    if head.startswith((_PNG, _JPEG)):
        return False
    return has_preamble(head) or Path(path).suffix.lower() in DICOM_SUFFIXES


def _to_single_channel(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "L":
        return img.copy() if img.readonly else img
    if mode.startswith("I;16") or mode == "I":
        data = np.asarray(img, dtype=np.float32)
        # `I` is how Pillow hands over 16-bit PNGs in some versions; treat it as 16-bit too.
        return Image.fromarray(np.clip(data * (255.0 / 65535.0), 0, 255).astype(np.float32), mode="F")
    if mode == "F":
        return img
    if mode == "LA":
        return img.getchannel("L")
    return img.convert("L")


def to_unit(img: Image.Image) -> np.ndarray:
    """A single-channel image as float32 in [0, 1]."""
    data = np.asarray(img, dtype=np.float32)
    return data * np.float32(1.0 / 255.0) if img.mode == "L" else np.clip(data / 255.0, 0.0, 1.0)


def load_gray(path: Path) -> np.ndarray:
    """Any supported image file as a float32 H×W array in [0, 1]."""
    return to_unit(open_image(path))


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize a single-channel image to size×size: an exact box average when the side is an integer multiple of
    `size` (1024 → 256 is a 4×4 mean, ~0.25 ms), else bilinear after an integer box reduction (Pillow's
    `reducing_gap`). Training transforms, `prepare` and evaluation all resize through here, so a cache holds
    exactly what the training pipeline would have computed."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if w == h and w % size == 0:
        return img.reduce(w // size)
    return img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)


def image_header(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) without decoding the pixels; a DICOM's mode is `<Photometric>:<Bits Stored>`."""
    try:
        with open(path, "rb") as f:
            if _is_dicom(f, path):
                return dicom_header(f)
            with Image.open(f) as img:
                return img.width, img.height, img.mode
    except DicomError as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None
