"""The latent codec of a stage-2 (autoencoder) or stage-3 (joint) checkpoint: the one object that turns pixels into
stored latent values and back, used by `compress`, `decompress`, `codec-report` and (through the store's format)
`evaluate --latents`.

    x (1×1×H×W in [0, 1], H and W multiples of 4) ── encode: FastEncoder, clamped to [0, 1] when the model clamps
    (a joint checkpoint) ── z (float32) ── quantise(z, format): uint8 round(clamp(z, 0, 1)·255) | float16 z
    ── stored values ── dequantise: uint8 v/255 | float16 → float32 ── decode: decoder ── x̂, cropped to H×W

Quantising and dequantising are the store's LatentFormat's (one definition for every command); the clamp is the
model's: a stage-2 latent is clipped only by uint8 storage and counted (`outside`), a joint model's latent is
clamped by the model itself, so what it classified and what is stored are the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrtool.compression.fast_encoder import FastEncoder
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.models.autoencoder import make_decoder, make_encoder
from cxrtool.models.checkpoints import encoder_identity, load_parts, read_info

StoredLatent = tuple[bytes, tuple[int, int], int]  # the tensor's bytes as stored, the latent's H×W, values outside


@dataclass
class LatentCodec:
    """The encoder and decoder of a checkpoint, with its clamp, and the quantisation of each `--dtype`."""

    path: Path
    kind: str  # "autoencoder" or "joint"
    identity: str  # encoder_identity of the tensors: what a store records and checks
    tensors: dict[str, torch.Tensor]
    input: dict[str, Any] = field(default_factory=dict)

    @property
    def clamps(self) -> bool:
        """Whether the model clamps its latent to [0, 1] (the joint model does; stage 2 does not)."""
        return self.kind == "joint"

    def module(self, part: str) -> nn.Sequential:
        """A fresh "encoder" or "decoder" module holding the checkpoint's weights, in eval mode, frozen."""
        module = make_encoder() if part == "encoder" else make_decoder()
        n = len(part) + 1
        module.load_state_dict({k[n:]: v for k, v in self.tensors.items() if k.startswith(part + ".")})
        return module.eval().requires_grad_(False)

    def encoder(self) -> Callable[[torch.Tensor], np.ndarray]:
        """x (1×1×H×W, sides multiples of 4) → the float32 H/4×W/4 latent, clamped as the model clamps. Run it with
        one intra-op thread (as compress's workers do): FastEncoder's slabs suit one."""
        fast = FastEncoder(self.module("encoder"))
        clamps = self.clamps

        def encode(x: torch.Tensor) -> np.ndarray:
            z = fast(x)[0, 0].numpy()
            return np.clip(z, 0.0, 1.0, out=z) if clamps else z

        return encode

    def storer(self, form: LatentFormat) -> Callable[[torch.Tensor], StoredLatent]:
        """x → (the latent's bytes as `form` stores them, its H×W, count of values outside [0, 1] before uint8
        storage clips them)."""
        encode = self.encoder()
        scratch = np.empty(0, np.float32)  # quantise's, kept between images of one size

        def store(x: torch.Tensor) -> StoredLatent:
            nonlocal scratch
            z = encode(x)
            outside = int(np.count_nonzero((z < 0) | (z > 1)))
            if scratch.shape != z.shape:
                scratch = np.empty_like(z)
            values = self.quantise(z, form, scratch=scratch)
            return form.pack(values), (int(values.shape[0]), int(values.shape[1])), outside

        return store

    @staticmethod
    def quantise(z: np.ndarray, form: LatentFormat, *, scratch: np.ndarray | None = None) -> np.ndarray:
        """The stored values of a float32 latent (uint8 or float16, H×W)."""
        return form.quantise(z, scratch=scratch)

    @staticmethod
    def dequantise(values: np.ndarray) -> np.ndarray:
        """Stored values → the float32 latent the decoder and the classifier take."""
        return LatentFormat.to_float(values)

    def decoder(self, *, eight_bit: bool = True) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
        """(a float32 latent, the (H, W) to crop to) → the reconstruction: 8-bit as `decompress` writes it, or the
        decoder's float32 output in [0, 1] (`eight_bit` False; the codec report scores that, rounding as its
        quality measures do)."""
        decoder = self.module("decoder")

        def decode(z: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            h, w = size
            with torch.inference_mode():
                x = decoder(torch.from_numpy(z)[None, None])[0, 0, :h, :w]
                if not eight_bit:
                    return x.numpy()
                return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()

        return decode


def load_codec(ckpt: Path, *, flag: str = "--ckpt") -> LatentCodec:
    """The codec of an autoencoder or joint checkpoint (a run folder or a .safetensors file), checked tensor by
    tensor; `flag` is the option a bad file is blamed on."""
    info = read_info(ckpt, flag=flag)
    tensors = load_parts(info.path, ("encoder.", "decoder."), kinds=("autoencoder", "joint"), flag=flag)
    return LatentCodec(info.path.resolve(), info.kind, encoder_identity(tensors), tensors, info.input)
