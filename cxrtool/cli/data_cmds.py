"""Dataset commands: `split`, `synth`, `check`. None of them imports torch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cxrtool.cli.app import command
from cxrtool.cli.options import DataDir, DicomWindow, ImagesDir, MetadataFile, Overwrite, Seed, use_dicom_window
from cxrtool.cli.output import emit_frame, emit_table, log, progress
from cxrtool.errors import InputError, PartialSuccess


@command("split")
def split_cmd(
    data_dir: DataDir,
    out: Annotated[Path, typer.Option("--out", help="The splits.csv to write.")] = Path("splits.csv"),
    metadata: MetadataFile = None,
    train_val_list: Annotated[Path | None, typer.Option(help="Official train_val_list.txt to use.")] = None,
    test_list: Annotated[Path | None, typer.Option(help="Official test_list.txt to use.")] = None,
    val_size: Annotated[
        str | None,
        typer.Option(
            help="Validation size: a count (10000) or a fraction of train_val (0.12). "
            "Default: the paper's 10,000/86,524 share."
        ),
    ] = None,
    val_mode: Annotated[
        str, typer.Option(help="'patient' (no patient in two splits) or 'image' (the notebooks' leaky sampling).")
    ] = "patient",
    test_fraction: Annotated[
        float | None, typer.Option(help="For a dataset without official lists: share of images (by patient) for test.")
    ] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Image folder: adds the `path` column.")] = None,
    only_present: Annotated[
        bool, typer.Option(help="Drop rows whose image is not under --images (after splitting).")
    ] = False,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Split a dataset into train/val/test by patient and write splits.csv.

    The official test list is `test`; train_val is divided by patient into train and val. Prints images, patients
    and positives per label for each split.

    Example:  cxrtool split ChestX-ray14/ --images ChestX-ray14/ --out splits.csv
    """
    from dataclasses import asdict

    from cxrtool.artifacts import ensure_new, provenance, write_csv, write_json
    from cxrtool.data.splits import SplitRequest, parse_size, split_dataset, summarize

    if val_mode not in ("patient", "image"):
        raise InputError(f"--val-mode must be 'patient' or 'image', not {val_mode!r}")
    sidecar = out.with_suffix(".json")
    ensure_new(out, overwrite=overwrite)
    ensure_new(sidecar, overwrite=overwrite)
    request = SplitRequest(
        val_size=parse_size(val_size, flag="--val-size") if val_size else None,
        val_mode=val_mode,  # type: ignore[arg-type]
        test_fraction=test_fraction,
        seed=seed,
    )
    start = time.perf_counter()
    outcome = split_dataset(
        data_dir,
        request,
        metadata=metadata,
        train_val_list=train_val_list,
        test_list=test_list,
        images=images,
        only_present=only_present,
    )
    for message in outcome.messages:
        log(message)
    write_csv(out, outcome.frame)
    config = {
        **asdict(request),
        "data_dir": str(data_dir),
        "metadata": str(metadata) if metadata else None,
        "train_val_list": str(train_val_list) if train_val_list else None,
        "test_list": str(test_list) if test_list else None,
        "images": str(images) if images else None,
        "only_present": only_present,
    }
    counts = outcome.frame["split"].value_counts().to_dict()
    write_json(sidecar, {**provenance(config), "splits_csv": out.name, "counts": counts, "notes": outcome.messages})
    emit_frame(summarize(outcome.frame), index_name="count", title=f"splits.csv: {out}")
    seconds = time.perf_counter() - start
    log(f"wrote {out} and {sidecar.name} ({len(outcome.frame)} images, seed {seed}) in {seconds:.1f} s")


@command("synth")
def synth_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create, in ChestX-ray14's layout.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1000,
    size: Annotated[int, typer.Option("--size", help="Side of each square 8-bit image, in pixels.")] = 128,
    prevalence: Annotated[
        str, typer.Option(help="'synthetic' (each label in 8-30% of images) or 'real' (ChestX-ray14's rates).")
    ] = "synthetic",
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Write a synthetic ChestX-ray14 (metadata, split lists, images/) with findings drawn into the pixels.

    Every later command reads it exactly as it reads the real dataset.

    Example:  cxrtool synth data --n 600 --size 128 --seed 3
    """
    from cxrtool.data.synth import SynthConfig, write_synthetic

    if prevalence not in ("synthetic", "real"):
        raise InputError(f"--prevalence must be 'synthetic' or 'real', not {prevalence!r}")
    config = SynthConfig(n=n, size=size, seed=seed, prevalence=prevalence)  # type: ignore[arg-type]
    start = time.perf_counter()
    with progress("synth", n) as advance:
        counts = write_synthetic(out_dir, config, overwrite=overwrite, progress=advance)
    rows = [[key, value] for key, value in counts.items()]
    emit_table(["quantity", "count"], rows, title=f"synthetic dataset: {out_dir}")
    log(f"wrote {counts['images']} images to {out_dir} in {time.perf_counter() - start:.1f} s (seed {seed})")


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise InputError(f"--size must look like 1024 or 1024x1024, not {text!r}")
    return (parts[0], parts[-1])


@command("check")
def check_cmd(
    data_dir: DataDir,
    images: ImagesDir,
    metadata: MetadataFile = None,
    size: Annotated[
        str | None, typer.Option(help="Expected size (1024 or 1024x1024); default: the most common.")
    ] = None,
    modes: Annotated[str, typer.Option(help="Comma-separated image modes that count as expected.")] = "L",
    decode: Annotated[
        bool, typer.Option(help="Decode every image (finds truncated files); --no-decode reads headers.")
    ] = True,
    workers: Annotated[int | None, typer.Option(help="Decoding processes (default: all cores, at most 8).")] = None,
    show: Annotated[int, typer.Option(help="How many names to show per problem.")] = 5,
    dicom_window: DicomWindow = "file",
) -> None:
    """Check a dataset before a long run: images missing, extra, unreadable, of unexpected size or mode.

    Exits 3 when anything is wrong, 0 when all is well.

    Example:  cxrtool check ChestX-ray14/ --images ChestX-ray14/ --size 1024
    """
    from cxrtool.data.check import CATEGORIES, check_dataset

    use_dicom_window(dicom_window)
    start = time.perf_counter()
    with progress("check", None) as advance:
        report = check_dataset(
            data_dir,
            images,
            metadata=metadata,
            size=_parse_size(size),
            modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
            decode=decode,
            workers=workers,
            progress=advance,
        )
    rows = [[c, len(report.problems[c]), ", ".join(report.problems[c][:show])] for c in CATEGORIES]
    expected_size = f"{report.size[0]}x{report.size[1]}" if report.size else "-"
    emit_table(
        ["problem", "count", "first names"],
        rows,
        title=f"{report.found} files under {images}, {report.expected} in the metadata; expected size "
        f"{expected_size}, modes {','.join(report.modes)}",
    )
    log(f"checked in {time.perf_counter() - start:.1f} s")
    if not report.ok:
        raise PartialSuccess("some images are missing, extra, unreadable or unexpected (see the table)")


@command("prepare")
def prepare_cmd(
    data_dir: DataDir,
    images: ImagesDir,
    out: Annotated[Path, typer.Option("--out", help="Cache folder to write (or to complete, on a rerun).")],
    size: Annotated[int, typer.Option(help="Side of the resized square copies.")] = 256,
    metadata: MetadataFile = None,
    workers: Annotated[int | None, typer.Option(help="Resizing processes (default: all cores).")] = None,
    dicom_window: DicomWindow = "file",
) -> None:
    """Write resized copies of the dataset's images (same names, lossless PNG) for fast training input.

    Resumable: a rerun skips finished images. Train with `--images CACHE`; the cache records its size, and a run
    that needs larger inputs warns.

    Example:  cxrtool prepare ChestX-ray14/ --images ChestX-ray14/ --size 256 --out cache256
    """
    from cxrtool.data.metadata import locate, read_metadata
    from cxrtool.data.prepare import prepare_cache

    use_dicom_window(dicom_window)
    files = locate(data_dir, metadata=metadata)
    names = read_metadata(files.metadata)["image"].tolist()
    config = {"data_dir": str(data_dir), "images": str(images), "size": size, "metadata": str(files.metadata)}
    config["dicom_window"] = dicom_window
    with progress("prepare", len(names)) as advance:
        report = prepare_cache(names, images, out, size=size, workers=workers, config=config, progress=advance)
    rows = [
        ["written", report.written],
        ["already done", report.skipped],
        ["not under --images", len(report.missing)],
        ["unreadable", len(report.errors)],
    ]
    emit_table(["images", "count"], rows, title=f"cache {out} ({size}x{size})")
    log(f"prepared in {report.seconds:.1f} s")
    if report.errors:
        for error in report.errors[:5]:
            log(error)
        raise PartialSuccess(f"{len(report.errors)} image(s) could not be read and were skipped")
