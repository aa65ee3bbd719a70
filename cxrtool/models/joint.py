"""The joint AECNN of stage 3 (SPEC §1): the autoencoder and the classifier, trained end to end.

x (1×H×W, [0,1]) ─ encoder ─ clamp[0,1] ─► z (1×H/4×W/4) ─┬─ decoder ─► x̂ (1×H×W)       MSE(x̂, x)
                                                          └─ repeat 3 ─ ImageNet norm ─ DenseNet121 ─► logits   BCE
L = λ·BCE + (1−λ)·MSE, λ = 0.9
"""

from __future__ import annotations

import torch
from torch import nn

from cxrtool.models.autoencoder import full_precision, make_decoder, make_encoder, pad_to_multiple
from cxrtool.models.classifier import ImageNetInput, densenet_logits, make_densenet


class JointModel(nn.Module):
    """Returns {"latent", "x_hat", "logits"}, all fp32: the autoencoder runs in fp32 even under autocast (see
    `autoencoder.full_precision`), the DenseNet's convolutions in mixed precision, its head in fp32."""

    def __init__(self, num_labels: int = 14) -> None:
        super().__init__()
        self.encoder = make_encoder()
        self.decoder = make_decoder()
        self.to_imagenet = ImageNetInput()
        self.densenet = make_densenet(num_labels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x):
            return self.encoder(pad_to_multiple(x.float())).clamp(0.0, 1.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        with full_precision(z):
            return self.decoder(z.float())

    def classify_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from a latent, e.g. one read back from a compressed store."""
        return densenet_logits(self.densenet, self.to_imagenet(z))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        z = self.encode(x)
        return {"latent": z, "x_hat": self.decode(z)[..., :h, :w], "logits": self.classify_latent(z)}
