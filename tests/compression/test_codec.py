"""LatentCodec against plain torch: the model's own encoder and decoder modules, rounding done here by hand."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrtool.compression.codec import load_codec
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model


def _saved(path: Path, kind: str) -> tuple[Path, AutoEncoder]:
    torch.manual_seed(3)
    model = AutoEncoder(init="random").eval()
    with torch.no_grad():  # latents well outside [0, 1] on both sides, so that a missing or extra clamp shows
        model.encoder[2].weight.mul_(8.0)
        model.encoder[2].bias.fill_(0.5)
    save_model(path, model, kind=kind, labels=("A",) if kind == "joint" else (), input_spec={}, config={})
    return path, model


@pytest.mark.parametrize("kind", ["autoencoder", "joint"])
def test_codec_encodes_quantises_and_decodes_as_the_model(tmp_path: Path, kind: str) -> None:
    path, model = _saved(tmp_path / f"{kind}.safetensors", kind)
    codec = load_codec(path)
    assert codec.kind == kind and codec.clamps == (kind == "joint")
    x = torch.rand(1, 1, 36, 44)
    with torch.no_grad():
        plain = model.encoder(x)[0, 0].numpy()
    assert (plain < 0).any() and (plain > 1).any()
    expected = np.clip(plain, 0, 1) if kind == "joint" else plain
    z = codec.encoder()(x)
    assert z.shape == (9, 11)
    np.testing.assert_allclose(z, expected, atol=2e-5)

    stored = codec.quantise(z, LatentFormat("uint8", "none"))
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, np.round(np.clip(z, 0, 1) * 255).astype(np.uint8))
    half = codec.quantise(z, LatentFormat("float16", "none"))
    assert half.dtype == np.float16 and np.array_equal(half, z.astype(np.float16))  # float16 keeps z unclamped

    latent = codec.dequantise(stored)
    np.testing.assert_array_equal(latent, stored.astype(np.float32) / np.float32(255))
    with torch.no_grad():
        x_hat = model.decoder(torch.from_numpy(latent)[None, None])[0, 0, :33, :40].numpy()
    np.testing.assert_allclose(codec.decoder(eight_bit=False)(latent, (33, 40)), x_hat, atol=1e-6)
    eight = codec.decoder()(latent, (33, 40))
    assert eight.dtype == np.uint8 and eight.shape == (33, 40)
    assert np.abs(eight.astype(np.float64) - x_hat * 255).max() <= 0.5 + 1e-4


def test_storer_counts_values_outside_unit_before_storage_clips_them(tmp_path: Path) -> None:
    path, model = _saved(tmp_path / "ae.safetensors", "autoencoder")
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        plain = model.encoder(x)[0, 0].numpy()
    data, shape, outside = load_codec(path).storer(LatentFormat("uint8", "none"))(x)
    assert shape == (8, 8) and len(data) == 64
    assert outside == int(((plain < 0) | (plain > 1)).sum()) > 0
    stored = np.frombuffer(data, np.uint8).reshape(8, 8)
    np.testing.assert_allclose(stored, np.round(np.clip(plain, 0, 1) * 255), atol=1)
    joint, _ = _saved(tmp_path / "joint.safetensors", "joint")
    assert load_codec(joint).storer(LatentFormat("uint8", "none"))(x)[2] == 0  # the model clamped it already
