import itertools
import math

import numpy as np
import pytest

from cxrtool.errors import InputError
from cxrtool.stats.quality import psnr_8bit, ssim


def phantom(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Integer-only test image (no RNG, no transcendental functions), so it is identical on every platform."""
    i, j = np.mgrid[0:height, 0:width].astype(np.int64)
    image = (i * 160) // height + (j * 64) // width + 16
    image += 40 * (((i - height // 2) ** 2 + (j - width // 3) ** 2) < (min(height, width) // 4) ** 2)
    image -= 30 * ((i > height // 5) & (i < height // 3) & (j > width // 2))
    image += ((i * 73856093) ^ (j * 19349663) ^ (seed * 83492791)) % 17 - 8
    return np.clip(image, 0, 255).astype(np.uint8)


def degraded(image: np.ndarray, seed: int = 1, amplitude: int = 24) -> np.ndarray:
    i, j = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.int64)
    noise = ((i * 2654435761) ^ (j * 40503) ^ (seed * 97)) % (2 * amplitude + 1) - amplitude
    return np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def blurred(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image.astype(np.int64), 1, mode="edge")
    h, w = image.shape
    total = sum(padded[di : di + h, dj : dj + w] for di in range(3) for dj in range(3))
    return ((total + 4) // 9).astype(np.uint8)


def test_psnr_matches_a_hand_computation():
    reference = np.array([[0, 10], [20, 30]], dtype=np.uint8)
    test = np.array([[0, 12], [20, 27]], dtype=np.uint8)
    mse = (0 + 2**2 + 0 + 3**2) / 4  # 3.25
    assert psnr_8bit(reference, test) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)  # 43.0116 dB


def test_psnr_rounds_floats_to_8_bit_first():
    reference = np.array([[0, 10], [20, 30]], dtype=np.uint8)
    # 12.4 → 12, 26.6 → 27, and 1.2 clips to 1.0 → 255 (vs 30: error 225)
    test = np.array([[0.1, 12.4], [20.0, 26.6]]) / 255.0
    assert psnr_8bit(reference, test) == pytest.approx(10 * math.log10(255**2 / ((4 + 9) / 4)))
    clipped = np.array([[0.0, 10.0], [20.0, 1.2 * 255]]) / 255.0
    assert psnr_8bit(reference, clipped) == pytest.approx(10 * math.log10(255**2 / (225**2 / 4)))


def test_psnr_of_identical_8_bit_images_is_infinite():
    image = phantom(16, 16)
    assert psnr_8bit(image, image) == math.inf
    assert psnr_8bit(image, (image + 0.3) / 255.0) == math.inf  # equal after rounding


# structural_similarity(a.astype(float64), b.astype(float64), gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=255) with scikit-image 0.26.0, numpy 2.4.6, scipy 1.17.1,
# on the images built by the helpers above (copied verbatim into a separate virtual environment).
SKIMAGE_SSIM = [
    ("noisy", 0.48142984935277006),
    ("blurred", 0.8079358904757151),
    ("other_noise", 0.7163127806034084),
    ("tiny", 0.8975223577150145),
]


def _reference_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    image = phantom(64, 96)
    return {
        "noisy": (image, degraded(image)),
        "blurred": (image, blurred(image)),
        "other_noise": (image, phantom(64, 96, seed=5)),
        "tiny": (phantom(11, 13), degraded(phantom(11, 13), seed=3)),
    }[name]


@pytest.mark.parametrize(("name", "expected"), SKIMAGE_SSIM)
def test_ssim_matches_scikit_image(name, expected):
    a, b = _reference_pair(name)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert ssim(a / 255.0, b / 255.0) == pytest.approx(expected, abs=1e-9)  # floats are rounded to the same levels


def test_ssim_of_an_image_with_itself_is_one_and_it_is_symmetric():
    a = phantom(40, 52)
    b = blurred(a)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-15)


def test_ssim_falls_as_noise_grows():
    a = phantom(48, 64)
    scores = [ssim(a, degraded(a, amplitude=amplitude)) for amplitude in (2, 8, 24, 64)]
    assert all(x > y for x, y in itertools.pairwise(scores))
    assert 0.0 < scores[-1] < scores[0] < 1.0


def test_quality_metrics_refuse_mismatched_or_unusable_inputs():
    with pytest.raises(InputError, match="same H×W"):
        psnr_8bit(phantom(16, 16), phantom(16, 17))
    with pytest.raises(InputError, match="at least 11×11"):
        ssim(phantom(10, 40), phantom(10, 40))
    with pytest.raises(InputError, match="dtype int16"):
        psnr_8bit(phantom(16, 16).astype(np.int16), phantom(16, 16))
    with pytest.raises(InputError, match="NaN"):
        ssim(np.full((16, 16), np.nan), np.zeros((16, 16)))
