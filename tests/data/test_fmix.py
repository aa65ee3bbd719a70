import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrtool.data.fmix import (
    FMixBatch,
    batch_rng,
    binarise,
    fmix_batch,
    fmix_loss,
    low_freq_image,
    sample_mask,
)
from cxrtool.errors import InputError

SHAPES = [(32, 32), (17, 23), (24, 40), (31, 17), (5, 64), (2, 3)]


def _power(images: list[np.ndarray]) -> np.ndarray:
    """Mean-removed 2-D power spectrum summed over images, indexed by FFT order (ky, kx)."""
    return sum(np.abs(np.fft.fft2(im - im.mean())) ** 2 for im in images)


def _cycles(n: int) -> np.ndarray:
    return np.abs(np.round(np.fft.fftfreq(n) * n))


def _runs_cyclic(row: np.ndarray) -> int:
    """Number of runs of ones in a 0/1 row read as a ring (the last pixel touches the first)."""
    return int(np.sum((row == 1) & (np.roll(row, 1) == 0)))


def _reference_oracle(param: np.ndarray, shape: tuple[int, int], decay: float) -> np.ndarray:
    """ecs-vlc/FMix make_low_freq_image(decay, shape) for ch=1, given its Gaussian draws ``param`` (1, h, W, 2).

    Written step for step as the reference does it (its fftfreqnd, get_spectrum, the ``S[:, 0] + 1j * S[:, 1]``
    line and irfftn over the last len(shape) axes), before its min-max rescaling, which binarisation ignores.
    """
    h, w = shape
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 else np.fft.fftfreq(w)[: w // 2 + 1]
    freqs = np.sqrt(fx * fx + np.fft.fftfreq(h)[:, None] ** 2)
    scale = 1 / np.maximum(freqs, 1 / max(h, w)) ** decay
    spectrum = scale[None, :, :, None] * param
    spectrum = spectrum[:, 0] + 1j * spectrum[:, 1]
    return np.real(np.fft.irfftn(spectrum, shape, axes=(-2, -1)))[0, :h, :w]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_mask_is_binary_with_exactly_round_lam_n_ones(shape, mode):
    rng = np.random.default_rng(0)
    n = shape[0] * shape[1]
    for lam in (0.0, 0.013, 0.25, 0.5, 0.77, 0.999, 1.0):
        mask = sample_mask(rng, lam, shape, mode=mode)
        assert mask.shape == shape and mask.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert mask.sum() == np.floor(lam * n + 0.5)
        assert abs(mask.sum(dtype=np.float64) / n - lam) <= 1 / (2 * n) + 1e-12


def test_ties_go_to_the_earlier_pixel_in_row_major_order():
    assert binarise(np.zeros((3, 4)), 0.5).reshape(-1).tolist() == [1] * 6 + [0] * 6
    image = np.array([[1.0, 2.0, 2.0], [2.0, 0.0, 2.0]])
    assert binarise(image, 3 / 6).tolist() == [[0, 1, 1], [1, 0, 0]]
    # Large enough (64 pixels, 3 levels) that NumPy's default argsort would reorder ties: the 32 ones are the
    # brightest pixels, then the earliest of the level the cut falls in.
    image = np.random.default_rng(4).integers(0, 3, (8, 8)).astype(float)
    chosen = sorted(range(64), key=lambda i: (-image.flat[i], i))[:32]
    expected = np.zeros(64, dtype=np.float32)
    expected[chosen] = 1
    np.testing.assert_array_equal(binarise(image, 0.5), expected.reshape(8, 8))


def test_same_seed_same_mask_and_batch_rng_streams_differ():
    a = sample_mask(batch_rng(3, 1, 7), 0.4, (20, 30))
    b = sample_mask(batch_rng(3, 1, 7), 0.4, (20, 30))
    np.testing.assert_array_equal(a, b)
    for other in [(4, 1, 7), (3, 2, 7), (3, 1, 8)]:
        assert not np.array_equal(a, sample_mask(batch_rng(*other), 0.4, (20, 30))), other
    with pytest.raises(ValueError, match="non-negative"):
        batch_rng(-1, 0, 0)


@pytest.mark.parametrize("shape", [(32, 32), (24, 40), (31, 17)])
def test_paper_masks_are_low_frequency(shape):
    rng = np.random.default_rng(1)
    masks = [sample_mask(rng, 0.5, shape).astype(np.float64) for _ in range(100)]
    power = _power(masks)
    low = (_cycles(shape[0])[:, None] <= 4) & (_cycles(shape[1])[None, :] <= 4)
    assert power[low].sum() / power.sum() > 0.8


def test_paper_masks_vary_alike_along_rows_and_columns():
    rng = np.random.default_rng(2)
    masks = np.stack([sample_mask(rng, 0.5, (32, 32)) for _ in range(300)]).astype(np.float64)
    along_rows = masks.var(axis=2).mean()  # horizontal variation
    along_cols = masks.var(axis=1).mean()  # vertical variation
    assert along_rows > 0.1 and along_cols > 0.1  # of at most 0.25 at λ=0.5
    assert 0.8 < along_rows / along_cols < 1.25
    # More than one horizontal cycle is common: continuous power beyond 1 cycle in x is present, in both axes alike.
    power = _power([low_freq_image(rng, (32, 32)) for _ in range(300)])
    beyond_x = power[:, _cycles(32) >= 2].sum() / power.sum()
    beyond_y = power[_cycles(32) >= 2, :].sum() / power.sum()
    assert beyond_x > 0.005 and 0.7 < beyond_x / beyond_y < 1.4
    assert any(_runs_cyclic(row) >= 2 for mask in masks for row in mask)


def _paper_oracle(draws: np.ndarray, shape: tuple[int, int], decay: float) -> np.ndarray:
    """The paper mode's grey image by the inverse DFT written out as a sum, from its Gaussian draws (h, w//2+1, 2).

    Coefficient (ky, kx) of the half spectrum is (a + ib)/max(|f|, 1/max(h, w))^δ; a real image gets each column
    0 < kx < w/2 twice (it and its conjugate mirror), the self-mirrored columns kx = 0 and kx = w/2 (w even) once,
    which the √2 on their coefficients makes up in power.
    """
    h, w = shape
    ky, kx = np.arange(h)[:, None], np.arange(w // 2 + 1)[None, :]
    f = np.sqrt((np.minimum(ky, h - ky) / h) ** 2 + (kx / w) ** 2)
    self_mirrored = (kx == 0) | (2 * kx == w)
    coeff = (draws[..., 0] + 1j * draws[..., 1]) / np.maximum(f, 1 / max(h, w)) ** decay
    coeff = coeff * np.where(self_mirrored, np.sqrt(2), 1.0) * np.where(self_mirrored, 1.0, 2.0)
    y, x = np.arange(h)[:, None, None, None], np.arange(w)[None, :, None, None]
    return (coeff * np.exp(2j * np.pi * (ky * y / h + kx * x / w))).real.sum(axis=(2, 3)) / (h * w)


@pytest.mark.parametrize("shape", [(32, 32), (17, 23), (24, 40), (6, 9)])
def test_paper_mode_is_the_inverse_dft_of_its_gaussian_coefficients(shape):
    h, w = shape
    ours = low_freq_image(np.random.default_rng(7), shape, decay=2.5, mode="paper")
    draws = np.random.default_rng(7).standard_normal((h, w // 2 + 1, 2))
    np.testing.assert_allclose(ours, _paper_oracle(draws, shape, 2.5), rtol=0, atol=1e-9 * np.abs(ours).max())


def test_batch_rng_is_rank_0_by_default_and_refuses_any_negative_key():
    draws = batch_rng(1, 2, 3).random(4)
    np.testing.assert_array_equal(draws, batch_rng(1, 2, 3, rank=0).random(4))
    assert not np.array_equal(draws, batch_rng(1, 2, 3, rank=1).random(4))
    for key in [(-1, 2, 3, 0), (1, -2, 3, 0), (1, 2, -3, 0), (1, 2, 3, -1)]:  # named by cxrtool, not NumPy's words
        with pytest.raises(ValueError, match=r"batch_rng needs non-negative seed, epoch, step and rank, got \("):
            batch_rng(*key[:3], rank=key[3])


def test_fmix_batch_keeps_the_images_dtype_and_refuses_mismatched_shapes():
    images = torch.rand(4, 1, 8, 8).to(torch.bfloat16)
    assert fmix_batch(images, torch.zeros(4, 14), batch_rng(0, 1, 0)).images.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fmix_batch needs"):
        fmix_batch(torch.rand(4, 1, 8, 8), torch.zeros(3, 14), batch_rng(0, 1, 0))  # one target short
    with pytest.raises(ValueError, match="fmix_batch needs"):
        fmix_batch(torch.rand(4, 8, 8), torch.zeros(4, 14), batch_rng(0, 1, 0))  # no channel axis


@pytest.mark.parametrize("shape", [*SHAPES, (40, 8), (9, 1), (2, 2)])
def test_reference_mode_equals_the_reference_code_given_the_same_draws(shape):
    h, w = shape
    ours = low_freq_image(np.random.default_rng(5), shape, decay=3.0, mode="reference")
    width = len(np.fft.fftfreq(w)[: w // 2 + 1 + w % 2])  # the reference's grid width: w//2+2 for odd w > 1
    param = np.random.default_rng(5).standard_normal((1, h, width, 2))
    np.testing.assert_allclose(ours, _reference_oracle(param, shape, 3.0), rtol=0, atol=1e-12 * np.abs(ours).max())


@pytest.mark.parametrize("shape", [(32, 32), (17, 23), (24, 40), (40, 8)])
def test_reference_mode_holds_at_most_one_horizontal_cycle(shape):
    h, w = shape
    rng = np.random.default_rng(3)
    for _ in range(30):
        image = low_freq_image(rng, shape, mode="reference")
        # Each row is a + b·cos(2πx/w + φ): nothing beyond one cycle per width.
        rows = np.abs(np.fft.rfft(image, axis=1)) ** 2
        assert rows[:, 2:].sum() <= 1e-20 * rows.sum()
        # The vertical axis carries the reference's horizontal-frequency index k < min(w//2+1+w%2, h).
        cols = np.abs(np.fft.fft(image, axis=0)) ** 2
        assert cols[_cycles(h) >= min(w // 2 + 1 + w % 2, h)].sum() <= 1e-20 * cols.sum()
        # So after binarisation each row's ones are one run on the ring (it may wrap around the edge).
        mask = binarise(image, float(rng.uniform()))
        assert all(_runs_cyclic(row) <= 1 for row in mask)
    # Where h <= w it still varies vertically, unlike a mask of vertical stripes. (Where h > w it hardly does: the
    # DC term's amplitude is max(h, w)^δ but vertical index k gets (w/k)^δ, so a 40×8 mask is near-stripes.)
    masks = np.stack([sample_mask(rng, 0.5, shape, mode="reference") for _ in range(100)])
    assert masks.var(axis=1).mean() > (0.1 if h <= w else 0.0)


def test_invalid_options():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="--fmix-mask"):
        sample_mask(rng, 0.5, (8, 8), mode="cutmix")
    with pytest.raises(InputError, match="decay"):
        sample_mask(rng, 0.5, (8, 8), decay=0)
    with pytest.raises(ValueError, match="lam"):
        sample_mask(rng, 1.5, (8, 8))
    with pytest.raises(ValueError, match="shape"):
        sample_mask(rng, 0.5, (1, 8), mode="reference")
    for empty in [(0, 8), (8, 0)]:
        with pytest.raises(ValueError, match="mask shape"):
            low_freq_image(rng, empty)
    assert low_freq_image(rng, (1, 8)).shape == (1, 8)  # one row is a mask in the paper's mode
    assert low_freq_image(rng, (8, 8), decay=0.5).shape == (8, 8)  # any decay power > 0, not only > 1
    with pytest.raises(InputError, match="alpha"):
        fmix_batch(torch.zeros(2, 1, 4, 4), torch.zeros(2, 3), rng, alpha=0)


@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_fmix_batch_mixes_pixels_by_the_mask(mode):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 12, 20, generator=gen)
    targets = (torch.rand(6, 14, generator=gen) > 0.5).float()
    out = fmix_batch(images, targets, batch_rng(0, 2, 5), mode=mode)
    assert isinstance(out, FMixBatch)
    mixed, y, y_perm, lam = out  # unpacks like a tuple

    # The documented draw order: λ, the mask's spectrum, the permutation.
    rng = batch_rng(0, 2, 5)
    beta = rng.beta(1.0, 1.0)
    mask = torch.from_numpy(sample_mask(rng, beta, (12, 20), mode=mode))
    perm = torch.from_numpy(rng.permutation(6))
    assert not torch.equal(perm, torch.arange(6))
    assert lam == mask.sum().item() / 240 == np.floor(beta * 240 + 0.5) / 240
    assert torch.equal(mixed, mask * images + (1 - mask) * images[perm])
    assert torch.equal(mixed[:, :, mask == 1], images[:, :, mask == 1])
    assert torch.equal(mixed[:, :, mask == 0], images[perm][:, :, mask == 0])
    assert torch.equal(y, targets) and torch.equal(y_perm, targets[perm])

    again = fmix_batch(images, targets, batch_rng(0, 2, 5), mode=mode)
    assert torch.equal(again.images, mixed) and again.lam == lam


def test_fmix_loss_is_bce_against_the_mixed_target():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 14, generator=gen) * 3
    y = (torch.rand(8, 14, generator=gen) > 0.7).float()
    y_perm = y[torch.randperm(8, generator=gen)]
    for lam in (0.0, 0.3, 0.5, 0.9, 1.0):
        expected = F.binary_cross_entropy_with_logits(logits, lam * y + (1 - lam) * y_perm)
        assert abs(fmix_loss(logits, y, y_perm, lam).item() - expected.item()) <= 1e-6
    manual = 0.3 * F.binary_cross_entropy_with_logits(logits, y) + 0.7 * F.binary_cross_entropy_with_logits(
        logits, y_perm
    )
    assert torch.equal(fmix_loss(logits, y, y_perm, 0.3), manual)
