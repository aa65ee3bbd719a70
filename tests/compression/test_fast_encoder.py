from pathlib import Path

import pytest
import torch

from cxrtool.compression.fast_encoder import FastEncoder
from cxrtool.data.images import load_gray
from cxrtool.models.autoencoder import AutoEncoder, make_encoder

TOLERANCE = 1e-5  # the bound on max |fast − plain|


def encoder(seed: int, scale: float = 1.0) -> torch.nn.Sequential:
    """Random (trained-like) weights; `scale` 4 makes every pre-activation 4× larger, deep into ELU's negative tail
    and large on the positive side, where float32 rounding differs most."""
    torch.manual_seed(seed)
    enc = AutoEncoder(init="random").encoder.eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.mul_(scale)
    return enc


def max_diff(fast: FastEncoder, enc: torch.nn.Sequential, x: torch.Tensor) -> float:
    with torch.inference_mode():
        return (fast(x) - enc(x)).abs().max().item()


@pytest.mark.parametrize(
    ("shape", "scale"),
    [
        ((3, 1, 32, 32), 1.0),
        ((3, 1, 32, 32), 4.0),
        ((2, 1, 128, 128), 4.0),
        ((2, 1, 36, 4), 4.0),
        ((2, 1, 1024, 768), 1.0),
    ],
)
def test_matches_the_plain_module(shape: tuple[int, ...], scale: float) -> None:
    enc = encoder(seed=0, scale=scale)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    fast = FastEncoder(enc)
    with torch.inference_mode():
        out = fast(x)
    assert out.shape == (shape[0], 1, shape[2] // 4, shape[3] // 4) and out.dtype == torch.float32
    assert max_diff(fast, enc, x) <= TOLERANCE


@pytest.mark.parametrize("slab_pixels", [1, 7, 40, None])
def test_slab_boundaries_and_reused_buffers(slab_pixels: int | None) -> None:
    """Many slabs (one latent row each, ragged last slabs, one slab) and buffers reused across shapes and images:
    the zero taps of the padding must survive what an earlier slab or image wrote."""
    enc = encoder(seed=2)
    fast = FastEncoder(enc, slab_pixels=slab_pixels)
    gen = torch.Generator().manual_seed(3)
    for shape in [(2, 1, 64, 40), (1, 1, 40, 64), (3, 1, 64, 40), (1, 1, 4, 4)]:
        x = torch.randn(shape, generator=gen) + 2.0  # nonzero borders, so a stale tap would show
        assert max_diff(fast, enc, x) <= TOLERANCE


def test_from_tensors_and_non_contiguous_input() -> None:
    enc = encoder(seed=4)
    conv1, conv2 = enc[0], enc[2]
    fast = FastEncoder.from_tensors(conv1.weight, conv1.bias, conv2.weight, conv2.bias)
    x = torch.rand(2, 1, 48, 80).transpose(2, 3)  # (2, 1, 80, 48), not contiguous
    assert max_diff(fast, enc, x) <= TOLERANCE


def test_more_intra_op_threads_encode_whole_images() -> None:
    enc = encoder(seed=5)
    fast = FastEncoder(enc)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert max_diff(fast, enc, torch.rand(2, 1, 256, 128)) <= TOLERANCE
    finally:
        torch.set_num_threads(threads)


def test_rejects_what_it_cannot_encode() -> None:
    fast = FastEncoder(make_encoder())
    with pytest.raises(ValueError, match="multiples of 4"):
        fast(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        fast(torch.rand(1, 32, 32))
    with pytest.raises(ValueError, match="float32"):
        fast(torch.rand(1, 1, 32, 32, dtype=torch.float64))
    wrong = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, stride=4, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(32, 1, 1)
    )
    with pytest.raises(ValueError, match="paper's encoder"):
        FastEncoder(wrong)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_falls_back_to_the_plain_module() -> None:
    enc = encoder(seed=6)
    fast = FastEncoder(enc)
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        assert (fast(x.cuda()).cpu() - enc(x)).abs().max().item() <= 1e-4  # cuDNN sums in its own order


def test_real_radiographs(real_data: Path) -> None:
    """Real radiographs (values in [0, 1], large flat regions) with trained-like and ×4 weights."""
    paths = sorted((real_data / "images").glob("*.png"))[:1]
    if not paths:
        pytest.skip(f"no PNGs in {real_data / 'images'}")
    for scale in (1.0, 4.0):
        enc = encoder(seed=7, scale=scale)
        fast = FastEncoder(enc)
        for path in paths:
            x = torch.from_numpy(load_gray(path))[None, None]
            assert max_diff(fast, enc, x) <= TOLERANCE


def test_uint8_input_is_read_as_x_over_255() -> None:
    enc = encoder(seed=4, scale=4.0)
    pixels = torch.randint(0, 256, (2, 1, 64, 48), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    fast = FastEncoder(enc, slab_pixels=40)
    with torch.inference_mode():
        assert (fast(pixels) - enc(pixels.float() / 255.0)).abs().max().item() <= TOLERANCE
    with pytest.raises(ValueError, match="float32 or uint8"):
        fast(pixels.to(torch.int16))
