"""Reading the tensors of a safetensors file, with a one-line error for a damaged one. Imports no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cxrtool.errors import InputError


def _safe_open(path: Path) -> Any:
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise InputError(f"{path} is not a readable safetensors file ({e})") from None


def read_tensors(path: Path, *, flag: str = "--ckpt") -> dict[str, torch.Tensor]:
    with _safe_open(path) as f:
        try:
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        except Exception as e:  # a truncated file: the header promises more bytes than there are
            raise InputError(f"{path} ({flag}) is damaged or truncated ({str(e).splitlines()[0]})") from None
