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

# ---- training (train-classifier, train-ae, train-joint) ---------------------------------------------------------
Splits = Annotated[Path | None, typer.Option("--splits", help="splits.csv written by `cxrtool split`.")]
Images = Annotated[Path | None, typer.Option("--images", help="Image folder (any layout) or a `prepare` cache.")]
RunOut = Annotated[Path | None, typer.Option("--out", help="Run directory to create.")]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue the run in this directory.")]
Epochs = Annotated[int, typer.Option(help="Training epochs (may grow on --resume).", min=1)]
BatchSize = Annotated[int, typer.Option(help="Batch size per process.", min=1)]
Lr = Annotated[float, typer.Option("--lr", help="Adam learning rate.")]
WeightDecay = Annotated[float, typer.Option(help="Adam weight decay.")]
Patience = Annotated[
    int, typer.Option(help="Plateau schedule: epochs without a better val loss before the rate drops.", min=0)
]
Factor = Annotated[float, typer.Option(help="Plateau schedule: the rate is multiplied by this when it drops.")]
Keep = Annotated[str, typer.Option(help="model.safetensors keeps the best val loss (loss) or the best val AUC (auc).")]
Workers = Annotated[int | None, typer.Option(help=WORKERS_HELP, min=0)]
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
Amp = Annotated[bool, typer.Option(help="Mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler).")]
Compile = Annotated[bool, typer.Option(help="torch.compile the model (CUDA runs; slow to start).")]
MaxSteps = Annotated[
    int | None, typer.Option(help="Stop after this many optimizer steps in all (the partial epoch is validated).")
]
LimitTrain = Annotated[int | None, typer.Option(help="Use a seeded subset of this many train images.", min=1)]
LimitVal = Annotated[int | None, typer.Option(help="Use a seeded subset of this many val images.", min=1)]
Pretrained = Annotated[
    bool, typer.Option(help="Start DenseNet121 from torchvision's ImageNet weights (the paper's setting).")
]
Weights = Annotated[
    Path | None, typer.Option(help="DenseNet121 weights: torchvision's densenet121-a639ec97.pth or a cxrtool file.")
]

# ---- every command that reads images ----------------------------------------------------------------------------
DicomWindow = Annotated[DicomWindowChoice, typer.Option("--dicom-window", help=DICOM_WINDOW_HELP)]


def use_dicom_window(window: str) -> str:
    """Validate `--dicom-window` and set it for this process and its workers (before any dataset or pool is made)."""
    from cxrtool.data.dicom import set_dicom_window

    set_dicom_window(window)
    return window
