"""DenseNet121 with a 14-logit head (stage 1, "D121 BL5"), and how its ImageNet weights are found (SPEC §1).

    x (1×H×W gray, [0,1]) ─ repeat to 3 channels ─ ImageNet normalisation ─ DenseNet121 ─ Linear(1024→14) ─► logits

The repeat and normalisation run inside the model (on the GPU when there is one), so loaders move one channel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from cxrtool.config.geometry import DENSENET_MIN_INPUT as MIN_INPUT  # noqa: F401  (re-exported)
from cxrtool.config.geometry import IMAGENET_MEAN, IMAGENET_STD
from cxrtool.config.geometry import check_densenet_input as check_input_size  # noqa: F401
from cxrtool.errors import InputError

if TYPE_CHECKING:  # torchvision is imported when a model is built
    from torchvision.models import DenseNet

TORCHVISION_FILE = "densenet121-a639ec97.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
# torchvision's own fix for the legacy names in that file (`norm.1` for `norm1`), see torchvision.models.densenet
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class ImageNetInput(nn.Module):
    """Gray [0,1] → 3 ImageNet-normalised channels. Buffers are not saved, so files hold only model tensors."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std


def make_densenet(num_labels: int) -> DenseNet:
    from torchvision.models import densenet121

    return densenet121(weights=None, num_classes=num_labels)


def densenet_logits(densenet: DenseNet, x: torch.Tensor) -> torch.Tensor:
    """torchvision's DenseNet.forward (features → ReLU → global average pool → Linear), with the pooling and the
    head in fp32 even under autocast.

    Under bf16 autocast the head would return bf16 logits: 8 bits of mantissa leave about 600 distinct
    probabilities over 25,596 test images and shift a label's AUC by ~2e-4, so the ranking the AUC measures is
    computed at full precision; the convolutions, where the time goes, stay in mixed precision.
    """
    features = densenet.features(x)
    with torch.autocast(x.device.type, enabled=False):
        pooled = F.adaptive_avg_pool2d(F.relu(features.float()), (1, 1)).flatten(1)
        return densenet.classifier(pooled)


class Classifier(nn.Module):
    """Stage 1's model. Returns {"logits"} (fp32)."""

    def __init__(self, num_labels: int = 14) -> None:
        super().__init__()
        self.to_imagenet = ImageNetInput()
        self.densenet: DenseNet = make_densenet(num_labels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": densenet_logits(self.densenet, self.to_imagenet(x))}


def _fix_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    fixed = {}
    for key, value in state.items():
        match = _LEGACY_KEY.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _imagenet_state(weights: Path | None) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet DenseNet121 weights: a given file, the hub cache, or a download."""
    if weights is not None:
        try:
            return torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises a zoo of types for a bad file
            raise InputError(f"--weights {weights}: not a readable PyTorch state dict ({e})") from None
    from torch.hub import get_dir, load_state_dict_from_url

    cache = Path(get_dir()) / "checkpoints" / TORCHVISION_FILE
    try:
        return load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", progress=False, check_hash=True)
    except Exception as e:  # URLError, socket errors, a partial file: all mean "not available here"
        raise InputError(
            f"cannot load ImageNet weights for DenseNet121 ({type(e).__name__}: {e}). Ways out: copy "
            f"{TORCHVISION_FILE} (from {TORCHVISION_URL}) to {cache}; or pass --weights FILE (that file or a cxrtool "
            "classifier .safetensors); or pass --no-pretrained to start from random weights"
        ) from None


def load_pretrained_(model: nn.Module, weights: Path | None) -> str:
    """Load ImageNet (or a cxrtool checkpoint's) DenseNet weights into `model.densenet` (a classifier or a joint
    model); returns where they came from."""
    densenet: DenseNet = model.densenet
    if weights is not None and Path(weights).suffix == ".safetensors":
        from cxrtool.models.tensor_files import read_tensors

        state = {k[len("densenet.") :]: v for k, v in read_tensors(Path(weights)).items() if k.startswith("densenet.")}
        if not state:
            raise InputError(f"--weights {weights} holds no densenet.* tensors (a classifier or joint checkpoint?)")
        head = densenet.classifier.weight.shape
        if state.get("classifier.weight", torch.empty(0)).shape != head:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing = densenet.load_state_dict(state, strict=False).missing_keys
        if any(not k.startswith("classifier.") for k in missing):
            raise InputError(f"--weights {weights}: DenseNet121 tensors missing, e.g. {missing[0]}")
        return str(weights)
    state = _fix_legacy_keys(_imagenet_state(weights))
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}  # a new 14-label head
    result = densenet.load_state_dict(state, strict=False)
    # The 2017 file predates BatchNorm's num_batches_tracked counters; they are unused with momentum set.
    unexpected = [
        k for k in result.missing_keys if not k.startswith("classifier.") and not k.endswith("num_batches_tracked")
    ] + result.unexpected_keys
    if unexpected:
        raise InputError(f"weights {weights or TORCHVISION_FILE} do not fit DenseNet121: e.g. {unexpected[0]}")
    return str(weights) if weights else f"torchvision ImageNet ({TORCHVISION_FILE})"
