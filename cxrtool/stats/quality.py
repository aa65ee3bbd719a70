"""Full-reference image quality on 8-bit values: PSNR and SSIM (Wang et al. 2004), in numpy alone.

Both metrics first round their inputs to 8 bits, as a stored PNG or a decoded codec would be: a float image in [0, 1]
becomes round(x·255) (values outside [0, 1] are clipped first), a uint8 image is taken as it is. So a reconstruction
is scored on what a reader would see on disk, and PSNR here equals the `val_psnr` of training (SPEC §5).
"""

from __future__ import annotations

import math

import numpy as np

from cxrtool.errors import InputError

PEAK = 255.0
# SSIM constants of Wang et al. 2004, §III-C: K1 = 0.01, K2 = 0.03, an 11×11 circular-symmetric Gaussian, σ = 1.5.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
# scipy.ndimage's radius for truncate=3.5 (skimage's choice for gaussian_weights=True): int(3.5·1.5 + 0.5) = 5.
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)
SSIM_WINDOW = 2 * SSIM_RADIUS + 1


def psnr_8bit(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB with peak 255 after rounding both images to 8 bits; `inf` for identical 8-bit images."""
    ref, tst = _pair(reference, test, min_side=1)
    mse = float(np.mean(np.square(ref - tst)))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(PEAK * PEAK / mse)


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM of two single-channel images on 8-bit values (data range 255).

    Matches scikit-image's `structural_similarity(ref, test, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)` on the 8-bit values: local statistics under an 11×11 Gaussian window
    (σ = 1.5, normalised to sum 1, population covariance), averaged over the pixels whose whole window lies inside the
    image. skimage filters with reflect padding and then crops 5 pixels from each side, so padded values never reach
    the mean; filtering only the valid region gives the same number without padding. Both sides must be ≥ 11.
    """
    ref, tst = _pair(reference, test, min_side=SSIM_WINDOW)
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    moments = np.empty((5, *ref.shape), dtype=np.float64)
    moments[0], moments[1] = ref, tst
    np.multiply(ref, ref, out=moments[2])
    np.multiply(tst, tst, out=moments[3])
    np.multiply(ref, tst, out=moments[4])
    mu_x, mu_y, e_xx, e_yy, e_xy = _gaussian_valid(moments, _gaussian_taps(SSIM_SIGMA, SSIM_RADIUS))
    mu_xy = mu_x * mu_y
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    numerator = (2.0 * mu_xy + c1) * (2.0 * (e_xy - mu_xy) + c2)
    denominator = (mu_xx + mu_yy + c1) * ((e_xx - mu_xx) + (e_yy - mu_yy) + c2)
    return float(np.mean(numerator / denominator, dtype=np.float64))


def _gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _gaussian_valid(stack: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a C×H×W stack along W, then H: C×(H−k+1)×(W−k+1) for k taps.

    Each pass runs one `np.convolve` over the flattened, contiguous stack and cuts off the outputs whose window
    straddles two rows (the taps are symmetric, so convolution and correlation agree). On 1024² this is ~3× faster
    than adding eleven shifted copies; a banded matrix product for the H pass would skip the transpose, but
    multi-threaded BLAS slows down badly on a busy machine, and this stays single-threaded and predictable.
    """
    rows = _convolve_last_axis(stack, taps)
    cols = _convolve_last_axis(np.ascontiguousarray(rows.transpose(0, 2, 1)), taps)
    return cols.transpose(0, 2, 1)


def _convolve_last_axis(stack: np.ndarray, taps: np.ndarray) -> np.ndarray:
    channels, height, width = stack.shape
    flat = np.convolve(stack.ravel(), taps, mode="valid")  # flat[i] covers stack.flat[i : i + k]
    # View flat as C×H×W without copying and keep the first W − k + 1 columns; the last one read, flat[N − k], exists.
    step = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat,
        shape=(channels, height, width - taps.size + 1),
        strides=(height * width * step, width * step, step),
        writeable=False,
    )


def _pair(reference: np.ndarray, test: np.ndarray, *, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    ref, tst = np.asarray(reference), np.asarray(test)
    if ref.ndim != 2 or ref.shape != tst.shape:
        raise InputError(
            f"quality metrics need two single-channel images of the same H×W shape, got {ref.shape} and {tst.shape}"
        )
    if min(ref.shape) < min_side:
        raise InputError(f"SSIM needs images of at least {min_side}×{min_side} pixels (its window), got {ref.shape}")
    return _levels(ref), _levels(tst)


def _levels(image: np.ndarray) -> np.ndarray:
    """8-bit levels 0..255 as float64: uint8 as is, floats in [0, 1] as round(clip(x)·255) (half to even)."""
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"quality metrics take uint8 or float images in [0, 1], got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise InputError("quality metrics got an image with NaN or infinite values")
    return np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * PEAK)
