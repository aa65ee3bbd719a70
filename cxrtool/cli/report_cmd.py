"""`codec-report`: the autoencoder against resampling, JPEG, WebP and JPEG 2000 at the same rate."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from cxrtool.cli.app import command
from cxrtool.cli.options import DicomWindow, Overwrite, use_dicom_window
from cxrtool.cli.output import emit_table, log, progress
from cxrtool.errors import InputError, PartialSuccess
from cxrtool.log import warn

DIGITS = {"bpp": 4, "psnr": 2, "ssim": 4}


@command("codec-report")
def codec_report_cmd(
    in_dir: Annotated[
        Path, typer.Argument(help="Folder of images (any nesting).", show_default=False, metavar="IN_DIR")
    ],
    ckpt: Annotated[
        Path, typer.Option("--ckpt", help="Autoencoder or joint checkpoint: a run directory or a .safetensors file.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="CSV to write: method, setting, bpp, psnr, ssim, images; the plot goes beside it."),
    ],
    size: Annotated[
        int | None, typer.Option(help="Resize every image to SIZE×SIZE first (896 for a joint model).", min=11)
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use the first N images (sorted by path).", min=1)] = None,
    codecs: Annotated[
        str | None, typer.Option(help="Comma-separated: jpeg, webp, jpeg2000 [default: all that Pillow has].")
    ] = None,
    dicom_window: DicomWindow = "file",
    overwrite: Overwrite = False,
) -> None:
    """Rate and quality of the autoencoder (uint8 latents raw and losslessly coded as PNG and WebP, float16
    latents), bicubic and Lanczos 4× down-and-up sampling, and JPEG, WebP and JPEG 2000 at the one setting whose bits
    per pixel over the set are nearest the raw uint8 latent's; report.png (beside the CSV, same name) plots PSNR and
    SSIM against bpp for every row.

    bpp = 8·bytes / pixels over the whole set: the latent's payload (1 or 2 bytes per value, or the coded file; no
    store header), the downsampled 8-bit image, or whole codec files with headers. PSNR is the mean of per-image
    8-bit PSNR; SSIM is Wang et al. 2004 (Gaussian σ=1.5, data range 255). The table marks the best PSNR and SSIM
    (`best`); the float16 row spends twice the bits. Each codec search encodes every image ~10 times: expect minutes
    on a hundred 1024² images, or use --limit.

    Example:  cxrtool codec-report data/images --ckpt runs/ae --out report.csv --limit 40
    """
    from cxrtool.artifacts import ensure_new, write_csv
    from cxrtool.compression.report import best_marks, codec_report, list_images, plot_rate_distortion

    use_dicom_window(dicom_window)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give the path of the CSV to write")
    ensure_new(out, overwrite=overwrite)
    plot = out.with_suffix(".png") if out.suffix.lower() != ".png" else out.with_suffix(".rd.png")
    ensure_new(plot, overwrite=overwrite)
    names = [c.strip() for c in codecs.split(",") if c.strip()] if codecs is not None else None
    if names is not None and not names:
        raise InputError("--codecs is empty; name at least one of jpeg, webp, jpeg2000 or leave the option out")
    paths = list_images(in_dir, limit=limit)
    log(f"codec report on {len(paths)} image(s) from {in_dir}" + (f", resized to {size}×{size}" if size else ""))
    started = time.perf_counter()
    report = codec_report(paths, ckpt, size=size, codecs=names, progress=_timed_progress)
    for note in report.notes:
        log(note)
    for warning in report.warnings:
        warn(warning)
    table = report.table
    header = [*table.columns, "best"]
    rows = [[*_cells(record), mark] for record, mark in zip(table.to_dict("records"), best_marks(table))]
    emit_table(header, rows, title=f"Codec report: {int(table['images'].iloc[0])} images, ckpt {ckpt}")
    write_csv(out, table)
    left_off = plot_rate_distortion(table, plot)
    if left_off:
        warn(f"{plot}: left off the plot (PSNR is inf): {', '.join(left_off)}")
    log(f"wrote {out} and {plot} in {time.perf_counter() - started:.1f} s")
    if report.skipped:
        for path, why in report.skipped[:10]:
            log(f"skipped {path}: {why}")
        raise PartialSuccess(f"{len(report.skipped)} of {len(paths)} image(s) skipped; the report covers the rest")


def _cells(record: dict[str, Any]) -> list[Any]:
    def cell(name: str, value: Any) -> Any:
        if name in DIGITS and isinstance(value, float) and math.isfinite(value):
            return f"{value:.{DIGITS[name]}f}"
        return value if not isinstance(value, float) else str(value)

    return [cell(name, value) for name, value in record.items()]


@contextlib.contextmanager
def _timed_progress(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar per phase, and its time on stderr (a bar shows only in a terminal)."""
    started = time.perf_counter()
    with progress(description, total) as advance:
        yield advance
    log(f"{description}: {time.perf_counter() - started:.1f} s")
