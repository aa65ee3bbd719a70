import gc

import numpy as np
from PIL import Image

from cxrtool.compression.pixel_view import pixels


def test_a_view_of_an_8_bit_image_equals_its_copy_and_outlives_the_image() -> None:
    expected = np.random.default_rng(0).integers(0, 256, (37, 52), dtype=np.uint8)
    img = Image.fromarray(expected.copy(), mode="L")
    img.load()
    view = pixels(img)
    assert view.shape == (37, 52) and view.dtype == np.uint8 and np.array_equal(view, expected)
    if hasattr(img, "__arrow_c_array__"):
        assert not view.flags.owndata  # Pillow's memory, not a copy
    del img
    gc.collect()
    assert np.array_equal(view, expected)  # the view keeps the memory alive


def test_other_images_are_copied() -> None:
    rgb = Image.new("RGB", (4, 3), (10, 20, 30))
    assert np.array_equal(pixels(rgb), np.asarray(rgb))
    big = Image.new("L", (8000, 8000), 7)  # Pillow keeps it in several blocks: no single buffer to view
    out = pixels(big)
    assert out.shape == (8000, 8000) and out.flags.owndata and out[7999, 7999] == 7
