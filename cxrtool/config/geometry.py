"""What a model's input is: the geometry a checkpoint records in `cxrtool.input` (SPEC §5) and every reader uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cxrtool.errors import InputError

LATENT_SCALE = 4  # the encoder's reduction per side (stride 4)
DENSENET_MIN_INPUT = 29  # DenseNet121 halves its input five times; below 29 px nothing is left to pool
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_densenet_input(side: int, *, flag: str, what: str = "crop") -> None:
    if side < DENSENET_MIN_INPUT:
        raise InputError(f"{flag} {side} is too small: DenseNet121 needs a {what} of at least {DENSENET_MIN_INPUT} px")


@dataclass(frozen=True)
class InputGeometry:
    """How images reach a model: resized to `resize` (None: kept at full resolution), cropped (training) or
    resized (evaluation) to `crop`; with `encoder_first`, encoded to a `crop / 4` latent before any classifier.
    Models take one grey channel in [0, 1]; a classifier repeats it to 3 channels and normalises with ImageNet's
    mean and std inside the model."""

    crop: int
    resize: int | None = None
    encoder_first: bool = False
    classifies: bool = True  # False for the autoencoder alone: no classifier, no ImageNet normalisation

    @classmethod
    def classifier(cls, *, resize: int, crop: int) -> InputGeometry:
        return cls(crop=crop, resize=resize)

    @classmethod
    def autoencoder(cls, *, patch: int) -> InputGeometry:
        return cls(crop=patch, resize=None, encoder_first=True, classifies=False)

    @classmethod
    def joint(cls, *, crop: int) -> InputGeometry:
        return cls(crop=crop, resize=crop, encoder_first=True)

    @property
    def latent(self) -> int | None:
        """The latent's side the classifier sees (joint models), else None."""
        return self.crop // LATENT_SCALE if self.encoder_first and self.classifies else None

    def pre_crop(self) -> int:
        """The side an image is resized to before ten crops: the classifier's --resize; for a joint model 8/7 of its
        crop (as 1024 is to 896, the full image the training crops came from)."""
        if self.encoder_first:
            return round(self.crop * 8 / 7)
        return self.resize or self.crop

    def to_json(self) -> dict[str, Any]:
        """`cxrtool.input`: resize, crop, channels, mean, std, encoder_first (and latent for a joint model)."""
        out: dict[str, Any] = {
            "resize": self.resize,
            "crop": self.crop,
            "channels": 1,
            "mean": list(IMAGENET_MEAN) if self.classifies else None,
            "std": list(IMAGENET_STD) if self.classifies else None,
            "encoder_first": self.encoder_first,
        }
        if self.latent is not None:
            out["latent"] = self.latent
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], *, kind: str, where: str = "the checkpoint") -> InputGeometry:
        """Read back what `to_json` wrote for a model of `kind` (or cxrtool 0.1, whose files said 3 channels for the
        classifiers)."""
        try:
            crop = int(data["crop"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{where} records no input crop size (cxrtool.input); was it written by cxrtool?"
            ) from None
        resize = data.get("resize")
        return cls(
            crop=crop,
            resize=int(resize) if resize is not None else None,
            encoder_first=bool(data.get("encoder_first", kind != "classifier")),
            classifies=kind != "autoencoder",
        )
