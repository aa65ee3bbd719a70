"""The model of each kind, by name: `create_model("joint")`. The one place that knows every model class."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cxrtool.errors import InputError
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.classifier import Classifier
from cxrtool.models.joint import JointModel

# kind -> a fresh model (random DenseNet weights; the autoencoder's init is box or random)
MODELS: dict[str, Callable[[int, str], nn.Module]] = {
    "classifier": lambda num_labels, init: Classifier(num_labels),
    "autoencoder": lambda num_labels, init: AutoEncoder(init=init),
    "joint": lambda num_labels, init: JointModel(num_labels),
}


def create_model(kind: str, *, num_labels: int = 14, init: str = "box") -> nn.Module:
    """A fresh model of a kind."""
    if kind not in MODELS:
        raise InputError(f"unknown model kind {kind!r}; expected one of {', '.join(MODELS)}")
    return MODELS[kind](num_labels, init)
