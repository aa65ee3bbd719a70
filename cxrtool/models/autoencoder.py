"""The paper's 1,025-parameter convolutional autoencoder (SPEC §1).

    x (1×H×W, [0,1]) ── Conv5×5/4 (1→32) ─ ELU ─ Conv1×1 (32→1) ──► z (1×H/4×W/4)        encoder: 865 parameters
    z ── Conv3×3 (1→16) ─ PixelShuffle(4) ─ ClippedReLU ──► x̂ (1×H×W)                     decoder: 160 parameters

A side that is not a multiple of 4 would not round-trip (130 → 33 → 132), so inputs are edge-padded to a multiple
of 4 and the reconstruction is cropped back.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from cxrtool.config.geometry import LATENT_SCALE as SCALE  # the encoder's reduction per side


class ClippedReLU(nn.Module):
    """min(max(0, x), 1): keeps the reconstruction a valid image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


def make_encoder() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 32, 5, stride=SCALE, padding=2), nn.ELU(alpha=1.0), nn.Conv2d(32, 1, 1))


def make_decoder() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, SCALE * SCALE, 3, padding=1), nn.PixelShuffle(SCALE), ClippedReLU())


def pad_to_multiple(x: torch.Tensor, multiple: int = SCALE) -> torch.Tensor:
    """Edge-pad the bottom and right so both sides are multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


# Weight of the one-pixel backward differences in the box decoder (see box_init_).
EDGE_GAIN = 0.25


def box_init_(encoder: nn.Sequential, decoder: nn.Sequential) -> None:
    """SPEC §2's starting point: a 4×4 box-average encoder and a nearest-neighbour decoder, corrected at the edges,
    with every hidden channel alive.

    Hidden channel 0 of the encoder's first convolution takes the box window (kernel taps 1-4 of 5, as stride 4
    with padding 2 allows) and averages the block around each latent pixel; ELU is the identity on these
    non-negative averages, and the second convolution passes channel 0 through with weight 1. Channels 1-31 keep
    their random (PyTorch default) first-layer weights and biases, and their weights in the second convolution are
    0: at step 0 they add nothing, so the output is exactly the box codec, but ELU(h_c) ≠ 0 gives their output
    weights a gradient at the first step, after which their first-layer weights train too. (Zeroing them as well,
    as cxrtool 0.1 did, leaves them dead for good: weight and gradient are exactly 0, and weight decay keeps them
    there, so the "1,025-parameter nonlinear autoencoder" would train as a linear 5×5 filter.)

    A plain nearest-neighbour decoder would copy each latent value into its 4×4 block. But the zero padding darkens
    the top row and left column of latents by a quarter (one of the four rows averaged is padding), which costs most
    on 128-px training patches: 28.3 dB on the 144 validation patches of the real sample. So the decoder adds a
    quarter of the backward differences, x̂ = z + ¼(z − z↑) + ¼(z − z←): at the top and left edges (z↑ = 0) this
    scales the darkened values back up, inside it is a one-pixel linear extrapolation. 33.1 dB on those patches,
    32.8 dB on whole 1024² images (32.0 for the plain copy), before any training; random init reaches 17 dB after
    3,000 paper-lr steps at small scale.
    """
    conv1, conv2, deconv = (cast(nn.Conv2d, layer) for layer in (encoder[0], encoder[2], decoder[0]))
    bias1, bias2, deconv_bias = (cast(torch.Tensor, conv.bias) for conv in (conv1, conv2, deconv))  # all have one
    with torch.no_grad():
        conv1.weight[0].zero_()
        bias1[0] = 0.0
        conv1.weight[0, 0, 1:5, 1:5] = 1.0 / 16.0
        conv2.weight.zero_()
        bias2.zero_()
        conv2.weight[0, 0] = 1.0
        deconv.weight.zero_()
        deconv_bias.zero_()
        deconv.weight[:, 0, 1, 1] = 1.0 + 2 * EDGE_GAIN  # every sub-pixel: its latent value ...
        deconv.weight[:, 0, 0, 1] = -EDGE_GAIN  # ... minus a share of the one above
        deconv.weight[:, 0, 1, 0] = -EDGE_GAIN  # ... and of the one to the left


def dead_channels(tensors: dict[str, torch.Tensor], prefix: str = "encoder.") -> list[int]:
    """Hidden channels that can never train: first-layer weights, bias and output weight all exactly zero, so the
    channel outputs ELU(0) = 0 and every gradient reaching it is 0 (cxrtool 0.1's box init left 31 such)."""
    w1, b1, w2 = (tensors.get(prefix + name) for name in ("0.weight", "0.bias", "2.weight"))
    if w1 is None or b1 is None or w2 is None:
        return []
    silent = (w1.flatten(1) == 0).all(dim=1) & (b1 == 0) & (w2 == 0).all(dim=0).flatten()
    return [int(c) for c in torch.nonzero(silent).flatten()]


def full_precision(x: torch.Tensor) -> torch.autocast:
    """A context that turns autocast off: the autoencoder always computes in fp32. Its 1,025 parameters cost
    nothing next to DenseNet121, while bf16's 8-bit mantissa (a step of 1/256 near 1) is as coarse as the 8-bit
    pixels whose reconstruction error (~1e-4 MSE) it is trained and validated on."""
    return torch.autocast(x.device.type, enabled=False)


class AutoEncoder(nn.Module):
    """Stage 2's model. Returns {"latent", "x_hat"} in fp32; `clamp_latent` is off here and on in the joint model."""

    def __init__(self, *, init: str = "box", clamp_latent: bool = False) -> None:
        super().__init__()
        self.encoder = make_encoder()
        self.decoder = make_decoder()
        self.clamp_latent = clamp_latent
        if init == "box":
            box_init_(self.encoder, self.decoder)
        elif init != "random":
            raise ValueError(f"init must be 'box' or 'random', not {init!r}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x):
            z = self.encoder(pad_to_multiple(x.float()))
        return z.clamp(0.0, 1.0) if self.clamp_latent else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        with full_precision(z):
            return self.decoder(z.float())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        z = self.encode(x)
        return {"latent": z, "x_hat": self.decode(z)[..., :h, :w]}
