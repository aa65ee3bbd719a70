"""Test doubles for the heatmap geometry: models whose logit for a label is the mean intensity inside a known box.

They satisfy what `explain` and `localize` rely on: a forward returning {"logits"} (and a joint model's latent),
and `model.densenet.features.norm5`, the target layer. Their "DenseNet" keeps its input's resolution (no pooling),
so its grid is the DenseNet input itself: a classifier's resized image, or a joint model's 4× box-average latent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cxrtool.data.labels import LABELS
from cxrtool.evaluation.inference import Predictor
from cxrtool.models.checkpoint_info import CheckpointInfo


class MaskedFeatures(nn.Module):
    """Channel j is the input's first channel inside label j's mask; `norm5` (the target layer) passes it on."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("masks", masks)
        self.norm5 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm5(x[:, :1] * self.masks[None])


class BoxNet(nn.Module):
    """Stands in for torchvision's DenseNet121: logit j = mean of the input over label j's mask."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.features = MaskedFeatures(masks)
        self.classifier = nn.Linear(len(masks), len(masks))
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(len(masks)))
            self.classifier.bias.zero_()
        self.last_input: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_input = x.detach()
        area = self.features.masks.sum(dim=(1, 2)).clamp(min=1.0)
        return self.classifier(F.relu(self.features(x)).sum(dim=(2, 3)) / area)


class FakeClassifier(nn.Module):
    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.densenet = BoxNet(masks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.densenet(x)}


class FakeJoint(nn.Module):
    """Encodes with a 4×4 box average (crop/4 latent), classifies the latent."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.densenet = BoxNet(masks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = F.avg_pool2d(x, 4)
        return {"latent": z, "x_hat": F.interpolate(z, scale_factor=4), "logits": self.densenet(z)}


def cell_mask(box: tuple[float, ...], *, width: int, height: int, crop: int, scale: int) -> torch.Tensor:
    """The DenseNet-input pixels lying wholly inside an original-pixel box (x, y, w, h): pixel (r, c) of the
    (crop/scale)² input covers original x in [c·sx, (c+1)·sx) with sx = width·scale/crop."""
    n = crop // scale
    sx, sy = width * scale / crop, height * scale / crop
    edges_x, edges_y = np.arange(n) * sx, np.arange(n) * sy
    x, y, w, h = box
    cols = (edges_x >= x) & (edges_x + sx <= x + w)
    rows = (edges_y >= y) & (edges_y + sy <= y + h)
    return torch.from_numpy((rows[:, None] & cols[None, :]).astype(np.float32))


MakePredictor = Callable[..., Predictor]


@pytest.fixture
def box_predictor() -> MakePredictor:
    """box_predictor(kind, crop, width, height, boxes={label: box}): a fake whose label j looks only inside its box;
    every other label's mask is empty except `decoy`'s, which covers everything outside the first box."""

    def make(
        kind: str, crop: int, width: int, height: int, boxes: dict[str, tuple[float, ...]], decoy: str
    ) -> Predictor:
        scale = 4 if kind == "joint" else 1
        n = crop // scale
        masks = torch.zeros(len(LABELS), n, n)
        for label, box in boxes.items():
            masks[LABELS.index(label)] = cell_mask(box, width=width, height=height, crop=crop, scale=scale)
        first = masks[LABELS.index(next(iter(boxes)))]
        assert first.sum() > 0, "the box is smaller than one cell: use a larger crop"
        masks[LABELS.index(decoy)] = 1.0 - first
        model = (FakeJoint if kind == "joint" else FakeClassifier)(masks).eval()
        info = CheckpointInfo(path=Path("fake"), kind=kind, labels=LABELS, input={"crop": crop}, version="test")
        return Predictor(model, info, torch.device("cpu"))

    return make
