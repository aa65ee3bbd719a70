import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrtool.explain.geometry import Heatmap, fitted_size, image_heatmap, peak


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"), [(7, 7, 224, 224), (7, 7, 1024, 1024), (5, 3, 61, 40)])
def test_render_equals_torch_bilinear_when_the_grid_spans_the_image(h, w, out_h, out_w):
    grid = np.random.default_rng(0).random((h, w)).astype(np.float32)
    heatmap = Heatmap(grid=grid, width=out_w, height=out_h, span_x=out_w, span_y=out_h)
    expected = F.interpolate(
        torch.from_numpy(grid)[None, None], size=(out_h, out_w), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(heatmap.render(), expected[0, 0].numpy(), atol=1e-6)
    # Rendered smaller: the same map sampled at the smaller pixels' centres.
    small = F.interpolate(torch.from_numpy(grid)[None, None], size=(17, 13), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(heatmap.render(13, 17), small[0, 0].numpy(), atol=1e-6)


def test_a_grid_spanning_more_than_the_image_is_cut_not_squeezed():
    """A joint model whose crop is not a multiple of 4: the encoder pads 130 to 132, so the 33-px latent spans
    132/130 of the image; rendering must equal rendering the padded extent and cutting the image's part."""
    grid = np.random.default_rng(1).random((4, 4)).astype(np.float32)
    heatmap = image_heatmap(grid, kind="joint", crop=130, width=650, height=390)
    assert heatmap.span_x == pytest.approx(650 * 132 / 130) and heatmap.span_y == pytest.approx(390 * 132 / 130)
    padded = F.interpolate(torch.from_numpy(grid)[None, None], size=(396, 660), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(heatmap.render(), padded[0, 0, :390, :650].numpy(), atol=1e-6)
    classifier = image_heatmap(grid, kind="classifier", crop=130, width=650, height=390)
    assert (classifier.span_x, classifier.span_y) == (650, 390)


def test_peak_and_fitted_size():
    values = np.zeros((5, 8), dtype=np.float32)
    assert peak(values) is None  # an all-zero map has no peak
    values[3, 6] = 2.0
    values[1, 2] = 2.0  # a tie: the first in row-major order
    assert peak(values) == (2, 1)
    assert fitted_size(1024, 1024, 256) == (256, 256)
    assert fitted_size(3000, 2400, 256) == (256, 205)
    assert fitted_size(100, 80, 256) == (100, 80)  # never enlarged
