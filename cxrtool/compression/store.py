"""The latent store of SPEC §5: shards of latents, manifest.csv, errors.csv and summary.json. No torch here.

    OUT_DIR/latents-00000.safetensors   images 0 … S−1 of IN_DIR's sorted listing (S = --shard-size), minus failures
            latents-00001.safetensors   images S … 2S−1, …
            manifest.csv                one row per encoded image, sorted by rel_path (= shard order)
            errors.csv                  rel_path, error: the files that could not be read
            summary.json                settings, counts, bytes, bits per pixel, seconds, encoder identity

A shard is self-contained: its metadata holds the settings, the encoder identity and the records of its images
(original size and mode, file bytes) and of its failures, so manifest.csv, errors.csv and the totals are rebuilt from
the shards alone. That is what makes a resumed run, or a merge of parts, reproduce an uninterrupted run's files.

A latent is stored raw (an H×W uint8 or float16 tensor) or losslessly coded (a 1-D uint8 tensor holding a PNG or
WebP file; the shard's `cxrtool.latent_shapes` gives each H×W): `latent_format.LatentFormat` owns that round trip,
and the store's `dtype` (`uint8`, `float16`, `uint8+png`, `uint8+webp`) names it. Stores written before coding
existed are the raw forms, read as they always were.

This module holds the format and the reading side (`open_store`, `Store.read`, `check_identity`, for `decompress`
and `evaluate --latents`); `store_write` the writing side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cxrtool.artifacts import read_json, read_safetensors_header
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.errors import InputError
from cxrtool.layouts import LatentStore

FORMAT = "cxrtool-latents"
# The file names are defined in cxrtool.layouts (SPEC §5); these are the store's own names for them.
SUMMARY, MANIFEST, ERRORS = LatentStore.SUMMARY, LatentStore.MANIFEST, LatentStore.ERRORS
SHARD_GLOB = LatentStore.SHARD_GLOB
MANIFEST_COLUMNS = (
    "image",
    "rel_path",
    "shard",
    "key",
    "orig_width",
    "orig_height",
    "orig_mode",
    "latent_height",
    "latent_width",
    "dtype",
    "bytes",
)
ERROR_COLUMNS = ("rel_path", "error")
UID_COLUMNS = ("study_uid", "series_uid", "sop_uid")  # manifest.csv's last columns with `compress --dicom-uids`
# What must match between a store, its shards and a rerun (or the parts of a merge).
SETTINGS = ("encoder_sha256", "dtype", "size", "shard_size", "dicom_header", "dicom_uids")
# Settings that stores written before they existed lack: read as these values.
SETTING_DEFAULTS: dict[str, Any] = {"dicom_header": False, "dicom_uids": False}
# A kept DICOM header (`compress --keep-dicom-header`) is a 1-D uint8 tensor in its image's shard under this prefix
# and the image's key; a relative path never starts with "/", so no image's key can take that name.
HEADER_PREFIX = "/dicom-header/"


def header_key(rel: str) -> str:
    return HEADER_PREFIX + rel


def setting(summary: dict[str, Any], key: str) -> Any:
    """One of SETTINGS from a summary.json, a store older than the setting reading as its default."""
    return summary.get(key, SETTING_DEFAULTS.get(key))


shard_name, shard_index = LatentStore.shard, LatentStore.shard_index


def size_text(size: int | None) -> str:
    return "full" if size is None else str(size)


@dataclass(frozen=True)
class Record:
    """One encoded image of a shard."""

    rel_path: str
    orig_width: int
    orig_height: int
    orig_mode: str
    file_bytes: int
    latent_height: int
    latent_width: int
    bytes: int  # the latent's bytes in the shard (its tensor data: raw values or a coded file)


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    index: int
    settings: dict[str, Any]
    records: list[Record]
    errors: list[tuple[str, str]]
    latent_outside: int  # latent values outside [0, 1] before any clamping
    disk_bytes: int
    uids: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # rel → study, series, SOP (--dicom-uids)
    header_bytes: int = 0  # the kept DICOM headers' bytes (--keep-dicom-header)

    @property
    def rel_paths(self) -> list[str]:
        """Every image the shard covers, encoded or failed, in listing order."""
        return sorted([r.rel_path for r in self.records] + [rel for rel, _ in self.errors])


def read_shard(path: Path) -> ShardInfo:
    """A shard's settings and records from its header; InputError when it is not a whole cxrtool shard."""
    path = Path(path)
    meta, tensors = read_safetensors_header(path)
    try:
        with path.open("rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
        data_len = max((t["data_offsets"][1] for t in tensors.values()), default=0)
        if path.stat().st_size != 8 + header_len + data_len:
            raise ValueError(f"{path.stat().st_size} bytes where its header promises {8 + header_len + data_len}")
        if meta.get("cxrtool.kind") != "latents":
            raise ValueError("no cxrtool.kind=latents in its metadata")
        size = meta["cxrtool.size"]
        settings = {
            "encoder_sha256": meta["cxrtool.encoder_sha256"],
            "dtype": meta["cxrtool.dtype"],
            "size": None if size == "full" else int(size),
            "shard_size": int(meta["cxrtool.shard_size"]),
            "dicom_header": meta.get("cxrtool.dicom_header") == "true",
            "dicom_uids": "cxrtool.dicom_uids" in meta,
        }
        images = json.loads(meta["cxrtool.images"])
        coded = LatentFormat.parse(str(settings["dtype"])).coded
        # A coded latent's tensor is its file's bytes; its H×W is kept beside the records.
        shapes = json.loads(meta["cxrtool.latent_shapes"]) if coded else [tensors[i[0]]["shape"] for i in images]
        if len(shapes) != len(images):
            raise ValueError(f"{len(shapes)} latent shapes for {len(images)} images")
        records = []
        for (rel, width, height, mode, file_bytes), (h, w) in zip(images, shapes):
            start, end = tensors[rel]["data_offsets"]
            records.append(Record(rel, width, height, mode, file_bytes, h, w, end - start))
        errors = [(rel, message) for rel, message in json.loads(meta["cxrtool.errors"])]
        index, outside = int(meta["cxrtool.shard"]), int(meta["cxrtool.latent_outside"])
        uids = {
            rel: (study, series, sop) for rel, study, series, sop in json.loads(meta.get("cxrtool.dicom_uids", "[]"))
        }
        header_bytes = sum(
            e - s for name, t in tensors.items() if name.startswith(HEADER_PREFIX) for s, e in [t["data_offsets"]]
        )
    except (OSError, KeyError, ValueError, TypeError, InputError) as e:
        raise InputError(f"{path} is not a complete cxrtool latent shard ({e})") from None
    return ShardInfo(path, index, settings, records, errors, outside, path.stat().st_size, uids, header_bytes)


def read_summary(out: Path, *, flag: str) -> dict[str, Any]:
    summary = read_json(Path(out) / SUMMARY)
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise InputError(f"{out} ({flag}) is not a cxrtool latent store (its summary.json has no format {FORMAT})")
    return summary


def identity_message(store: str, ckpt: str, *, root: Path, flag: str, path: Any) -> str:
    return (
        f"{flag} {path} has encoder identity {ckpt}, but the store {root} was encoded with {store}; "
        f"use the checkpoint the store was made with (its summary.json names it) or compress again"
    )


@dataclass
class Store:
    """A latent store opened for reading: `read(keys)` and `iter_latents()` return float32 latents, `stored(keys)`
    the values as stored (uint8 or float16), whatever the coding."""

    root: Path
    summary: dict[str, Any]
    manifest: Any  # pandas DataFrame with MANIFEST_COLUMNS
    unlisted: list[str] = field(default_factory=list)  # images the shards hold that manifest.csv lacks

    @property
    def identity(self) -> str:
        return self.summary["encoder_sha256"]

    @property
    def size(self) -> int | None:
        return self.summary["size"]

    @property
    def dtype(self) -> str:
        return self.summary["dtype"]

    @cached_property
    def format(self) -> LatentFormat:
        return LatentFormat.parse(self.dtype)

    @cached_property
    def shard_of(self) -> dict[str, str]:
        """key → the shard file that holds it."""
        return dict(zip(self.manifest["key"], self.manifest["shard"]))

    @cached_property
    def shape_of(self) -> dict[str, tuple[int, int]]:
        """key → the latent's (height, width)."""
        m = self.manifest
        return {k: (int(h), int(w)) for k, h, w in zip(m["key"], m["latent_height"], m["latent_width"])}

    def shard_paths(self) -> list[Path]:
        return [self.root / name for name in dict.fromkeys(self.manifest["shard"])]

    def stored(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored values (H×W uint8 or float16) of `keys`, in that order."""
        keys, where = list(keys), self.shard_of
        missing = [k for k in keys if k not in where]
        if missing:
            raise InputError(f"{len(missing)} key(s) are not in the store {self.root}, e.g. {', '.join(missing[:3])}")
        by_shard: dict[str, list[str]] = {}
        for key in keys:
            by_shard.setdefault(where[key], []).append(key)
        out: dict[str, np.ndarray] = {}
        for shard, names in by_shard.items():
            out.update(self._shard_values(shard, names))
        return {k: out[k] for k in keys}

    def read(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The float32 latents of `keys`, in that order."""
        return {k: LatentFormat.to_float(v) for k, v in self.stored(keys).items()}

    def iter_latents(self) -> Iterator[tuple[str, np.ndarray]]:
        """(key, float32 latent) for every image, in manifest order, one shard open at a time."""
        for shard, rows in self.manifest.groupby("shard", sort=False):
            for key, values in self._shard_values(shard, list(rows["key"])):
                yield key, LatentFormat.to_float(values)

    def dicom_header(self, key: str) -> bytes | None:
        """The source header kept for `key` by `compress --keep-dicom-header` (a DICOM file without its pixel data),
        or None: a store made without the option, or an image that was not a DICOM."""
        from safetensors import safe_open

        if not setting(self.summary, "dicom_header"):
            return None
        path = self.root / self.shard_of[key]
        with safe_open(str(path), framework="np") as f:
            names = f.keys()  # a safe_open handle has no `in`
            return f.get_tensor(header_key(key)).tobytes() if header_key(key) in names else None

    def _shard_values(self, shard: str, keys: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
        """(key, stored values) one at a time, the shard open meanwhile (memory: one latent)."""
        from safetensors import safe_open

        fmt, path = self.format, self.root / shard
        with safe_open(str(path), framework="np") as f:
            for key in keys:
                try:
                    yield key, fmt.unpack(f.get_tensor(key), self.shape_of[key])
                except InputError as e:
                    raise InputError(f"{path}: {e}; the shard is damaged: compress again") from None


def open_store(path: Path, *, flag: str = "--latents") -> Store:
    """A finished store (or finished part), checked: summary format, manifest columns, every shard's identity."""
    from cxrtool.artifacts import read_csv_checked

    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root} ({flag}) is not a folder; give the OUT_DIR of `cxrtool compress`")
    summary = read_summary(root, flag=flag)
    if not summary.get("complete"):
        raise InputError(f"the store {root} ({flag}) is unfinished; rerun the `cxrtool compress` that made it")
    manifest = read_csv_checked(root / MANIFEST, MANIFEST_COLUMNS, what="a latent store's manifest.csv")
    manifest = manifest.astype({"rel_path": str, "key": str, "shard": str})
    listed = set(manifest["key"])
    names = dict.fromkeys([*manifest["shard"], *(p.name for p in sorted(root.glob("latents-*.safetensors")))])
    unlisted = []
    for name in names:
        info = read_shard(root / name)
        if info.settings["encoder_sha256"] != summary["encoder_sha256"]:
            raise InputError(f"{root / name} was encoded by another encoder than its store's summary.json says")
        unlisted += [r.rel_path for r in info.records if r.rel_path not in listed]
    return Store(root, summary, manifest, sorted(unlisted))


def check_identity(store: Store, ckpt: Any, *, flag: str = "--ckpt", path: Any = "") -> None:
    """Refuse a checkpoint whose encoder/decoder differ from the store's: `ckpt` is a tensor dict or an identity."""
    if isinstance(ckpt, str):
        identity = ckpt
    else:
        from cxrtool.models.checkpoints import encoder_identity

        identity = encoder_identity(ckpt)
    if identity != store.identity:
        raise InputError(identity_message(store.identity, identity, root=store.root, flag=flag, path=path))
