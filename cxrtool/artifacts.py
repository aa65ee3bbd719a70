"""File plumbing shared by every command: atomic writes, the overwrite rule, JSON and CSV schemas.

Nothing half-written is ever left at a final path: each writer fills a temporary file beside the target and
renames it into place (an atomic operation on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cxrtool import __version__
from cxrtool.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _current_umask()


def ensure_new(path: Path, *, overwrite: bool, flag: str = "--out") -> None:
    """Refuse to replace an existing output unless the user asked for it (SPEC §5)."""
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists ({flag}); pass --overwrite to replace it or choose another path")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600; outputs should be as shareable as any new file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def replaced_dir(path: Path) -> Iterator[Path]:
    """Yield a new, empty folder beside `path`; when the block succeeds it takes `path`'s place, and only then is
    an earlier output there removed. A failure leaves the old output as it was and no partial new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~UMASK)
    try:
        yield tmp
        old = None
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "old")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from None


def write_csv(path: Path, frame: Any, *, float_format: str | None = None) -> None:
    """Write a pandas DataFrame as CSV: one header row, no index, no comment lines."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")


def read_csv_checked(path: Path, required: Sequence[str], *, what: str) -> Any:
    """Read a CSV that cxrtool wrote and check the columns its schema promises."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist (expected {what})")
    try:
        frame = pd.read_csv(path, dtype={"image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a readable CSV ({what}): {e}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(missing)}; is it really {what}?")
    return frame


def provenance(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every artifact records about how it was made."""
    return {"cxrtool_version": __version__, "config": config or {}}


def read_safetensors_header(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(metadata, {tensor name: {dtype, shape, data_offsets}}) from a safetensors file without loading torch.

    The format is an 8-byte little-endian header length, then that many bytes of JSON."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError("implausible header size")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        metadata = header.pop("__metadata__", {}) or {}
        promised = 8 + size + max((t["data_offsets"][1] for t in header.values()), default=0)
        actual = path.stat().st_size
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise InputError(f"{path} is not a readable safetensors file ({e})") from None
    if actual < promised:
        raise InputError(
            f"{path} is truncated ({actual} bytes where its header promises {promised}): an interrupted copy or "
            "download? copy it again"
        )
    return metadata, header
