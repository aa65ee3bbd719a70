"""The configuration of the commands that run a trained model over images: `evaluate` (from images or from a latent
store) and `predict`. Each option is declared here once; the CLI turns the fields into options
(`cxrtool.cli.config_options.options_from`) and the library takes the dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from cxrtool.config.fields import (
    DEVICE_HELP,
    DICOM_WINDOW_HELP,
    WORKERS_HELP,
    DicomWindow,
    Split,
    Tta,
    TtaAverage,
    check_choices,
    option,
)
from cxrtool.errors import InputError


@dataclass(frozen=True)
class InferenceConfig:
    """How a model runs over images: batches, data-loading processes, device, DICOM grey levels."""

    batch_size: int = option(32, "Images per batch.", min=1)
    workers: int | None = option(None, WORKERS_HELP, min=0)
    device: str = option("auto", DEVICE_HELP)
    dicom_window: DicomWindow = option("file", DICOM_WINDOW_HELP)

    def __post_init__(self) -> None:
        check_choices(self)
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be 0 or more, not {self.workers}")


@dataclass(frozen=True)
class ViewsConfig:
    """Test-time views of each image and how their outputs are averaged (evaluate from images, predict)."""

    tta: Tta = option("none", "Test-time views: none, or tencrop (corners, centre and their mirrors).")
    tta_average: TtaAverage = option("probs", "How ten-crop views are averaged: probs or logits.")

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass(frozen=True)
class EvaluationConfig:
    """What `evaluate` scores: which split (or a seeded subset of it) and the bootstrap behind the intervals."""

    split: Split = option("test", "Which split to evaluate: test, val or train.")
    bootstrap: int = option(2000, "Bootstrap resamples for the 95% intervals.", min=1)
    limit: int | None = option(None, "Evaluate a seeded subset of this many images.", min=1)
    seed: int = option(0, "Random seed (the subset, the bootstrap); recorded in every artifact.")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.bootstrap < 1:
            raise InputError(f"--bootstrap must be at least 1, not {self.bootstrap}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be at least 1, not {self.limit}")
