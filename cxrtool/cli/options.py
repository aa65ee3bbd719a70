"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrtool.config.fields import DEVICE_HELP, DICOM_WINDOW_HELP, WORKERS_HELP
from cxrtool.config.fields import DicomWindow as DicomWindowChoice

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
Workers = Annotated[int | None, typer.Option(help=WORKERS_HELP, min=0)]
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]

# ---- every command that reads images ----------------------------------------------------------------------------
DicomWindow = Annotated[DicomWindowChoice, typer.Option("--dicom-window", help=DICOM_WINDOW_HELP)]


def use_dicom_window(window: str) -> str:
    """Validate `--dicom-window` and set it for this process and its workers (before any dataset or pool is made)."""
    from cxrtool.data.dicom import set_dicom_window

    set_dicom_window(window)
    return window
