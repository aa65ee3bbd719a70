"""Which device a command runs on."""

from __future__ import annotations

import os

import torch

from cxrtool.errors import InputError


def pick_device(name: str) -> torch.device:
    """`auto`: cuda (this rank's GPU under torchrun), then mps, then cpu. An unavailable choice is an error."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        if torch.cuda.is_available():
            name = f"cuda:{local % torch.cuda.device_count()}"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: MPS is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local % torch.cuda.device_count())
    return device
