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
