"""One image's probabilities and heatmaps, fed to the model exactly as `evaluate` feeds it (SPEC §1, Evaluation):
the single-channel image resized to the checkpoint's crop size; a joint model encodes that and classifies the latent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cxrtool.data.transforms import classifier_eval
from cxrtool.evaluation.inference import Predictor
from cxrtool.explain.cam import CamEngine
from cxrtool.explain.geometry import Heatmap, image_heatmap


@dataclass(frozen=True)
class ImageMaps:
    probs: np.ndarray  # (labels,) every label's probability
    heatmaps: dict[int, Heatmap]  # label index -> its map on the original image


class Explainer:
    """Heatmaps in original-image pixels for a classifier or joint checkpoint."""

    def __init__(self, predictor: Predictor, method: str = "gradcam") -> None:
        self.predictor = predictor
        self.engine = CamEngine(predictor.model, method)
        self.transform = classifier_eval(crop=predictor.crop)
        self._generator = torch.Generator()  # the evaluation transform draws nothing; its signature wants one

    @property
    def labels(self) -> tuple[str, ...]:
        return self.predictor.info.labels

    def __call__(self, img: Image.Image, labels: Sequence[int] | None = None, *, top: int = 3) -> ImageMaps:
        """Maps for the label indices given, or for the `top` most probable labels (most probable first)."""
        x = self.transform(img, self._generator)[None].to(self.predictor.device)
        probs = self.engine.forward(x)
        chosen = list(labels) if labels is not None else [int(j) for j in np.argsort(-probs, kind="stable")[:top]]
        grids = self.engine.grids(chosen)
        width, height = img.size
        kind, crop = self.predictor.info.kind, self.predictor.crop
        maps = {j: image_heatmap(g, kind=kind, crop=crop, width=width, height=height) for j, g in zip(chosen, grids)}
        return ImageMaps(probs=probs, heatmaps=maps)

    def close(self) -> None:
        self.engine.close()
