"""`explain` (heatmaps over your radiographs) and `localize` (ChestX-ray14's bounding-box benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrtool.cli.app import command
from cxrtool.cli.eval_cmds import Ckpt
from cxrtool.cli.options import Device, DicomWindow, Overwrite, Seed, use_dicom_window
from cxrtool.cli.output import emit_frame, log, progress
from cxrtool.errors import PartialSuccess

Method = Annotated[
    str,
    typer.Option(
        "--method",
        help="Heatmap method (pytorch-grad-cam's formulas): gradcam, gradcam++, xgradcam, hirescam, layercam or "
        "gradcam-elementwise.",
    ),
]


@command("explain")
def explain_cmd(
    inputs: Annotated[
        list[Path], typer.Argument(help="Image files (PNG, JPEG, DICOM) and/or folders (searched recursively).")
    ],
    ckpt: Ckpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the overlays, heatmaps and explain.csv to.")],
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Comma-separated labels to explain, or 'all' [default: each image's top --top]."),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", help="Without --labels: explain this many most probable labels.", min=1)
    ] = 3,
    method: Method = "gradcam",
    map_size: Annotated[
        int, typer.Option("--map-size", help="Longer side of the maps stored in heatmaps.safetensors.", min=8)
    ] = 256,
    dicom_window: DicomWindow = "file",
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Heatmaps of where the model looked, over each radiograph, in its own pixels (Grad-CAM on DenseNet121's last
    dense block; a joint model's map is computed on the latent and mapped back through the 4× encoder).

    Writes DIR/<image>_<label>.png, DIR/heatmaps.safetensors (float16, each map divided by its maximum),
    DIR/explain.csv (image, label, probability, peak_x, peak_y, overlay) and DIR/config.json; prints explain.csv.

    Example:  cxrtool explain xray1.png scans/ --ckpt runs/aecnn --out heatmaps --labels Effusion,Cardiomegaly
    """
    from cxrtool.explain.explain import explain_files

    use_dicom_window(dicom_window)
    with progress("explain", None) as advance:
        result = explain_files(
            inputs,
            ckpt,
            out,
            labels=labels,
            top=top,
            method=method,
            map_size=map_size,
            device=device,
            overwrite=overwrite,
            progress=advance,
        )
    emit_frame(result.table, title=f"{out}: {result.images} image(s)", digits=4)
    log(f"explained {result.images} image(s) in {result.seconds:.1f} s; files in {out}")
    _partial(result.skipped, out, "image(s) or folder(s) could not be read and were skipped")


@command("localize")
def localize_cmd(
    ckpt: Ckpt,
    bbox: Annotated[Path, typer.Option("--bbox", help="ChestX-ray14's BBox_List_2017.csv (or .csv.gz).")],
    images: Annotated[Path, typer.Option("--images", help="Folder holding the original 1024² images (any layout).")],
    out: Annotated[Path, typer.Option("--out", help="Localization directory to write.")],
    splits: Annotated[
        Path | None, typer.Option("--splits", help="splits.csv: score only boxes of images in --split.")
    ] = None,
    split: Annotated[
        str, typer.Option(help="With --splits: which split's boxes to score (test, val, train).")
    ] = "test",
    map_threshold: Annotated[
        float, typer.Option("--map-threshold", help="Predicted boxes: regions where the map ≥ this × its maximum.")
    ] = 0.5,
    method: Method = "gradcam",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the pointing intervals.", min=1)] = 2000,
    device: Device = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Score a checkpoint's heatmaps against the radiologists' boxes: IoU, IoBB and pointing per box and per label.

    Writes boxes.csv, localization.csv (label, n_boxes, acc_iou_0.1 … acc_iou_0.7, acc_iobb_0.1 … acc_iobb_0.7,
    pointing, pointing_ci_low, pointing_ci_high; then Mean, the unweighted mean over labels), examples.png and
    config.json to --out, and prints the table. Boxes whose image is not under --images are counted, not scored.

    Example:  cxrtool localize --ckpt runs/aecnn --bbox data/BBox_List_2017.csv --images data --out evals/aecnn-loc
    """
    from cxrtool.explain.localize import localize_run

    with progress("localize", None) as advance:
        result = localize_run(
            ckpt,
            bbox,
            images,
            out,
            splits=splits,
            split=split,
            map_threshold=map_threshold,
            method=method,
            n_boot=bootstrap,
            seed=seed,
            device=device,
            overwrite=overwrite,
            progress=advance,
        )
    counts = result.counts
    if counts["missing_image"]:
        shown = ", ".join(result.missing_images[:5]) + (", …" if len(result.missing_images) > 5 else "")
        log(
            f"warning: {counts['missing_image']} box(es) of {len(result.missing_images)} image(s) not under {images} "
            f"were not scored (all named in {out / 'config.json'}): {shown}"
        )
    emit_frame(result.table.set_index("label"), index_name="label", title=f"{out}: {counts['scored']} boxes")
    log(f"scored {counts['scored']} of {counts['listed']} boxes in {result.seconds:.1f} s; files in {out}")
    _partial(result.unreadable, out, f"image(s) could not be read; their {counts['unreadable']} box(es) were skipped")


def _partial(skipped: list[tuple[str, str]], out: Path, what: str) -> None:
    """Exit 3 after the results when something could not be read (it is listed in errors.csv)."""
    if skipped:
        listed = "; ".join(f"{name}: {error}" for name, error in skipped[:5])
        raise PartialSuccess(f"{len(skipped)} {what} (listed in {out / 'errors.csv'}): {listed}")
