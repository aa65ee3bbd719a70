"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Seed = Annotated[int, typer.Option("--seed", help="Random seed; recorded in every artifact.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
ImagesDir = Annotated[
    Path,
    typer.Option("--images", help="Folder holding the images in any layout (found by file name).", show_default=False),
]
MetadataFile = Annotated[
    Path | None,
    typer.Option("--metadata", help="Data_Entry_2017*.csv(.gz) to use instead of the one found in DATA_DIR."),
]
DataDir = Annotated[
    Path,
    typer.Argument(help="Dataset folder: metadata and split lists in it or in its metadata/ subfolder."),
]

# ---- training (train-classifier, train-ae, train-joint); their other options come from cxrtool.config ---------
RunOut = Annotated[Path | None, typer.Option("--out", help="Run directory to create.")]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue the run in this directory.")]

# ---- commands that run a model ----------------------------------------------------------------------------------
Workers = Annotated[int | None, typer.Option(help="Data-loading processes [default: min(4, CPUs-1)].", min=0)]
Device = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")]

# ---- every command that reads images ----------------------------------------------------------------------------
DicomWindow = Annotated[
    str,
    typer.Option(
        "--dicom-window",
        help="DICOM grey levels: file (the file's VOI LUT or first window, else minmax), minmax (the image's own "
        "range, padding excluded) or none (the range Bits Stored allows).",
    ),
]


def use_dicom_window(window: str) -> str:
    """Validate `--dicom-window` and set it for this process and its workers (before any dataset or pool is made)."""
    from cxrtool.data.dicom import set_dicom_window

    set_dicom_window(window)
    return window
