"""`cxrtool compress`: every image under a folder through a checkpoint's encoder into a latent store (SPEC §5).

    IN_DIR ── sorted listing ── image k → shard k // S ── part i/N takes shards k % N == i
    worker processes (one per core by default), each image where it is read:
        read, single channel, [--size resize], edge-pad to ×4 ── LatentCodec.storer: FastEncoder (one thread;
        8-bit pixels as they are), the model's clamp
        ── uint8 round(clamp(z,0,1)·255) [── PNG | WebP, lossless] | float16 z        (LatentFormat.pack)
    ──► main process, in listing order: ShardWriter ── whole shard renamed into place
    ──► manifest.csv, errors.csv (rebuilt from the shards after each one) ──► summary.json

Only the coded latents (~30 kB for a 1024² image) cross between processes, and the main process only writes, so
every core decodes and encodes: `compress` runs near the rate at which the cores can merely decode the source files
(`benchmarks/bench_compress.py`). Every worker computes exactly what one process would (one intra-op thread each,
the same code), and the main process takes the results in listing order, so the files are byte-identical whatever
the worker count.

The assignment of images to shards depends on the listing alone, never on failures or on what is done, so a rerun
skips the shards that exist and redoes the rest, and N parts merged give a single run's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from cxrtool.artifacts import write_json
from cxrtool.compression import store as fmt
from cxrtool.compression import store_write as write
from cxrtool.compression.codec import LatentCodec, load_codec
from cxrtool.compression.dicom_source import NONE, KeepDicom, SourceTags, source_tags
from cxrtool.compression.latent_format import LatentCodingError, LatentFormat
from cxrtool.compression.pixel_view import pixels
from cxrtool.config.compression import StoreConfig
from cxrtool.data.dicom import DicomError, dicom_window, set_dicom_window
from cxrtool.data.images import IMAGE_SUFFIXES, ImageReadError, image_header, list_image_files, open_image, to_unit
from cxrtool.data.transforms import resize
from cxrtool.errors import InputError, Interrupted, RunFailure
from cxrtool.log import warn
from cxrtool.models.autoencoder import SCALE
from cxrtool.runtime.signals import ignore_in_worker
from cxrtool.runtime.workers import cpu_cores

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CompressOptions(StoreConfig):
    """`compress`'s options (StoreConfig, validated there), the checkpoint, the part this process takes and
    whether an old store may be replaced."""

    ckpt: Path
    part: tuple[int, int] = (0, 1)  # (i, N): this worker takes the shards k with k % N == i
    overwrite: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        LatentFormat.for_options(self.dtype, self.entropy)  # an entropy the dtype or Pillow cannot take: now

    @property
    def format(self) -> LatentFormat:
        return LatentFormat.for_options(self.dtype, self.entropy)


@dataclass(frozen=True)
class Plan:
    rel_paths: list[str]  # every image under IN_DIR, sorted
    shard_size: int
    part: tuple[int, int]

    @property
    def assigned(self) -> list[int]:
        shards = -(-len(self.rel_paths) // self.shard_size)
        return [k for k in range(shards) if k % self.part[1] == self.part[0]]

    def members(self, k: int) -> list[str]:
        return self.rel_paths[k * self.shard_size : (k + 1) * self.shard_size]


@dataclass
class CompressReport:
    out: Path
    summary: dict[str, Any]
    errors: list[tuple[str, str]]
    shards_skipped: int
    shards_written: int


def parse_part(text: str | None, env: Mapping[str, str] | None = None) -> tuple[tuple[int, int], bool]:
    """(i, N) from `--shard i/N`, else from torchrun's RANK/WORLD_SIZE; the flag says it came from the environment."""
    env = os.environ if env is None else env
    if text is None:
        size = int(env.get("WORLD_SIZE", "1"))
        return ((int(env.get("RANK", "0")), size), True) if size > 1 else ((0, 1), False)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise InputError(f"--shard must be i/N with 0 <= i < N (e.g. 0/4), not {text!r}")
    return (i, n), False


def part_out_dir(out: Path, part: tuple[int, int], from_env: bool) -> Path:
    """Under torchrun every rank gets the same OUT_DIR, so each writes its part to OUT_DIR/part-i-of-N."""
    return Path(out) / f"part-{part[0]}-of-{part[1]}" if from_env else Path(out)


def refuse_inside(in_dir: Path, out: Path) -> None:
    """OUT_DIR inside IN_DIR would be walked as input next time (and IN_DIR must stay untouched)."""
    src, dst = Path(in_dir).resolve(), Path(out).resolve()
    if dst == src or src in dst.parents:
        raise InputError(f"OUT_DIR {out} is inside IN_DIR {in_dir}; choose a folder outside the images")


def open_store_dir(
    in_dir: Path, out: Path, settings: dict[str, Any], part: tuple[int, int], *, overwrite: bool
) -> None:
    """Refuse a foreign folder or a store of other settings; --overwrite starts afresh."""
    refuse_inside(in_dir, out)
    if out.exists() and not out.is_dir():
        raise InputError(f"OUT_DIR {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for path in write.store_files(out):
            path.unlink()
    write.clean_temporaries(out)
    if not (out / fmt.SUMMARY).is_file():
        if any(out.iterdir()):
            raise InputError(f"OUT_DIR {out} holds files but no latent store; pass --overwrite or choose another")
        return
    summary = fmt.read_summary(out, flag="OUT_DIR")
    wanted = {**settings, "part": f"{part[0]}/{part[1]}"}
    if "dicom_window" in summary:  # stores written before 0.2 do not say; DICOM pixels depend on it
        wanted["dicom_window"] = dicom_window()
    diffs = [f"{k} {fmt.setting(summary, k)} (now {v})" for k, v in wanted.items() if fmt.setting(summary, k) != v]
    if diffs:
        raise InputError(
            f"OUT_DIR {out} is a store made with other settings: {'; '.join(diffs)}. A rerun resumes only with the "
            "same checkpoint, --dtype, --entropy (dtype uint8 is --entropy none), --size, --shard-size, --shard, "
            "--dicom-window, --keep-dicom-header and --dicom-uids; pass --overwrite to start afresh"
        )


def done_shards(out: Path, plan: Plan, settings: dict[str, Any]) -> dict[int, fmt.ShardInfo]:
    """The finished shards already in OUT_DIR, each checked against the settings and the current listing."""
    assigned, done = set(plan.assigned), {}
    for path in sorted(out.glob(fmt.SHARD_GLOB)):
        k = fmt.shard_index(path.name)
        if k is None:
            continue
        try:
            info = fmt.read_shard(path)
        except InputError as e:
            warn(f"{e}; encoding it again")
            continue
        stale = k not in assigned or info.index != k or info.rel_paths != plan.members(k)
        if stale or info.settings != settings:
            raise InputError(
                f"{path} does not belong to this run (IN_DIR's images or the settings changed since it was "
                "written); pass --overwrite to start afresh"
            )
        done[k] = info
    return done


class Item(NamedTuple):
    rel: str
    x: torch.Tensor | None  # 1×1×H×W, sides multiples of 4: uint8 pixels of an 8-bit image, else float32 in [0, 1]
    width: int
    height: int
    mode: str
    file_bytes: int
    error: str | None


def load_item(root: Path, rel: str, size: int | None) -> Item:
    """Read one image as the encoder takes it; an unreadable file becomes an Item with an error (named by rel).

    An 8-bit image stays 8-bit, and uncopied where Pillow allows (`pixel_view`): FastEncoder reads uint8 as x/255
    with the 1/255 in its weights, which spares a float copy of every image (~1 ms of the ~25 ms an image costs)."""
    path = root / rel
    try:
        file_bytes = path.stat().st_size
        img = open_image(path)
        width, height, mode = image_header(path)
    except (ImageReadError, OSError) as e:
        return Item(rel, None, 0, 0, "", 0, str(e).replace(str(path), rel))
    if size is not None:
        img = resize(img, size)  # as the evaluation transforms do, so `evaluate --latents` matches the images
    x = pixels(img) if img.mode == "L" else to_unit(img)
    pad = ((0, -x.shape[0] % SCALE), (0, -x.shape[1] % SCALE))
    if pad[0][1] or pad[1][1]:
        x = np.pad(x, pad, mode="edge")
    return Item(rel, torch.from_numpy(np.ascontiguousarray(x))[None, None], width, height, mode, file_bytes, None)


class Encoded(NamedTuple):
    """One image as a worker hands it to the main process: its record and its latent as stored."""

    rel: str
    width: int
    height: int
    mode: str
    file_bytes: int
    shape: tuple[int, int]  # the latent's H×W
    data: bytes  # the latent's bytes in the shard (LatentFormat.pack)
    outside: int  # latent values outside [0, 1] before any clamping
    error: str | None
    tags: SourceTags = NONE  # what --keep-dicom-header / --dicom-uids take from a DICOM source


class _EncodedImages:
    """Each image read, encoded and coded where it is read: in a worker process, which builds its own encoder on
    first use (FastEncoder keeps work buffers), or in this process with --workers 0."""

    def __init__(
        self,
        root: Path,
        rels: Sequence[str],
        size: int | None,
        codec: LatentCodec,
        form: LatentFormat,
        keep: KeepDicom = KeepDicom(),
    ) -> None:
        self.root, self.rels, self.size, self.codec, self.form = Path(root), list(rels), size, codec, form
        self.keep = keep
        self._encode: Callable[[torch.Tensor], tuple[bytes, tuple[int, int], int]] | None = None

    def __len__(self) -> int:
        return len(self.rels)

    def __getitem__(self, i: int) -> Encoded:
        item = load_item(self.root, self.rels[i], self.size)
        error = item.error
        if error is None:
            if self._encode is None:
                self._encode = self.codec.storer(self.form)
            assert item.x is not None, "an Item without an error has its pixels"
            try:
                data, shape, outside = self._encode(item.x)
            except LatentCodingError as e:
                error = str(e)
            else:
                encoded = Encoded(
                    item.rel, item.width, item.height, item.mode, item.file_bytes, shape, data, outside, None
                )
                return _with_source_tags(encoded, self.root, self.keep)
        return Encoded(item.rel, 0, 0, "", 0, (0, 0), b"", 0, error)


def _with_source_tags(encoded: Encoded, root: Path, keep: KeepDicom) -> Encoded:
    """The encoded image with what `keep` asks of its source; an unreadable DICOM header fails the image."""
    if not keep:
        return encoded
    try:
        return encoded._replace(tags=source_tags(root / encoded.rel, keep))
    except DicomError as e:
        error = f"cannot read the DICOM header of {encoded.rel}: {e}"
        return Encoded(encoded.rel, 0, 0, "", 0, (0, 0), b"", 0, error)


_images: _EncodedImages | None = None  # in a worker process: the images it encodes
MAX_CHUNK = 16  # images per task at most: a task costs the main process ~0.7 ms here (futures, pipes, pickles)


def _start_worker(images: _EncodedImages) -> None:
    ignore_in_worker(0)  # signals are the main process's; one intra-op thread, as in the main process
    global _images
    _images = images


def _encode_chunk(indices: range) -> list[Encoded]:
    assert _images is not None, "_start_worker runs first"
    return [_images[i] for i in indices]


def _in_order(images: _EncodedImages, workers: int) -> Generator[Encoded, None, None]:
    """Every image, encoded, in order: here (`workers` 0), or by worker processes taking chunks of up to MAX_CHUNK
    images, at most 4 chunks per worker in flight (memory stays flat). A plain process pool rather than a
    DataLoader, whose per-item bookkeeping cost the main process ~0.5 ms an image; a worker that dies (killed for
    memory) fails the run instead of hanging it."""
    workers = min(workers, len(images))
    if workers == 0:
        yield from (images[i] for i in range(len(images)))
        return
    size = max(1, min(MAX_CHUNK, len(images) // (4 * workers)))  # small runs: small chunks, every worker busy
    chunks = (range(i, min(i + size, len(images))) for i in range(0, len(images), size))
    pending: deque[Future[list[Encoded]]] = deque()
    pool = ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(images,))
    try:
        pending.extend(pool.submit(_encode_chunk, chunk) for chunk in itertools.islice(chunks, 4 * workers))
        while pending:
            try:
                chunk = pending.popleft().result()
            except BrokenProcessPool:
                raise RunFailure(
                    "a worker process of `compress` died (out of memory?); the finished shards are kept: run the "
                    "same command again, with fewer --workers if memory is short"
                ) from None
            pending.extend(pool.submit(_encode_chunk, chunk) for chunk in itertools.islice(chunks, 1))
            yield from chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the running chunks finish (a fraction of a second)


def _encode_shards(
    in_dir: Path,
    out: Path,
    plan: Plan,
    todo: list[int],
    codec: LatentCodec,
    settings: dict[str, Any],
    *,
    workers: int,
    strict: bool,
    progress: Progress | None,
) -> Generator[fmt.ShardInfo, None, None]:
    """Encode the shards in `todo`, yielding each one's info once it is on disk."""
    form = LatentFormat.parse(settings["dtype"])
    keep = KeepDicom(settings["dicom_header"], settings["dicom_uids"])
    rels = [rel for k in todo for rel in plan.members(k)]
    images = _EncodedImages(in_dir, rels, settings["size"], codec, form, keep)
    items = _in_order(images, workers)
    with contextlib.closing(items):  # on any exit, the workers stop before this returns
        for k in todo:
            records, errors, outside = [], [], 0
            uids: dict[str, tuple[str, str, str]] = {}
            with write.ShardWriter(out / fmt.shard_name(k), form) as writer:
                for _ in plan.members(k):
                    item = next(items)
                    if item.error is not None:
                        if strict:
                            raise InputError(f"{item.error} (--strict stops at the first unreadable image)")
                        errors.append((item.rel, item.error))
                    else:
                        nbytes = writer.add(item.rel, item.data, item.shape)
                        _add_source_tags(writer, item, uids)
                        outside += item.outside
                        h, w = item.shape
                        records.append(
                            fmt.Record(item.rel, item.width, item.height, item.mode, item.file_bytes, h, w, nbytes)
                        )
                    if progress:
                        progress(1)
                writer.finish(write.shard_metadata(settings, k, records, errors, outside, uids))
            yield fmt.read_shard(out / fmt.shard_name(k))


def _add_source_tags(writer: write.ShardWriter, item: Encoded, uids: dict[str, tuple[str, str, str]]) -> None:
    """A kept header goes into the shard right after its image's latent; UIDs into the shard's metadata."""
    if item.tags.header:
        writer.add_bytes(fmt.header_key(item.rel), item.tags.header)
    if item.tags.uids is not None:
        uids[item.rel] = item.tags.uids


def compress_folder(
    in_dir: Path,
    out: Path,
    options: CompressOptions,
    *,
    progress: Progress | None = None,
    after_shard: Callable[[fmt.ShardInfo], None] | None = None,
) -> CompressReport:
    """Encode IN_DIR into the store OUT_DIR, resuming what a killed or interrupted run left."""
    start = time.perf_counter()
    set_dicom_window(options.dicom_window)  # workers read it from the environment
    in_dir, out = Path(in_dir), Path(out)
    refuse_inside(in_dir, out)
    codec = load_codec(options.ckpt)
    crop = codec.input.get("crop")
    if codec.kind == "joint" and crop and options.size != crop:
        warn(f"{codec.path} classifies at {crop}x{crop}: `evaluate --latents` needs a store made with --size {crop}")
    plan = Plan(list_image_files(in_dir), options.shard_size, options.part)
    if not plan.rel_paths:
        raise InputError(f"IN_DIR {in_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    settings: dict[str, Any] = {"encoder_sha256": codec.identity, "dtype": options.format.name, "size": options.size}
    settings["shard_size"] = options.shard_size
    settings.update(dicom_header=options.keep_dicom_header, dicom_uids=options.dicom_uids)
    open_store_dir(in_dir, out, settings, options.part, overwrite=options.overwrite)
    fields = _fields(in_dir, out, plan, codec, options)
    done = done_shards(out, plan, settings)
    infos, todo = dict(done), [k for k in plan.assigned if k not in done]
    finished = None if todo else _finished_summary(out, fields)
    if finished is not None:  # a rerun of a complete store keeps its summary (and timings); tables rebuilt alike
        write.write_tables(out, [infos[k] for k in sorted(infos)], settings["dtype"])
        errors = [e for k in sorted(infos) for e in infos[k].errors]
        return CompressReport(out, finished, errors, len(done), 0)
    write_json(
        out / fmt.SUMMARY,
        write.build_summary(list(done.values()), settings=settings, part=options.part, complete=False, fields=fields),
    )
    if progress:
        progress(sum(len(plan.members(k)) for k in done))
    workers = cpu_cores() if options.workers is None else options.workers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in every worker: FastEncoder's slabs suit one thread, and the results must match
    try:
        shards = _encode_shards(
            in_dir, out, plan, todo, codec, settings, workers=workers, strict=options.strict, progress=progress
        )
        with contextlib.closing(shards):
            for info in shards:
                infos[info.index] = info
                write.write_tables(out, infos.values(), settings["dtype"], uids=options.dicom_uids)
                if after_shard:
                    after_shard(info)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped; the {len(infos)} finished shard(s) in {out} are kept: run the same command again to continue"
        ) from None
    finally:
        torch.set_num_threads(threads)
    write.write_tables(out, infos.values(), settings["dtype"], uids=options.dicom_uids)
    seconds = time.perf_counter() - start
    encoded_now = sum(len(infos[k].records) for k in todo)
    fields.update(seconds=seconds, encoded_this_run=encoded_now, images_per_s=encoded_now / seconds, workers=workers)
    ordered = [infos[k] for k in sorted(infos)]
    summary = write.build_summary(ordered, settings=settings, part=options.part, complete=True, fields=fields)
    write_json(out / fmt.SUMMARY, summary)
    errors = [e for info in ordered for e in info.errors]
    return CompressReport(out, summary, errors, len(done), len(todo))


def _finished_summary(out: Path, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a store this very run would only rewrite: complete, of this listing (its settings are this
    run's: `open_store_dir` refused the store otherwise)."""
    try:
        summary = fmt.read_summary(out, flag="OUT_DIR")
    except (InputError, OSError, ValueError):
        return None
    keys = ("listing_sha256", "shards_expected", "entropy", "latent_clamp")
    return summary if summary.get("complete") and all(summary.get(k) == fields[k] for k in keys) else None


def _fields(in_dir: Path, out: Path, plan: Plan, codec: LatentCodec, options: CompressOptions) -> dict[str, Any]:
    """summary.json's fields beyond the settings and totals."""
    if codec.kind == "joint":
        clamp = "by the model (joint checkpoint)"
    else:
        clamp = "to [0, 1] for uint8" if options.dtype == "uint8" else "none (float16 stores z as is)"
    return {
        "in_dir": str(in_dir.resolve()),
        "ckpt": str(codec.path),
        "ckpt_kind": codec.kind,
        "images_total": len(plan.rel_paths),
        "shards_expected": len(plan.assigned),
        "listing_sha256": hashlib.sha256("\n".join(plan.rel_paths).encode()).hexdigest(),
        "latent_clamp": clamp,
        "entropy": options.format.entropy,
        "bytes_out_counts": "shard files on disk, headers included",
        "seconds_counts": "wall time of this run from its start (after imports) to its last store file",
        "bytes_in_counts": "the encoded images' files",
        "dicom_window": dicom_window(),  # how DICOM inputs were read (--dicom-window)
        "config": {**asdict(options), "in_dir": str(in_dir), "out_dir": str(out), "part": list(options.part)},
    }
