"""What a cxrtool model file is, read from its safetensors header alone: no tensors, no torch (so `info` stays
light). The metadata keys are SPEC §5's; `cxrtool.models.checkpoints` builds and loads the models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrtool.artifacts import read_safetensors_header
from cxrtool.errors import InputError
from cxrtool.layouts import RunDir

KINDS = ("classifier", "autoencoder", "joint")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    kind: str
    labels: tuple[str, ...]
    input: dict[str, Any]
    version: str
    config: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)  # the metadata as stored, every key
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> dtype, shape, offsets


def model_file(path: Path, *, flag: str = "--ckpt") -> Path:
    """A run directory means its model.safetensors; a file means itself."""
    path = Path(path)
    if path.is_dir():
        path = path / RunDir.MODEL
    if not path.is_file():
        raise InputError(f"{path} ({flag}) does not exist; give a run directory or a .safetensors file")
    return path


def _major(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _warn_if_newer(path: Path, version: str) -> None:
    from cxrtool import __version__
    from cxrtool.log import warn

    theirs, ours = _major(version), _major(__version__)
    if theirs is not None and ours is not None and theirs > ours:
        warn(f"{path} was written by cxrtool {version}, a newer major version than this {__version__}; update cxrtool")


def read_info(path: Path, *, flag: str = "--ckpt") -> CheckpointInfo:
    """The metadata of a cxrtool model file, without loading its tensors."""
    path = model_file(path, flag=flag)
    meta, tensors = read_safetensors_header(path)
    if meta.get("cxrtool.kind") not in KINDS:
        raise InputError(f"{path} ({flag}) is not a cxrtool model file (no valid cxrtool.kind in its metadata)")
    _warn_if_newer(path, meta.get("cxrtool.version", ""))
    try:
        return CheckpointInfo(
            path=path,
            kind=meta["cxrtool.kind"],
            labels=tuple(json.loads(meta.get("cxrtool.labels", "[]"))),
            input=json.loads(meta.get("cxrtool.input", "{}")),
            version=meta.get("cxrtool.version", "?"),
            config=json.loads(meta.get("cxrtool.config", "{}")),
            raw=dict(meta),
            tensors=tensors,
        )
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed cxrtool metadata ({e})") from None
