"""`cxrtool compress-merge`: the parts of a sharded `compress` (`--shard i/N` or torchrun) joined into one store.

Every part must be finished, made with the same checkpoint and settings from the same listing of IN_DIR, and the
parts 0 … N−1 must all be there once. Shards are copied (the parts are left as they are), so the merged store has
the same shard files, byte for byte, and the same manifest.csv and errors.csv as a single run would have written.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrtool.artifacts import atomic_path, write_json
from cxrtool.compression import store as fmt
from cxrtool.compression import store_write as write
from cxrtool.errors import InputError

SAME = (*fmt.SETTINGS, "listing_sha256", "images_total")


def _part_number(summary: dict[str, Any], path: Path) -> tuple[int, int]:
    i, n = (int(v) for v in str(summary.get("part", "0/1")).split("/"))
    if not summary.get("complete"):
        raise InputError(f"part {path} is unfinished; rerun its `cxrtool compress` before merging")
    return i, n


def check_parts(parts: Sequence[Path]) -> list[dict[str, Any]]:
    """The parts' summaries, once they are known to make one whole store."""
    summaries = [fmt.read_summary(p, flag="PART") for p in parts]
    numbers = [_part_number(s, p) for s, p in zip(summaries, parts)]
    first = summaries[0]
    for path, summary in zip(parts, summaries):
        diffs = [
            f"{k} {fmt.setting(summary, k)} (first part: {fmt.setting(first, k)})"
            for k in SAME
            if fmt.setting(summary, k) != fmt.setting(first, k)
        ]
        if diffs:
            raise InputError(f"part {path} differs from {parts[0]}: {'; '.join(diffs)}")
    n = numbers[0][1]
    seen = sorted(i for i, _ in numbers)
    if any(m != n for _, m in numbers) or seen != list(range(n)):
        have = ", ".join(f"{i}/{m}" for i, m in numbers)
        raise InputError(f"the parts must be 0/{n} … {n - 1}/{n}, each once; got {have}")
    return summaries


def _open_merged_dir(parts: Sequence[Path], out: Path, *, overwrite: bool) -> None:
    dst = out.resolve()
    if any(dst == p.resolve() for p in parts):
        raise InputError(f"--out {out} is one of the parts; merge into a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise InputError(f"--out {out} already holds files; pass --overwrite to replace them or choose another")
        for path in write.store_files(out):
            path.unlink()
        write.clean_temporaries(out)
    out.mkdir(parents=True, exist_ok=True)


def _part_shards(part: Path, summary: dict[str, Any], settings: dict[str, Any]) -> list[Path]:
    """The part's shard files, each checked to belong to it, and as many as its summary promises."""
    number = _part_number(summary, part)
    paths = sorted(p for p in part.glob(fmt.SHARD_GLOB) if fmt.shard_index(p.name) is not None)
    for path in paths:
        info = fmt.read_shard(path)
        if info.settings != settings or info.index % number[1] != number[0]:
            raise InputError(f"{path} does not belong to part {number[0]}/{number[1]} of this store")
    if len(paths) != int(summary["shards_expected"]):
        raise InputError(
            f"part {part} holds {len(paths)} shard(s) where its summary.json promises {summary['shards_expected']}; "
            "rerun its `cxrtool compress` to finish it before merging"
        )
    return paths


def _copy_shards(paths: Sequence[Path], out: Path) -> list[fmt.ShardInfo]:
    """Copy every shard into `out`; on any failure remove the ones copied, so that no partial store is left."""
    copied: list[Path] = []
    try:
        for path in paths:
            with atomic_path(out / path.name) as tmp:
                shutil.copyfile(path, tmp)
            copied.append(out / path.name)
        return [fmt.read_shard(p) for p in copied]
    except BaseException:
        for p in copied:
            p.unlink(missing_ok=True)
        raise


def merge_parts(
    parts: Sequence[Path], out: Path, *, overwrite: bool = False, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Join finished parts into the store `out`; returns its summary."""
    parts, out = [Path(p) for p in parts], Path(out)
    if not parts:
        raise InputError("give the parts to merge: the OUT_DIRs of `cxrtool compress --shard i/N`")
    summaries = check_parts(parts)
    first = summaries[0]
    settings = {k: fmt.setting(first, k) for k in fmt.SETTINGS}
    # Every part checked whole before --out is touched: a refused merge leaves it as it was.
    paths = [path for part, summary in zip(parts, summaries) for path in _part_shards(part, summary, settings)]
    _open_merged_dir(parts, out, overwrite=overwrite)
    infos = sorted(_copy_shards(paths, out), key=lambda i: i.index)
    expected = sum(int(s["shards_expected"]) for s in summaries)
    write.write_tables(out, infos, first["dtype"], uids=settings["dicom_uids"])
    keep = ("in_dir", "ckpt", "ckpt_kind", "images_total", "listing_sha256", "latent_clamp", "dicom_window", "entropy")
    fields = {k: first.get(k) for k in keep}
    fields.update(
        shards_expected=expected,
        bytes_out_counts=first.get("bytes_out_counts"),
        bytes_in_counts=first.get("bytes_in_counts"),
        seconds=max(float(s.get("seconds", 0.0)) for s in summaries),
        merged_from=[str(p) for p in parts],
        config=config or {},
    )
    summary = write.build_summary(infos, settings=settings, part=(0, 1), complete=True, fields=fields)
    write_json(out / fmt.SUMMARY, summary)
    return summary
