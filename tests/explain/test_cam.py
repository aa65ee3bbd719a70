"""The heatmap engine against a Grad-CAM written out in plain torch on a real (random-weight) DenseNet121."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrtool.errors import InputError
from cxrtool.explain.cam import METHODS, CamEngine
from cxrtool.models.classifier import Classifier


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = Classifier(14).eval()
    x = torch.rand(1, 1, 64, 64)  # DenseNet121 grid 2×2
    return model, x


def plain_gradcam(model: Classifier, x: torch.Tensor, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Selvaraju et al.'s Grad-CAM on norm5: α_k = mean of ∂logit/∂norm5_k, map = ReLU(Σ_k α_k · ReLU(norm5_k))."""
    net = model.densenet
    norm5 = net.features(model.to_imagenet(x)).detach().requires_grad_(True)
    logits = net.classifier(F.adaptive_avg_pool2d(F.relu(norm5), 1).flatten(1))
    maps = []
    for j in labels:
        (grad,) = torch.autograd.grad(logits[0, j], norm5, retain_graph=True)
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((alpha * F.relu(norm5)).sum(dim=1))[0].detach().numpy())
    return torch.sigmoid(logits[0]).detach().numpy(), np.stack(maps)


def test_gradcam_equals_the_plain_formula_from_one_forward(model_and_input):
    model, x = model_and_input
    with torch.no_grad():
        reference_logits = model(x)["logits"]
    probs, expected = plain_gradcam(model, x, [0, 5, 13])
    engine = CamEngine(model, "gradcam")
    got_probs = engine.forward(x)
    grids = engine.grids([0, 5, 13])
    engine.close()
    np.testing.assert_allclose(got_probs, torch.sigmoid(reference_logits[0]).numpy(), rtol=1e-5)
    np.testing.assert_allclose(got_probs, probs, rtol=1e-5)
    assert grids.shape == (3, 2, 2) and grids.max() > 0
    np.testing.assert_allclose(grids, expected, rtol=1e-4, atol=1e-7 * expected.max())
    assert not np.allclose(grids[0], grids[1])  # one map per label, not one for all
    assert all(not p.requires_grad for p in model.parameters())  # the engine froze the weights it owns


def test_every_method_gives_non_negative_maps(model_and_input):
    model, x = model_and_input
    maps = {}
    for method in METHODS:
        engine = CamEngine(model, method)
        engine.forward(x)
        maps[method] = engine.grids([2, 9])
        engine.close()
        assert maps[method].shape == (2, 2, 2) and (maps[method] >= 0).all()
    assert not np.allclose(maps["gradcam"], maps["gradcam++"])
    with pytest.raises(InputError, match="--method"):
        CamEngine(model, "scorecam")


def test_hook_is_removed_on_close(model_and_input):
    model, _ = model_and_input
    before = len(model.densenet.features.norm5._forward_hooks)
    engine = CamEngine(model)
    assert len(model.densenet.features.norm5._forward_hooks) == before + 1
    engine.close()
    assert len(model.densenet.features.norm5._forward_hooks) == before
