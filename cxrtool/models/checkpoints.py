"""Model files: safetensors with cxrtool's metadata (SPEC §5), one create/load function keyed by `cxrtool.kind`.

Metadata values are strings: `cxrtool.kind` ∈ {classifier, autoencoder, joint}, `cxrtool.labels` (JSON list),
`cxrtool.input` (JSON: resize, crop, channels, mean, std, encoder_first), `cxrtool.version`, `cxrtool.config`
(JSON). Tensor names are `encoder.*`, `decoder.*` and `densenet.*` (torchvision's names below the prefix).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrtool import __version__
from cxrtool.artifacts import atomic_path
from cxrtool.errors import InputError
from cxrtool.log import a
from cxrtool.models.checkpoint_info import KINDS, CheckpointInfo, model_file, read_info  # noqa: F401
from cxrtool.models.registry import create_model
from cxrtool.models.tensor_files import read_tensors


def encoder_identity(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the encoder and decoder tensors in sorted order (SPEC §5): names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for key in sorted(k for k in tensors if k.startswith(("encoder.", "decoder."))):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def warn_dead_channels(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Warn about an encoder made by cxrtool 0.1's box init, whose hidden channels 1-31 can never train."""
    from cxrtool.log import warn
    from cxrtool.models.autoencoder import dead_channels

    dead = dead_channels(tensors)
    if dead:
        warn(
            f"{path}: {len(dead)} of the encoder's 32 hidden channels are dead (all-zero weights, bias and output "
            "weight: cxrtool 0.1's box init), so they never train and the encoder is a linear filter; retrain stage "
            "2 with this version's `cxrtool train-ae` (and stage 3 from it) to get the paper's nonlinear autoencoder"
        )


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a file holds: the model's state dict (DDP/compile wrappers removed), contiguous, on the CPU."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_model(
    path: Path,
    model: nn.Module,
    *,
    kind: str,
    labels: tuple[str, ...],
    input_spec: dict[str, Any],
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a model file atomically with SPEC §5's metadata."""
    from safetensors.torch import save_file

    tensors = tensors if tensors is not None else state_tensors(model)
    meta = {
        "cxrtool.kind": kind,
        "cxrtool.labels": json.dumps(list(labels)),
        "cxrtool.input": json.dumps(input_spec),
        "cxrtool.version": __version__,
        "cxrtool.config": json.dumps(config, default=str),
    }
    if kind != "classifier":
        meta["cxrtool.encoder_sha256"] = encoder_identity(tensors)
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def expected_shapes(kind: str, num_labels: int = 14) -> dict[str, tuple[int, ...]]:
    """Every tensor a model file of a kind must hold, with its shape (the model built on the meta device: free)."""
    with torch.device("meta"):
        model = create_model(kind, num_labels=num_labels, init="random")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_tensors(
    info: CheckpointInfo, tensors: dict[str, torch.Tensor], prefixes: tuple[str, ...] | None = None, *, flag: str
) -> None:
    """A file's tensors (under `prefixes`, or all of them) against its kind: none missing, none of a wrong shape,
    none unexpected, all finite. A NaN weight would otherwise give all-zero latents or NaN probabilities with
    exit 0."""
    expected = {
        k: v
        for k, v in expected_shapes(info.kind, max(1, len(info.labels))).items()
        if prefixes is None or k.startswith(prefixes)
    }
    fix = "the file is damaged or was not written by cxrtool; use another checkpoint or retrain"
    where = f"{info.path} ({flag})"
    for key, shape in expected.items():
        if key not in tensors:
            raise InputError(f"{where} lacks the tensor {key} that {a(info.kind)} model needs; {fix}")
        if tuple(tensors[key].shape) != shape:
            raise InputError(f"{where}: tensor {key} has shape {tuple(tensors[key].shape)}, not {shape}; {fix}")
    extra = [k for k in tensors if k not in expected and (prefixes is None or k.startswith(prefixes))]
    if extra:
        raise InputError(f"{where} holds a tensor {extra[0]} that {a(info.kind)} model does not have; {fix}")
    for key in expected:
        value = tensors[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InputError(f"{where}: tensor {key} holds NaN or infinite values; {fix}")


def load_model(path: Path, *, kinds: tuple[str, ...] = KINDS, flag: str = "--ckpt") -> tuple[nn.Module, CheckpointInfo]:
    """Build the model a file describes and load its tensors, checked; a kind outside `kinds` is a clear error."""
    info = read_info(path, flag=flag)
    if info.kind not in kinds:
        raise InputError(f"{info.path} ({flag}) is {a(info.kind)} checkpoint; this needs {' or '.join(kinds)}")
    tensors = read_tensors(info.path, flag=flag)
    check_tensors(info, tensors, flag=flag)
    warn_dead_channels(info.path, tensors)
    model = create_model(info.kind, num_labels=max(1, len(info.labels)), init="random")
    model.load_state_dict(tensors, strict=True)
    return model, info


def load_parts(path: Path, prefixes: tuple[str, ...], *, kinds: tuple[str, ...], flag: str) -> dict[str, torch.Tensor]:
    """The tensors under some prefixes of a file of an accepted kind (stage 3 takes parts of stages 1 and 2),
    checked like a whole model's."""
    info = read_info(path, flag=flag)
    if info.kind not in kinds:
        raise InputError(f"{info.path} ({flag}) is {a(info.kind)} checkpoint; this needs {' or '.join(kinds)}")
    tensors = {k: v for k, v in read_tensors(info.path, flag=flag).items() if k.startswith(prefixes)}
    check_tensors(info, tensors, prefixes, flag=flag)
    warn_dead_channels(info.path, tensors)
    return tensors
