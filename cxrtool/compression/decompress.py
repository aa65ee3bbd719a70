"""`cxrtool decompress`: a latent store back to 8-bit images through the decoder of the checkpoint that made it.

    shard latents (raw, or PNG/WebP decoded: Store.iter_latents) ── float32
    ── decoder (Conv3×3 → PixelShuffle(4) → ClippedReLU) ── crop to the original size
    ── round to 8 bits ── REC_DIR/<rel_path with .png or .dcm> (encoding in threads; each file renamed into place)

A store made with `--size S` decodes to S×S images (the size that was encoded), not to the original size.
`--format dicom` writes 8-bit MONOCHROME2 DICOMs flagged lossy: Secondary Captures, or the source's attributes
around the new pixels where the store kept its header (`compress --keep-dicom-header`; see dicom_write).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from cxrtool.artifacts import atomic_path
from cxrtool.compression.codec import load_codec
from cxrtool.compression.store import Store, check_identity, open_store
from cxrtool.data.images import IMAGE_SUFFIXES
from cxrtool.errors import InputError

FORMATS = {"png": ".png", "dicom": ".dcm"}


@dataclass
class DecompressReport:
    rec_dir: Path
    images: int
    ckpt: Path
    seconds: float
    unlisted: list[str]  # images the shards hold that manifest.csv lacks: not written


def resolve_ckpt(store: Store, ckpt: Path | None) -> tuple[Path, str]:
    """The checkpoint given, else the one the store's summary names (if it still exists); and the flag to blame."""
    if ckpt is not None:
        return Path(ckpt), "--ckpt"
    named = store.summary.get("ckpt")
    if named and Path(named).exists():
        return Path(named), "the checkpoint named in summary.json"
    raise InputError(
        f"the checkpoint named in {store.root / 'summary.json'} ({named}) does not exist here; pass --ckpt RUN with "
        "the stage-2 or stage-3 checkpoint the store was made with"
    )


def rec_names(rel_paths: list[str], suffix: str = ".png") -> dict[str, str]:
    """rel_path → the file to write: an image suffix replaced by `suffix` (any other kept, as in a DICOM named by its
    UID, 1.2.840.…), or `suffix` appended where two images would collide (a.png and a.jpg)."""
    target = {rel: _with_suffix(rel, suffix) for rel in rel_paths}
    count: dict[str, int] = {}
    for name in target.values():
        count[name] = count.get(name, 0) + 1
    return {rel: name if count[name] == 1 or rel == name else rel + suffix for rel, name in target.items()}


def _with_suffix(rel: str, suffix: str) -> str:
    path = PurePosixPath(rel)
    return str(path.with_suffix(suffix)) if path.suffix.lower() in IMAGE_SUFFIXES else rel + suffix


def _check_rec_dir(store: Store, rec_dir: Path, *, overwrite: bool) -> None:
    dst = rec_dir.resolve()
    in_dir = Path(store.summary.get("in_dir") or store.root).resolve()
    for folder, what in ((store.root.resolve(), "the store"), (in_dir, "the store's IN_DIR")):
        if dst == folder or folder in dst.parents:
            raise InputError(f"REC_DIR {rec_dir} is inside {what} ({folder}); choose another folder")
    if rec_dir.exists() and (not rec_dir.is_dir() or any(rec_dir.iterdir())) and not overwrite:
        raise InputError(f"REC_DIR {rec_dir} already holds files; pass --overwrite to replace them or choose another")


def _save_png(pixels: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=1)


Writer = Callable[[str, np.ndarray, Path], None]  # (key, 8-bit pixels, path)


def _writer(store: Store, fmt: str) -> Writer:
    if fmt == "png":
        return lambda key, pixels, path: _save_png(pixels, path)
    from cxrtool.compression.dicom_write import write_dicom

    # Lossy Image Compression Ratio: the 8-bit image written against the latent bytes the store holds for it
    stored = dict(zip(store.manifest["key"], store.manifest["bytes"]))
    identity = store.identity

    def save(key: str, pixels: np.ndarray, path: Path) -> None:
        ratio = pixels.size / max(1, int(stored[key]))
        write_dicom(pixels, path, identity=identity, ratio=ratio, source=store.dicom_header(key))

    return save


def decompress_store(
    store_dir: Path,
    rec_dir: Path,
    *,
    ckpt: Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    fmt: str = "png",
    progress: Callable[[int], None] | None = None,
) -> DecompressReport:
    """Write REC_DIR/<rel_path with .png> (8-bit L) or .dcm (8-bit MONOCHROME2) for every image in the store."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    start = time.perf_counter()
    store = open_store(store_dir, flag="OUT_DIR")
    path, flag = resolve_ckpt(store, ckpt)
    codec = load_codec(path, flag=flag)
    check_identity(store, codec.identity, flag=flag, path=path)
    rec_dir = Path(rec_dir)
    _check_rec_dir(store, rec_dir, overwrite=overwrite)
    decode = codec.decoder()
    names = rec_names(list(store.manifest["rel_path"]), FORMATS[fmt])
    sizes = {
        row.key: (store.size, store.size) if store.size else (int(row.orig_height), int(row.orig_width))
        for row in store.manifest.itertuples()
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the decoder is tiny: a fork/join of the intra-op pool costs more than it saves
    try:
        save = _writer(store, fmt)
        _decode_all(store, decode, rec_dir, names, sizes, save, workers=max(1, workers), progress=progress)
    finally:
        torch.set_num_threads(threads)
    return DecompressReport(rec_dir, len(sizes), path, time.perf_counter() - start, store.unlisted)


def _decode_all(
    store: Store,
    decode: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    rec_dir: Path,
    names: dict[str, str],
    sizes: dict[str, tuple[int, int]],
    save: Writer,
    *,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Decode in this thread, encode and write files in `workers` threads (Pillow releases the GIL there)."""
    pending: deque[Future[None]] = deque()
    with ThreadPoolExecutor(workers) as pool:
        for key, z in store.iter_latents():
            pixels = decode(z, sizes[key])
            pending.append(pool.submit(save, key, pixels, rec_dir / names[key]))
            while len(pending) > 2 * workers:  # a bounded queue keeps memory flat
                pending.popleft().result()
                if progress:
                    progress(1)
        for future in pending:
            future.result()
            if progress:
                progress(1)
