"""The configuration of `train-classifier`, `train-ae` and `train-joint`: the data, the loop, and each stage's own
options. `config.json` stores them as one flat dict (`TrainConfig.options`), the format of every run so far, and a
resume reads them back (`TrainConfig.from_options`) with the defaults of options a run predates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrtool.config.fields import (
    DEVICE_HELP,
    DICOM_WINDOW_HELP,
    WORKERS_HELP,
    Augment,
    DicomWindow,
    FMixMask,
    Init,
    Keep,
    Kind,
    PatchSource,
    Schedule,
    check_choices,
    flat,
    from_flat,
    option,
    positive,
)
from cxrtool.config.geometry import LATENT_SCALE, InputGeometry, check_densenet_input
from cxrtool.errors import InputError

COMMANDS: dict[str, str] = {"classifier": "train-classifier", "autoencoder": "train-ae", "joint": "train-joint"}
# options a resumed run may change (SPEC §5); every other must match config.json
RESUMABLE = ("epochs", "workers", "device")


def _pretrained() -> Any:
    return option(True, "Start DenseNet121 from torchvision's ImageNet weights (the paper's setting).")


def _weights() -> Any:
    return option(None, "DenseNet121 weights: torchvision's densenet121-a639ec97.pth or a cxrtool file.")


def _keep() -> Any:
    return option("loss", "model.safetensors keeps the best val loss (loss) or the best val AUC (auc).")


@dataclass(frozen=True)
class DataConfig:
    """Which images a run reads."""

    splits: Path | None = option(None, "splits.csv written by `cxrtool split`.")
    images: Path | None = option(None, "Image folder (any layout) or a `prepare` cache.")
    limit_train: int | None = option(None, "Use a seeded subset of this many train images.", min=1)
    limit_val: int | None = option(None, "Use a seeded subset of this many val images.", min=1)
    dicom_window: DicomWindow = option("file", DICOM_WINDOW_HELP)

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("limit_train", "limit_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, not {value}")

    def require(self) -> None:
        """A fresh run needs both (a resume takes them from its config)."""
        for name in ("splits", "images"):
            if getattr(self, name) is None:
                raise InputError(f"--{name} is required")


@dataclass(frozen=True)
class LoopConfig:
    """The training loop: optimiser, schedule, precision, workers, devices (SPEC §1's defaults)."""

    epochs: int = option(20, "Training epochs (may grow on --resume).", min=1)
    batch_size: int = option(16, "Batch size per process.", min=1)
    lr: float = option(1e-4, "Adam learning rate.")
    weight_decay: float = option(1e-5, "Adam weight decay.")
    schedule: Schedule = option(
        "plateau",
        "plateau (ReduceLROnPlateau on the val loss) or step (the authors' stage-3 schedule: ÷10 at the start of "
        "epochs 5, 10 and 15).",
    )
    patience: int = option(5, "Plateau schedule: epochs without a better val loss before the rate drops.", min=0)
    factor: float = option(0.1, "Plateau schedule: the rate is multiplied by this when it drops.")
    workers: int | None = option(None, WORKERS_HELP, min=0)
    seed: int = option(0, "Random seed; recorded in every artifact.")
    device: str = option("auto", DEVICE_HELP)
    amp: bool = option(True, "Mixed precision on CUDA (bf16 where native, else fp16 + GradScaler).")
    compile: bool = option(False, "torch.compile the model (CUDA runs; slow to start).")
    max_steps: int | None = option(
        None, "Stop after this many optimizer steps in all (the partial epoch is validated).", min=0
    )

    def __post_init__(self) -> None:
        check_choices(self)
        positive("lr", self.lr, "a positive number (the paper's: 1e-4)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"--weight-decay {self.weight_decay} is invalid; give a number >= 0")
        if not 0 < self.factor < 1:
            raise InputError(f"--factor {self.factor} is invalid; give a number in (0, 1) (default 0.1)")
        for name, low in (("epochs", 1), ("batch_size", 1), ("patience", 0)):
            if getattr(self, name) < low:
                raise InputError(f"--{name.replace('_', '-')} must be at least {low}, not {getattr(self, name)}")
        for name in ("workers", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"--{name.replace('_', '-')} must be 0 or more, not {value}")


@dataclass(frozen=True)
class ClassifierConfig:
    """Stage 1, "D121 BL5", and the FMix ablation."""

    augment: Augment = option("bl5", "bl5 (the paper's), fmix (the ablation) or none.")
    resize: int = option(256, "Resize side before cropping.")
    crop: int = option(224, "Training crop side; validation resizes to it (at least 29).")
    pretrained: bool = _pretrained()
    weights: Path | None = _weights()
    fmix_alpha: float = option(1.0, "FMix: λ ~ Beta(α, α).")
    fmix_decay: float = option(3.0, "FMix: spectrum decay power δ.")
    fmix_mask: FMixMask = option("paper", "FMix masks: paper (isotropic) or reference (its code's).")
    keep: Keep = _keep()

    def __post_init__(self) -> None:
        check_choices(self)
        check_densenet_input(self.crop, flag="--crop")
        if self.resize < self.crop:
            raise InputError(f"--resize {self.resize} is smaller than --crop {self.crop}")
        positive("fmix_alpha", self.fmix_alpha, "a positive number (the paper's: 1)")
        positive("fmix_decay", self.fmix_decay, "a positive number (the paper's: 3)")

    def geometry(self) -> InputGeometry:
        return InputGeometry.classifier(resize=self.resize, crop=self.crop)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Stage 2: the autoencoder on random full-resolution patches."""

    patch_size: int = option(128, "Side of the random full-resolution patches (multiple of 4).")
    patches_per_image: int = option(16, "Random patches per image per epoch.", min=1)
    init: Init = option("box", "box (a 4x box average to start from) or random (the paper's).")
    patch_source: PatchSource = option("full", "full (full resolution) or downscaled (from 256² images).")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.patch_size < LATENT_SCALE or self.patch_size % LATENT_SCALE:
            raise InputError(f"--patch-size must be a multiple of 4 (the encoder's stride), not {self.patch_size}")
        if self.patches_per_image < 1:
            raise InputError(f"--patches-per-image must be at least 1, not {self.patches_per_image}")

    def geometry(self) -> InputGeometry:
        return InputGeometry.autoencoder(patch=self.patch_size)


@dataclass(frozen=True)
class JointConfig:
    """Stage 3: the joint AECNN from stages 1 and 2."""

    classifier: Path | None = option(None, "Stage-1 run directory or file (its DenseNet121 starts stage 3).")
    autoencoder: Path | None = option(None, "Stage-2 run directory or file (its encoder/decoder start stage 3).")
    crop: int = option(896, "RandomCrop side of the full image (latent = crop/4, at least 116).")
    lam: float = option(0.9, "λ: loss = λ·BCE + (1−λ)·MSE.", min=0.0, max=1.0)
    keep: Keep = _keep()
    pretrained: bool = _pretrained()
    weights: Path | None = _weights()

    def __post_init__(self) -> None:
        check_choices(self)
        if self.crop % LATENT_SCALE:
            raise InputError(f"--crop must be a multiple of 4 (the encoder's stride), not {self.crop}")
        if self.crop // LATENT_SCALE < 29:
            raise InputError(
                f"--crop {self.crop} gives a {self.crop // LATENT_SCALE}-px latent; DenseNet121 needs a crop of at "
                "least 116"
            )
        if not 0 <= self.lam <= 1:
            raise InputError(f"--lam {self.lam} is invalid; give a number in [0, 1] (the paper's: 0.9)")

    def geometry(self) -> InputGeometry:
        return InputGeometry.joint(crop=self.crop)


StageConfig = ClassifierConfig | AutoencoderConfig | JointConfig
STAGES: dict[str, type] = {"classifier": ClassifierConfig, "autoencoder": AutoencoderConfig, "joint": JointConfig}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run is made of."""

    kind: Kind
    data: DataConfig
    loop: LoopConfig
    stage: StageConfig

    def __post_init__(self) -> None:
        if not isinstance(self.stage, STAGES[self.kind]):
            raise TypeError(f"a {self.kind} run takes a {STAGES[self.kind].__name__}")

    @property
    def keep(self) -> str:
        return getattr(self.stage, "keep", "loss")

    def options(self) -> dict[str, Any]:
        """The flat dict config.json and checkpoints record (every option by its name; paths as strings)."""
        return {**flat(self.data), **flat(self.stage), **flat(self.loop)}

    @classmethod
    def from_options(cls, kind: str, options: dict[str, Any]) -> TrainConfig:
        if kind not in STAGES:
            raise InputError(f"unknown run kind {kind!r}; expected one of {', '.join(STAGES)}")
        return cls(
            kind,  # type: ignore[arg-type]
            from_flat(DataConfig, options),
            from_flat(LoopConfig, options),
            from_flat(STAGES[kind], options),
        )
