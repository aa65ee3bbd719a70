"""FMix: mixed-sample augmentation with binary masks cut from low-frequency noise (Harris et al., arXiv:2002.12047).

SPEC §1, FMix ablation: α=1, decay power δ=3, one mask and one λ~Beta(α, α) per batch, a random permutation of the
batch as partner, loss ``λ·BCE(ŷ, y) + (1−λ)·BCE(ŷ, y[perm])``::

    rng ──► λ ~ Beta(α, α) ──► low-frequency image (h, w) ──► top round(λ·N) pixels = 1 ──► mask
    rng ──► perm                                                                            │
    images ─────────────────────► mask·x + (1 − mask)·x[perm] ◄─────────────────────────────┘

Mask generation is numpy with an explicit ``np.random.Generator`` so that a batch's mask depends only on
``batch_rng(seed, epoch, step)``, never on global random state (the reference code uses ``np.random`` and
``random``). Two mask modes:

* ``"paper"`` (default): an isotropic low-frequency mask as the paper describes it.
* ``"reference"``: the masks of github.com/ecs-vlc/FMix ``fmix.py``, whose ``make_low_freq_image`` indexes a
  frequency axis instead of the real/imaginary axis. Its masks hold at most one horizontal cycle
  (see ``_reference_half_spectrum``).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F

from cxrtool.errors import InputError

MaskMode = Literal["paper", "reference"]
MASK_MODES: tuple[str, ...] = get_args(MaskMode)
# Fourth word of the seed sequence, so that FMix's stream never coincides with another (seed, epoch, step) stream.
_FMIX_RNG_TAG = 0x464D4958  # "FMIX" in ASCII


def batch_rng(seed: int, epoch: int, step: int, *, rank: int = 0) -> np.random.Generator:
    """The generator for one training batch's FMix draws: reproducible per (seed, epoch, step, rank), resume-safe.
    The rank is part of the key so that the processes of a multi-GPU run draw different masks, λs and partners."""
    if min(seed, epoch, step, rank) < 0:
        raise ValueError(f"batch_rng needs non-negative seed, epoch, step and rank, got {(seed, epoch, step, rank)}")
    return np.random.default_rng([seed, epoch, step, _FMIX_RNG_TAG, rank])


def _check_options(decay: float, mode: str) -> None:
    if mode not in MASK_MODES:
        raise InputError(f"unknown FMix mask mode {mode!r}: use one of {', '.join(MASK_MODES)} (--fmix-mask)")
    if not decay > 0:
        raise InputError(f"FMix decay power must be > 0, got {decay}: the paper uses 3")


def _amplitude(freqs: np.ndarray, decay: float, h: int, w: int) -> np.ndarray:
    # 1 / max(f, 1/max(h, w))^δ: the floor keeps the DC term finite and equal to the lowest non-zero frequency's.
    return 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay


def _paper_half_spectrum(rng: np.random.Generator, h: int, w: int, decay: float) -> np.ndarray:
    """The (h, w//2+1) half spectrum of a real image: Gaussian complex coefficients with 1/f^δ amplitude."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amplitude = _amplitude(np.sqrt(fx**2 + fy**2), decay, h, w)
    param = rng.standard_normal((h, w // 2 + 1, 2))
    half = amplitude * (param[..., 0] + 1j * param[..., 1])
    # irfft2 counts each column 0 < kx < w/2 twice (it and its mirror -kx) but the self-mirrored columns kx = 0 and
    # kx = w/2 (w even) once, symmetrising them with their -ky partner, which halves their power. Without this
    # √2 the mask's purely vertical modes (kx = 0) would be half as strong as the horizontal ones and a square
    # mask would vary more along rows than along columns; with it the image has the statistics of
    # Re(ifft2(complex Gaussian · 1/f^δ)) over the full grid: isotropic.
    half[:, 0] *= math.sqrt(2)
    if w % 2 == 0:
        half[:, w // 2] *= math.sqrt(2)
    return half


def _reference_half_spectrum(rng: np.random.Generator, h: int, w: int, decay: float) -> np.ndarray:
    """The half spectrum that ecs-vlc/FMix's ``make_low_freq_image`` actually transforms, laid out explicitly.

    The reference builds ``S = amplitude[..., None] * randn(1, h, W, 2)`` over its frequency grid of shape (h, W),
    W = w//2+1 for even w and w//2+2 for odd w > 1 (its ``fftfreqnd`` keeps ``fftfreq(w)[:w//2+2]``, one negative
    frequency too many; W = 1 for w = 1). It means to join the last axis (real, imaginary) into complex numbers but
    writes ``S[:, 0] + 1j * S[:, 1]``, which indexes axis 1, the *vertical* frequency axis: the result is the
    (1, W, 2) array ``C[k, j] = S[fy=0, k, j] + 1j·S[fy=1/h, k, j]`` (rows fy = 0 and fy = 1/h of the grid; the
    other h−2 rows of draws are unused), and ``irfftn(C, (h, w))`` transforms C's last two axes (NumPy's default
    for ``s`` without ``axes``, deprecated in NumPy 2):

    * the axis of length W (horizontal frequency index k) becomes the output's *vertical* axis, cut or zero-padded
      to h: vertical frequencies of 0 .. min(W, h)−1 cycles per height, positive ones only (the real output gets
      their mirrors through the horizontal Hermitian symmetry), the real part weighted by the amplitude at
      (fy=0, fx=k/w) and the imaginary part by the one at (fy=1/h, fx=k/w);
    * the axis of length 2 (real/imaginary index j) becomes the output's *horizontal* half spectrum, zero-padded
      to w//2+1: only j = 0 (DC) and j = 1 (one cycle per width) are non-zero.

    So every row y of the reference's low-frequency image is ``a_y + b_y·cos(2πx/w + φ_y)``: at most one
    horizontal cycle, exactly (power at ≥ 2 cycles per width is rounding noise). After binarisation each row's
    ones form one run that is contiguous on the ring (it may wrap around the left/right edge), or the row is all
    0 or all 1. Where h > w the masks are nearly vertical stripes: the DC amplitude is max(h, w)^δ while vertical
    index k gets (w/k)^δ. We draw the full (h, W, 2) Gaussian as the reference does, so the same normal draws give
    the reference's image bit for bit (tests/data/test_fmix.py checks this against a step-by-step transcription).
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1 + w % 2][None, :]
    amplitude = _amplitude(np.sqrt(fx**2 + fy**2), decay, h, w)
    spectrum = amplitude[..., None] * rng.standard_normal((h, fx.shape[1], 2))
    wrong = spectrum[0] + 1j * spectrum[1]  # (W, 2): rows = horizontal frequency k, columns = real/imag index j
    half = np.zeros((h, w // 2 + 1), dtype=complex)
    rows, cols = min(wrong.shape[0], h), min(2, w // 2 + 1)
    half[:rows, :cols] = wrong[:rows, :cols]
    return half


def low_freq_image(
    rng: np.random.Generator, shape: tuple[int, int], *, decay: float = 3.0, mode: MaskMode = "paper"
) -> np.ndarray:
    """A real (h, w) float64 image of random low-frequency noise: the grey mask before binarisation."""
    _check_options(decay, mode)
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1 or (mode == "reference" and h < 2):
        raise ValueError(f"mask shape must be at least (1, 1), and (2, 1) for mode='reference'; got {shape}")
    half = (_paper_half_spectrum if mode == "paper" else _reference_half_spectrum)(rng, h, w, decay)
    return np.fft.irfft2(half, s=(h, w))


def binarise(image: np.ndarray, lam: float) -> np.ndarray:
    """A float32 0/1 mask with ones at the round(λ·N) largest pixels of ``image`` (N = image.size).

    round is half-up, so the mask's mean is exactly round(λ·N)/N, within 1/(2N) of λ (the reference picks floor
    or ceil at random). Ties are broken by a stable argsort of −image: among equal values the earlier pixel in
    row-major order becomes 1, so the mask is a deterministic function of the image.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    flat = image.reshape(-1)
    ones = math.floor(lam * flat.size + 0.5)
    mask = np.zeros(flat.size, dtype=np.float32)
    mask[np.argsort(-flat, kind="stable")[:ones]] = 1.0
    return mask.reshape(image.shape)


def sample_mask(
    rng: np.random.Generator,
    lam: float,
    shape: tuple[int, int],
    *,
    decay: float = 3.0,
    mode: MaskMode = "paper",
) -> np.ndarray:
    """A float32 (h, w) FMix mask with exactly round(λ·h·w) ones, from the draws of ``rng``."""
    return binarise(low_freq_image(rng, shape, decay=decay, mode=mode), lam)


class FMixBatch(NamedTuple):
    """One mixed batch. A tuple so the loop can write ``x, y, y_perm, lam = fmix_batch(...)``."""

    images: torch.Tensor  # mask·x + (1 − mask)·x[perm]
    targets: torch.Tensor  # y, unchanged
    targets_perm: torch.Tensor  # y[perm]
    lam: float  # the mask's real mean, round(λ·N)/N: the share of each image that comes from its own sample


def fmix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    rng: np.random.Generator,
    *,
    alpha: float = 1.0,
    decay: float = 3.0,
    mode: MaskMode = "paper",
) -> FMixBatch:
    """Mix a (B, C, H, W) batch with one FMix mask and a random permutation of the batch as partner.

    Draw order from ``rng`` (part of the reproducibility contract): λ ~ Beta(α, α), the mask's Gaussian
    spectrum, then the permutation. The λ returned is the mask's exact mean, not the Beta draw: binarisation
    rounds λ·N to whole pixels, and the loss weight should be the share of pixels actually taken from each sample.
    """
    if images.ndim != 4 or targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"fmix_batch needs images (B, C, H, W) and targets (B, ...), got {tuple(images.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if not alpha > 0:
        raise InputError(f"FMix alpha must be > 0, got {alpha}: the paper uses 1")
    h, w = images.shape[-2:]
    lam = float(rng.beta(alpha, alpha))
    mask_np = sample_mask(rng, lam, (h, w), decay=decay, mode=mode)
    perm = torch.from_numpy(rng.permutation(images.shape[0])).to(images.device)
    mask = torch.from_numpy(mask_np).to(device=images.device, dtype=images.dtype)
    mixed = mask * images + (1 - mask) * images[perm]
    return FMixBatch(mixed, targets, targets[perm], np.count_nonzero(mask_np) / (h * w))


def fmix_loss(logits: torch.Tensor, targets: torch.Tensor, targets_perm: torch.Tensor, lam: float) -> torch.Tensor:
    """``λ·BCE(ŷ, y) + (1−λ)·BCE(ŷ, y[perm])``, BCE with logits and mean reduction.

    BCE with logits is linear in the target, so this equals BCE against the soft target ``λ·y + (1−λ)·y[perm]``.
    """
    own = F.binary_cross_entropy_with_logits(logits, targets)
    partner = F.binary_cross_entropy_with_logits(logits, targets_perm)
    return lam * own + (1 - lam) * partner
