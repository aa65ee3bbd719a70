"""Writing the latent store (SPEC §5): shards, manifest.csv, errors.csv and summary.json, all rebuilt from the
shards' own records so that a resumed run or a merge of parts reproduces an uninterrupted run's files.

Shards are written here rather than by `safetensors.save_file`: that function stores the metadata map in a random
order on every run (a Rust HashMap), so the same latents would give different bytes. Here the header lists the
metadata sorted, then the tensors in manifest order; the result is a standard safetensors file.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cxrtool import __version__
from cxrtool.artifacts import atomic_path
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.compression.store import (
    ERROR_COLUMNS,
    ERRORS,
    FORMAT,
    MANIFEST,
    MANIFEST_COLUMNS,
    SHARD_GLOB,
    SUMMARY,
    UID_COLUMNS,
    Record,
    ShardInfo,
    shard_index,
    size_text,
)
from cxrtool.layouts import LatentStore


class ShardWriter:
    """Latents of one shard spill to a hidden file as they come (memory stays at one image), then `finish` writes
    header + data to a temporary file and renames it into place: a killed run leaves no partial shard, only hidden
    `.latents-*.tmp` files, which the next run removes."""

    def __init__(self, path: Path, fmt: LatentFormat) -> None:
        self.path, self.fmt = Path(path), fmt
        fd, spill = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".spill.tmp", dir=self.path.parent)
        self._spill_path = Path(spill)
        self._spill = os.fdopen(fd, "w+b")
        self.entries: list[tuple[str, str, tuple[int, ...], int, int]] = []
        self._offset = 0

    def add(self, key: str, data: bytes, shape: tuple[int, int]) -> int:
        """Append one latent as `LatentFormat.pack` made it (`shape` its H×W); returns its bytes."""
        return self._append(key, self.fmt.tensor_dtype, self.fmt.tensor_shape(shape, len(data)), data)

    def add_bytes(self, key: str, data: bytes) -> int:
        """Append other bytes (a kept DICOM header) as a 1-D uint8 tensor; returns their number."""
        return self._append(key, "U8", (len(data),), data)

    def _append(self, key: str, dtype: str, shape: tuple[int, ...], data: bytes) -> int:
        self._spill.write(data)
        self.entries.append((key, dtype, shape, self._offset, self._offset + len(data)))
        self._offset += len(data)
        return len(data)

    def finish(self, metadata: dict[str, str]) -> None:
        header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
        for key, dtype, shape, start, end in self.entries:
            header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [start, end]}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # as safetensors pads: the data starts 8-byte aligned
        self._spill.flush()
        self._spill.seek(0)
        with atomic_path(self.path) as tmp, tmp.open("wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            shutil.copyfileobj(self._spill, f, 1 << 20)

    def close(self) -> None:
        self._spill.close()
        self._spill_path.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shard_metadata(
    settings: dict[str, Any],
    index: int,
    records: Sequence[Record],
    errors: Sequence[tuple[str, str]],
    outside: int,
    uids: dict[str, tuple[str, str, str]] | None = None,
) -> dict[str, str]:
    """The shard's `__metadata__`; a coded store's shards add `cxrtool.latent_shapes` ([H, W] per image, in the
    order of `cxrtool.images`), `--keep-dicom-header` adds `cxrtool.dicom_header`, `--dicom-uids` adds
    `cxrtool.dicom_uids` ([rel, study, series, SOP] per DICOM image), while a raw store's keep exactly the keys they
    always had."""
    meta = {
        "cxrtool.kind": "latents",
        "cxrtool.version": __version__,
        "cxrtool.encoder_sha256": settings["encoder_sha256"],
        "cxrtool.dtype": settings["dtype"],
        "cxrtool.size": size_text(settings["size"]),
        "cxrtool.shard_size": str(settings["shard_size"]),
        "cxrtool.shard": str(index),
        "cxrtool.images": json.dumps(
            [[r.rel_path, r.orig_width, r.orig_height, r.orig_mode, r.file_bytes] for r in records]
        ),
        "cxrtool.errors": json.dumps([list(e) for e in errors]),
        "cxrtool.latent_outside": str(outside),
    }
    if LatentFormat.parse(settings["dtype"]).coded:
        meta["cxrtool.latent_shapes"] = json.dumps([[r.latent_height, r.latent_width] for r in records])
    if settings.get("dicom_header"):
        meta["cxrtool.dicom_header"] = "true"
    if settings.get("dicom_uids"):
        meta["cxrtool.dicom_uids"] = json.dumps([[rel, *ids] for rel, ids in sorted((uids or {}).items())])
    return meta


def manifest_rows(info: ShardInfo, dtype: str, uids: bool = False) -> Iterator[list[Any]]:
    for r in info.records:
        extra = list(info.uids.get(r.rel_path, ("", "", ""))) if uids else []
        yield [
            r.rel_path.rsplit("/", 1)[-1],
            r.rel_path,
            info.path.name,
            r.rel_path,
            r.orig_width,
            r.orig_height,
            r.orig_mode,
            r.latent_height,
            r.latent_width,
            dtype,
            r.bytes,
            *extra,
        ]


def write_tables(out: Path, infos: Iterable[ShardInfo], dtype: str, *, uids: bool = False) -> None:
    """manifest.csv (with UID_COLUMNS last where `uids`, empty for a non-DICOM image) and errors.csv from the shards
    (in index order, which is rel_path order)."""
    infos = sorted(infos, key=lambda i: i.index)
    with atomic_path(out / MANIFEST) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS + (UID_COLUMNS if uids else ()))
        for info in infos:
            writer.writerows(manifest_rows(info, dtype, uids))
    with atomic_path(out / ERRORS) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ERROR_COLUMNS)
        for info in infos:
            writer.writerows(info.errors)


def totals(infos: Sequence[ShardInfo]) -> dict[str, Any]:
    """Counts and sizes of a store from its shards; bits per pixel from the shards' bytes on disk, headers
    included, over the original pixels of the encoded images."""
    records = [r for info in infos for r in info.records]
    bytes_out = sum(info.disk_bytes for info in infos)
    pixels = sum(r.orig_width * r.orig_height for r in records)
    values = sum(r.latent_height * r.latent_width for r in records)
    bytes_in = sum(r.file_bytes for r in records)
    return {
        "images": len(records) + sum(len(info.errors) for info in infos),
        "encoded": len(records),
        "errors": sum(len(info.errors) for info in infos),
        "shards": len(infos),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "pixels": pixels,
        "bits_per_pixel": 8 * bytes_out / pixels if pixels else None,
        "compression_ratio": bytes_in / bytes_out if bytes_out else None,
        "latent_values": values,
        "latent_outside_unit": sum(info.latent_outside for info in infos) / values if values else 0.0,
    }


def clean_temporaries(out: Path) -> int:
    """Remove what a killed writer leaves: hidden `.<store file>.*.tmp` files. Returns how many."""
    names = (f".{LatentStore.SHARD_PREFIX}", f".{MANIFEST}.", f".{ERRORS}.", f".{SUMMARY}.")
    removed = 0
    for path in Path(out).iterdir():
        if path.name.startswith(names) and path.name.endswith(".tmp") and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def store_files(out: Path) -> list[Path]:
    """The files a store consists of (not the hidden temporaries)."""
    out = Path(out)
    fixed = [out / name for name in (SUMMARY, MANIFEST, ERRORS) if (out / name).is_file()]
    return fixed + sorted(p for p in out.glob(SHARD_GLOB) if shard_index(p.name) is not None)


def build_summary(
    infos: Sequence[ShardInfo],
    *,
    settings: dict[str, Any],
    part: tuple[int, int],
    complete: bool,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """summary.json: format, settings, counts and sizes from the shards, then the caller's fields; a store with
    kept DICOM headers says how many of its bytes out they are."""
    headers = {"dicom_header_bytes": sum(i.header_bytes for i in infos)} if settings.get("dicom_header") else {}
    return {
        "format": FORMAT,
        "format_version": 1,
        "cxrtool_version": __version__,
        "complete": complete,
        **settings,
        "part": f"{part[0]}/{part[1]}",
        **totals(infos),
        **headers,
        **fields,
    }
