"""What each stage optimises and measures. A task turns a batch into {"loss": total, **parts} for training, and
per-sample outputs for validation, which the loop gathers across ranks (by sample index) and hands back to
`metrics`. One loop then serves all three stages and logs every part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Task(Protocol):
    kind: str

    def train_columns(self) -> list[str]: ...

    def val_columns(self) -> list[str]: ...

    def train_step(
        self, model: nn.Module, batch: dict[str, Any], *, epoch: int, step: int
    ) -> dict[str, torch.Tensor]: ...

    def val_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]: ...

    def metrics(self, outputs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, float]: ...


def auc_columns(labels: tuple[str, ...]) -> list[str]:
    return [f"val_auc_{label}" for label in labels] + ["val_auc_mean"]


def auc_metrics(labels: tuple[str, ...], targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Per-label validation AUC and their mean over the labels that have both classes."""
    from cxrtool.stats.metrics import roc_auc

    aucs = np.asarray(roc_auc(targets, probs), dtype=float).reshape(-1)
    out = {f"val_auc_{label}": float(a) for label, a in zip(labels, aucs)}
    valid = aucs[~np.isnan(aucs)]
    out["val_auc_mean"] = float(valid.mean()) if valid.size else math.nan
    return out


def _flatten_patches(x: torch.Tensor) -> torch.Tensor:
    """Patch batches arrive as B×K×1×P×P; the model sees (B·K)×1×P×P."""
    return x.flatten(0, 1) if x.dim() == 5 else x


@dataclass
class FMixSettings:
    alpha: float = 1.0
    decay: float = 3.0
    mask: str = "paper"


class ClassifierTask:
    """Stage 1: BCE on logits; with FMix, each batch is mixed with a permutation of itself (SPEC §1)."""

    kind = "classifier"

    def __init__(
        self, labels: tuple[str, ...], val_targets: np.ndarray, *, fmix: FMixSettings | None, seed: int, rank: int = 0
    ):
        self.labels, self.val_targets, self.fmix, self.seed = labels, val_targets, fmix, seed
        self.rank = rank  # under torchrun each rank mixes its own batch with its own mask, λ and permutation

    def train_columns(self) -> list[str]:
        return []

    def val_columns(self) -> list[str]:
        return auc_columns(self.labels)

    def train_step(self, model: nn.Module, batch: dict[str, Any], *, epoch: int, step: int) -> dict[str, torch.Tensor]:
        x, y = batch["image"], batch["target"]
        if self.fmix is None:
            return {"loss": F.binary_cross_entropy_with_logits(model(x)["logits"].float(), y)}
        from cxrtool.data.fmix import batch_rng, fmix_batch, fmix_loss

        rng = batch_rng(self.seed, epoch, step, rank=self.rank)
        mixed, y, y_perm, lam = fmix_batch(
            x,
            y,
            rng,
            alpha=self.fmix.alpha,
            decay=self.fmix.decay,
            mode=self.fmix.mask,  # type: ignore[arg-type]
        )
        return {"loss": fmix_loss(model(mixed)["logits"].float(), y, y_perm, lam)}

    def val_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits = model(batch["image"])["logits"].float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["target"], reduction="none").mean(dim=1)
        return {"loss": loss, "probs": torch.sigmoid(logits)}

    def metrics(self, outputs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, float]:
        return {
            "val_loss": float(outputs["loss"].mean()),
            **auc_metrics(self.labels, self.val_targets[index], outputs["probs"]),
        }


class AutoencoderTask:
    """Stage 2: MSE between the patch and its reconstruction; PSNR on 8-bit-rounded values."""

    kind = "autoencoder"

    def train_columns(self) -> list[str]:
        return ["train_mse"]

    def val_columns(self) -> list[str]:
        return ["val_mse", "val_psnr"]

    def train_step(self, model: nn.Module, batch: dict[str, Any], *, epoch: int, step: int) -> dict[str, torch.Tensor]:
        x = _flatten_patches(batch["image"])
        mse = F.mse_loss(model(x)["x_hat"].float(), x)
        return {"loss": mse, "mse": mse}

    def val_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        x = batch["image"]
        b = x.shape[0]
        x_hat = model(_flatten_patches(x))["x_hat"].float().view_as(x)
        mse = ((x_hat - x) ** 2).flatten(1).mean(dim=1)
        se8 = ((torch.round(x_hat * 255) - torch.round(x * 255)) ** 2).view(b, -1).mean(dim=1)
        return {"loss": mse, "mse": mse, "se8": se8}

    def metrics(self, outputs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, float]:
        se8 = float(outputs["se8"].mean())
        mse = float(outputs["mse"].mean())
        return {"val_loss": mse, "val_mse": mse, "val_psnr": 10 * math.log10(255**2 / se8) if se8 > 0 else math.inf}


class JointTask:
    """Stage 3: L = λ·BCE(logits, y) + (1−λ)·MSE(x̂, x); the `*_loss` columns are this λ-weighted total."""

    kind = "joint"

    def __init__(self, labels: tuple[str, ...], val_targets: np.ndarray, *, lam: float):
        self.labels, self.val_targets, self.lam = labels, val_targets, lam

    def train_columns(self) -> list[str]:
        return ["train_bce", "train_mse"]

    def val_columns(self) -> list[str]:
        return [*auc_columns(self.labels), "val_bce", "val_mse"]

    def combine(self, bce: torch.Tensor, mse: torch.Tensor) -> torch.Tensor:
        return self.lam * bce + (1 - self.lam) * mse

    def train_step(self, model: nn.Module, batch: dict[str, Any], *, epoch: int, step: int) -> dict[str, torch.Tensor]:
        x, y = batch["image"], batch["target"]
        out = model(x)
        bce = F.binary_cross_entropy_with_logits(out["logits"].float(), y)
        mse = F.mse_loss(out["x_hat"].float(), x)
        return {"loss": self.combine(bce, mse), "bce": bce, "mse": mse}

    def val_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        x, y = batch["image"], batch["target"]
        out = model(x)
        logits = out["logits"].float()
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)
        mse = ((out["x_hat"].float() - x) ** 2).flatten(1).mean(dim=1)
        return {"loss": self.combine(bce, mse), "bce": bce, "mse": mse, "probs": torch.sigmoid(logits)}

    def metrics(self, outputs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, float]:
        return {
            "val_loss": float(outputs["loss"].mean()),
            **auc_metrics(self.labels, self.val_targets[index], outputs["probs"]),
            "val_bce": float(outputs["bce"].mean()),
            "val_mse": float(outputs["mse"].mean()),
        }
