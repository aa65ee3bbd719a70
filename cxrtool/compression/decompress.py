"""`cxrtool decompress`: a latent store back to 8-bit PNGs through the decoder of the checkpoint that made it.

    shard latents (raw, or PNG/WebP decoded: Store.iter_latents) ── float32
    ── decoder (Conv3×3 → PixelShuffle(4) → ClippedReLU) ── crop to the original size
    ── round to 8 bits ── REC_DIR/<rel_path with .png> (PNG encoding in threads; each file renamed into place)

A store made with `--size S` decodes to S×S images (the size that was encoded), not to the original size.
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
from cxrtool.compression.compress import load_codec
from cxrtool.compression.store import Store, check_identity, open_store
from cxrtool.errors import InputError


@dataclass
class DecompressReport:
    rec_dir: Path
    images: int
    ckpt: Path
    seconds: float


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


def rec_names(rel_paths: list[str]) -> dict[str, str]:
    """rel_path → the PNG to write: the suffix replaced by .png, or .png appended where two images would collide
    (a.png and a.jpg)."""
    target = {rel: str(PurePosixPath(rel).with_suffix(".png")) for rel in rel_paths}
    count: dict[str, int] = {}
    for name in target.values():
        count[name] = count.get(name, 0) + 1
    return {rel: name if count[name] == 1 or rel == name else rel + ".png" for rel, name in target.items()}


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


def decompress_store(
    store_dir: Path,
    rec_dir: Path,
    *,
    ckpt: Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> DecompressReport:
    """Write REC_DIR/<rel_path with .png>, 8-bit L, for every image in the store."""
    start = time.perf_counter()
    store = open_store(store_dir, flag="OUT_DIR")
    path, flag = resolve_ckpt(store, ckpt)
    codec = load_codec(path, flag=flag)
    check_identity(store, codec.identity, flag=flag, path=path)
    rec_dir = Path(rec_dir)
    _check_rec_dir(store, rec_dir, overwrite=overwrite)
    decoder = codec.module("decoder")
    names = rec_names(list(store.manifest["rel_path"]))
    sizes = {
        row.key: (store.size, store.size) if store.size else (int(row.orig_height), int(row.orig_width))
        for row in store.manifest.itertuples()
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the decoder is tiny: a fork/join of the intra-op pool costs more than it saves
    try:
        _decode_all(store, decoder, rec_dir, names, sizes, workers=max(1, workers), progress=progress)
    finally:
        torch.set_num_threads(threads)
    return DecompressReport(rec_dir, len(sizes), path, time.perf_counter() - start)


def _decode_all(
    store: Store,
    decoder: torch.nn.Module,
    rec_dir: Path,
    names: dict[str, str],
    sizes: dict[str, tuple[int, int]],
    *,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Decode in this thread, encode and write PNGs in `workers` threads (Pillow releases the GIL there)."""
    pending: deque[Future[None]] = deque()
    with ThreadPoolExecutor(workers) as pool, torch.inference_mode():
        for key, z in store.iter_latents():
            h, w = sizes[key]
            x = decoder(torch.from_numpy(z)[None, None])[0, 0, :h, :w]
            pixels = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
            pending.append(pool.submit(_save_png, pixels, rec_dir / names[key]))
            while len(pending) > 2 * workers:  # a bounded queue keeps memory flat
                pending.popleft().result()
                if progress:
                    progress(1)
        for future in pending:
            future.result()
            if progress:
                progress(1)
