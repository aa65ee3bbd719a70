"""Grad-CAM-family maps for several labels of an image from one forward pass.

    x ─ model (weights frozen) ─ … ─ densenet.features.norm5 ─► N (1×C×h×w) ─ ReLU ─ pool ─ head ─► logits
                                                               │   a leaf: autograd records only what follows it
                for each label j: ∂logit_j/∂N, backpropagated through the head alone (ReLU, pool, linear)
    pytorch-grad-cam's weighting for the method: get_cam_image(A = ReLU(N), ∂logit_j/∂N) ─ ReLU ─► grid_j (h×w)

pytorch-grad-cam runs a forward and a full backward through the network per call, and its targets are one per batch
item, so three labels of one image cost three forwards and three backwards there (about 9 forward passes). Here the
forward runs once with no graph behind the target layer, and each label's gradient stops at that layer: three labels
cost about one forward pass (benchmarks/bench_explain.py). The library still supplies each method's formula (its
`get_cam_image`), so `--method` offers what it implements from one layer's activations and gradients.

The target layer is `norm5`, the BatchNorm that closes DenseNet121's last dense block, pytorch-grad-cam's documented
layer for DenseNet (`model.features[-1]`). The activations weighted are its output rectified, which is exactly what
the head pools: for Grad-CAM the map is then Σ_k α_k·ReLU(N_k), close to the class activation map that ChestX-ray8
scored (Zhou et al. 2016; equal up to α_k counting only the positions where channel k is positive). cxrtool rectifies
explicitly, whatever the model's forward does (pytorch-grad-cam weights the tensor it keeps, which torchvision's own
DenseNet.forward happens to rectify in place on the CPU but not on a GPU). The raw `denseblock4` output would differ by
norm5's per-channel affine map, which adds an image-independent offset to the map before the ReLU and so moves the
thresholded region.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrtool.errors import InputError, RunFailure

# --method → pytorch-grad-cam class: the methods computed from one layer's activations and gradients.
METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "gradcam-elementwise": "GradCAMElementWise",
}
TARGET_LAYER = "densenet.features.norm5"


class LogitsOnly(nn.Module):
    """A cxrtool model (which returns a dict) as the logits tensor pytorch-grad-cam expects of a model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["logits"]


def target_layer(model: nn.Module) -> nn.Module:
    module: Any = model
    for name in TARGET_LAYER.split("."):
        if not hasattr(module, name):
            raise InputError(f"the model has no {TARGET_LAYER} (a DenseNet121 classifier or joint model is needed)")
        module = getattr(module, name)
    return module


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    return method


class CamEngine:
    """Probabilities and per-label grids for one image at a time. Owns the model: its weights are frozen."""

    def __init__(self, model: nn.Module, method: str = "gradcam") -> None:
        import pytorch_grad_cam

        self.net = LogitsOnly(model).eval().requires_grad_(False)
        self.layer = target_layer(model)
        self.method = check_method(method)
        # The library object only lends its weighting formula; its own hooks are removed at once.
        self.weighting = getattr(pytorch_grad_cam, METHODS[method])(model=self.net, target_layers=[self.layer])
        self.weighting.activations_and_grads.release()
        self._activation: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None
        self._handle = self.layer.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        self._activation = leaf
        return leaf.clone()  # torchvision's DenseNet applies ReLU in place to this output; keep the leaf intact

    def close(self) -> None:
        self._handle.remove()

    def forward(self, x: torch.Tensor) -> np.ndarray:
        """x: 1×1×crop×crop. The probability of every label; the graph behind them is kept for `grids`."""
        self._activation = None
        with torch.enable_grad():
            self._logits = self.net(x).float()
        if self._activation is None:
            raise RunFailure(f"the model's forward pass did not run {TARGET_LAYER}; no heatmap can be computed")
        return torch.sigmoid(self._logits[0]).detach().cpu().numpy().astype(np.float64)

    def grids(self, labels: Sequence[int]) -> np.ndarray:
        """(len(labels), h, w) non-negative maps of the last `forward`'s image, one per label index."""
        activation, logits = self._activation, self._logits
        if activation is None or logits is None:
            raise RunFailure("CamEngine.grids called before forward")
        if not labels:
            return np.zeros((0, *activation.shape[-2:]), dtype=np.float32)
        grads = [
            torch.autograd.grad(logits[0, j], activation, retain_graph=i < len(labels) - 1)[0]
            for i, j in enumerate(labels)
        ]
        self._activation = self._logits = None  # the graph is spent
        acts = activation.detach().float().clamp(min=0.0).cpu().numpy()  # what the head pools
        grad = torch.cat(grads).float().cpu().numpy()
        cams = self.weighting.get_cam_image(None, self.layer, None, np.broadcast_to(acts, grad.shape), grad, False)
        return np.maximum(cams, 0.0).astype(np.float32)
