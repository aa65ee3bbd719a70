"""`cxrtool prepare`: resized copies of a dataset's images, so a GPU is not starved by PNG decoding.

A 1024² PNG costs ~10 ms of one core to decode; its 256² copy a sixteenth of that. The copies keep the names (any
later command finds them through the same index), are lossless 8-bit PNGs made with the same resize the training
transforms use, and the cache records its size in `cxrtool-cache.json` so that a run at another size warns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from cxrtool import __version__
from cxrtool.artifacts import read_json, write_json
from cxrtool.data.dicom import dicom_window
from cxrtool.data.images import ImageIndex, ImageReadError, open_image, resize_square
from cxrtool.errors import InputError
from cxrtool.layouts import PrepareCache


@dataclass
class PrepareReport:
    written: int
    skipped: int
    missing: list[str]
    errors: list[str]
    seconds: float


def cache_size(images: Path) -> int | None:
    """The side a `prepare` cache holds, or None when `images` is not one."""
    path = Path(images) / PrepareCache.MARKER
    return int(read_json(path)["size"]) if path.is_file() else None


def _resize_one(source: str, target: str, size: int, window: str) -> str | None:
    """Write one resized copy atomically; returns an error message or None."""
    try:
        img = open_image(Path(source), dicom_window=window)
        if img.mode != "L":
            img = img.point(lambda v: v + 0.5).convert("L")  # deeper sources: round to 8 bits
        img = resize_square(img, size)
        tmp = Path(target).with_name(f".{Path(target).name}.tmp")
        img.save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, target)
        return None
    except ImageReadError as e:
        return str(e)


def _up_to_date(path: Path, size: int) -> bool:
    try:
        with Image.open(path) as img:
            return img.size == (size, size)
    except OSError:
        return False


def prepare_cache(
    names: list[str],
    images: Path,
    out: Path,
    *,
    size: int,
    workers: int | None = None,
    config: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PrepareReport:
    """Resize every listed image found under `images` into `out/images/`; a rerun skips the finished ones."""
    if size < 8:
        raise InputError(f"--size must be at least 8, not {size}")
    out = Path(out)
    if out.resolve() == Path(images).resolve() or Path(images).resolve() in out.resolve().parents:
        raise InputError(f"--out {out} is inside --images {images}; choose a folder outside the dataset")
    existing = cache_size(out) if (out / PrepareCache.MARKER).is_file() else None
    if existing is not None and existing != size:
        raise InputError(f"{out} is a cache of {existing}² images; use another --out for --size {size}")
    start = time.perf_counter()
    index = ImageIndex.build(images)
    (out / "images").mkdir(parents=True, exist_ok=True)
    meta = {
        "size": size,
        "source": str(images),
        "resample": "cxrtool.data.images.resize_square",
        "cxrtool_version": __version__,
    }
    write_json(out / PrepareCache.MARKER, {**meta, "config": config or {}, "complete": False})
    missing = [n for n in names if n not in index]
    todo, skipped = [], 0
    for name in (n for n in names if n in index):
        target = out / "images" / name
        if target.is_file() and _up_to_date(target, size):
            skipped += 1
            if progress:
                progress(1)
        else:
            todo.append((str(index.path(name)), str(target)))
    errors = []
    with ProcessPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
        sources, targets = [t[0] for t in todo], [t[1] for t in todo]
        windows = [dicom_window()] * len(todo)  # explicit, like every other input of a worker
        for error in pool.map(_resize_one, sources, targets, [size] * len(todo), windows, chunksize=16):
            if error:
                errors.append(error)
            if progress:
                progress(1)
    report = PrepareReport(len(todo) - len(errors), skipped, missing, errors, time.perf_counter() - start)
    write_json(
        out / PrepareCache.MARKER,
        {**meta, "config": config or {}, "complete": not errors, "images": len(names) - len(missing) - len(errors)},
    )
    return report
