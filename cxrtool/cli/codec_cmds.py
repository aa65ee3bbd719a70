"""Codec commands: `compress`, `decompress`, `compress-merge` (the latent store of SPEC §5)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.config_options import options_from
from cxrtool.cli.options import Overwrite
from cxrtool.cli.output import emit_table, log, progress
from cxrtool.config.compression import StoreConfig
from cxrtool.errors import PartialSuccess

SUMMARY_ROWS = (
    "images",
    "encoded",
    "errors",
    "shards",
    "dtype",
    "entropy",
    "size",
    "bytes_in",
    "bytes_out",
    "bits_per_pixel",
    "compression_ratio",
    "latent_outside_unit",
    "seconds",
    "images_per_s",
    "workers",
)


def _summary_table(summary: dict[str, Any], title: str) -> None:
    rows = [
        [key, "full" if key == "size" and summary[key] is None else summary[key]]
        for key in SUMMARY_ROWS
        if key in summary
    ]
    emit_table(["quantity", "value"], rows, title=title)


@command("compress")
@options_from(store=StoreConfig)
def compress_cmd(
    in_dir: Annotated[
        Path, typer.Argument(help="Folder of images (PNG/JPEG/DICOM, any layout, searched recursively).")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Store to write, or to finish on a rerun; not inside IN_DIR.")],
    ckpt: Annotated[Path, typer.Option("--ckpt", help="Stage-2 (train-ae) or stage-3 (train-joint) run or file.")],
    store: StoreConfig,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/N: encode only part i of N (0-based); join with compress-merge.")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Encode every image under IN_DIR with a checkpoint's encoder into latent shards (4× smaller per side).

    Writes latents-NNNNN.safetensors, manifest.csv, errors.csv and summary.json. uint8 latents are stored as
    lossless PNGs unless --entropy says otherwise; decoding gives the exact uint8 latent. A rerun skips finished
    shards; unreadable files are listed in errors.csv and skipped (exit 3). Under torchrun each rank writes its part
    to OUT_DIR/part-RANK-of-WORLD_SIZE.

    Nothing identifying from a DICOM is stored unless --keep-dicom-header or --dicom-uids asks for it.

    Example:  cxrtool compress data/images latents --ckpt runs/joint --size 896

    Example:  cxrtool compress dicoms latents --ckpt runs/ae --keep-dicom-header --dicom-uids
    """
    from cxrtool.compression.compress import CompressOptions, compress_folder, parse_part, part_out_dir

    part, from_env = parse_part(shard)
    out = part_out_dir(out_dir, part, from_env)
    options = CompressOptions(
        ckpt, part=part, overwrite=overwrite, **{f.name: getattr(store, f.name) for f in fields(store)}
    )
    with progress("compress", None) as advance:
        report = compress_folder(in_dir, out, options, progress=advance)
    _summary_table(report.summary, f"latent store {out} (part {report.summary['part']})")
    log(f"{report.shards_written} shard(s) written, {report.shards_skipped} already done; files in {out}")
    if part[1] > 1:
        log(f"part {part[0]}/{part[1]} done; join the parts with `cxrtool compress-merge PART... --out DIR`")
    if report.errors:
        for rel, error in report.errors[:5]:
            log(f"{rel}: {error}")
        raise PartialSuccess(f"{len(report.errors)} image(s) could not be read and were skipped (see errors.csv)")


@command("decompress")
def decompress_cmd(
    out_dir: Annotated[Path, typer.Argument(help="A latent store written by `cxrtool compress`.")],
    rec_dir: Annotated[Path, typer.Argument(help="Folder for the reconstructed images.")],
    ckpt: Annotated[
        Path | None, typer.Option("--ckpt", help="The checkpoint the store was made with [default: its summary's].")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="png, or dicom: 8-bit MONOCHROME2 flagged lossy, with the source's tags where the store kept them.",
        ),
    ] = "png",
    workers: Annotated[int | None, typer.Option(help="File-encoding threads [default: min(4, CPUs-1)].", min=1)] = None,
    overwrite: Overwrite = False,
) -> None:
    """Reconstruct a store's images: REC_DIR/<rel_path with .png or .dcm>, 8-bit grayscale, at the original size
    (S×S for a store made with --size S).

    A checkpoint with other encoder/decoder weights than the store's is refused. A DICOM is flagged Lossy Image
    Compression "01" with its ratio and a method naming cxrtool's encoder. From a store made with
    --keep-dicom-header it carries its source's tags (patient, study, series; Study and Series Instance UID) with a
    new SOP Instance UID referencing the source's, Rows/Columns/Pixel Spacing of the written pixels; otherwise it is
    a Secondary Capture with new UIDs and no patient or study data.

    Example:  cxrtool decompress latents reconstructed --ckpt runs/ae --format dicom
    """
    from cxrtool.compression.decompress import decompress_store
    from cxrtool.runtime.workers import default_workers

    with progress("decompress", None) as advance:
        report = decompress_store(
            out_dir,
            rec_dir,
            ckpt=ckpt,
            workers=workers or max(1, default_workers()),
            overwrite=overwrite,
            fmt=fmt,
            progress=advance,
        )
    emit_table(
        ["quantity", "value"],
        [["images", report.images], ["seconds", report.seconds], ["ckpt", str(report.ckpt)]],
        title=f"reconstructions in {rec_dir}",
    )
    if report.unlisted:
        raise PartialSuccess(
            f"{out_dir}/manifest.csv lacks {len(report.unlisted)} image(s) its shards hold, not decompressed: "
            f"{', '.join(report.unlisted[:5])}{' …' if len(report.unlisted) > 5 else ''}; rerun the `cxrtool compress` "
            "that made the store to rebuild manifest.csv"
        )


@command("compress-merge")
def compress_merge_cmd(
    parts: Annotated[list[Path], typer.Argument(help="The OUT_DIRs of `compress --shard i/N`, all N of them.")],
    out: Annotated[Path, typer.Option("--out", help="The merged store to write.")],
    overwrite: Overwrite = False,
) -> None:
    """Join the parts of a sharded compress into one store, equal to what a single run writes (parts are copied).

    Example:  cxrtool compress-merge part0 part1 part2 --out latents
    """
    from cxrtool.compression.merge import merge_parts

    config = {"parts": [str(p) for p in parts], "out": str(out), "overwrite": overwrite}
    summary = merge_parts(parts, out, overwrite=overwrite, config=config)
    _summary_table(summary, f"merged latent store {out} ({len(parts)} parts)")
