"""A training run directory (SPEC §5): weights, resume state, config and history, all without pickles.

model.safetensors   kept weights (best validation loss, or best AUC with --keep auc)
last.safetensors    the last completed epoch, same metadata
resume.safetensors  model and optimizer tensors at the last save point (epoch end or interruption)
resume.json         epoch and step, best-so-far, scheduler, every RNG state, partial-epoch sums
config.json         every option, the world size, the cxrtool version
history.csv         one row per completed epoch
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from cxrtool.artifacts import atomic_path, read_json, read_safetensors_header, write_csv, write_json
from cxrtool.errors import InputError
from cxrtool.layouts import RunDir
from cxrtool.log import warn
from cxrtool.models.checkpoints import state_tensors


def check_new(run: Path, *, overwrite: bool) -> None:
    """Refuse a run directory that holds files, unless --overwrite; touches nothing (inputs are validated next)."""
    if run.exists() and not run.is_dir():
        raise InputError(f"--out {run} exists and is not a directory")
    if run.exists() and any(run.iterdir()) and not overwrite:
        raise InputError(
            f"--out {run} already holds files; pass --overwrite to start afresh there, --resume {run} to "
            "continue it, or choose another --out"
        )


def clear_for_new_run(run: Path, *, overwrite: bool) -> None:
    """A fresh run directory, called once every input has been validated: with --overwrite, cxrtool's files of an
    earlier run are removed only now, so a bad option or input leaves the old run as it was."""
    check_new(run, overwrite=overwrite)
    if run.exists():
        for name in RunDir.FILES:
            (run / name).unlink(missing_ok=True)
        for extra in run.glob("*.safetensors"):
            extra.unlink()
        shutil.rmtree(run / RunDir.SCRATCH, ignore_errors=True)
    run.mkdir(parents=True, exist_ok=True)


def read_config(run: Path) -> dict[str, Any]:
    if not (run / RunDir.CONFIG).is_file():
        raise InputError(f"--resume {run}: no {RunDir.CONFIG} there; is it a cxrtool run directory?")
    return read_json(run / RunDir.CONFIG)


def write_config(run: Path, config: dict[str, Any]) -> None:
    write_json(run / RunDir.CONFIG, config)


def save_resume(run: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Model and optimizer tensors to safetensors, everything else to JSON.

    The two files are written one after the other, so a crash between them would pair new tensors with an old
    JSON. Both carry a fresh generation id, and the tensors' file also holds the state itself in its metadata:
    `load_resume` checks the ids and, where they differ, continues from the state saved with the tensors."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in state_tensors(model).items()}
    opt = optimizer.state_dict()
    for pid, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{pid}.{name}"] = value.detach().to("cpu").contiguous().clone()
    full = {**state, "param_groups": opt["param_groups"], "generation": uuid.uuid4().hex}
    meta = {"cxrtool.kind": "resume", "cxrtool.generation": full["generation"], "cxrtool.state": dumps(full)}
    with atomic_path(run / RunDir.RESUME_TENSORS) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    write_json(run / RunDir.RESUME_STATE, full)


def load_resume(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model tensors, optimizer state dict pieces, state) saved by `save_resume`."""
    from safetensors.torch import load_file

    if not (run / RunDir.RESUME_STATE).is_file() or not (run / RunDir.RESUME_TENSORS).is_file():
        raise InputError(
            f"--resume {run}: no {RunDir.RESUME_STATE}/{RunDir.RESUME_TENSORS}; the run saved no resumable state"
        )
    damaged = (
        "the run cannot continue from it; start afresh with --overwrite (its kept weights, "
        f"{RunDir.MODEL} and {RunDir.LAST}, stay usable for evaluation)"
    )
    try:
        meta, _ = read_safetensors_header(run / RunDir.RESUME_TENSORS)
        tensors = load_file(str(run / RunDir.RESUME_TENSORS))
    except Exception as e:  # InputError from the header, SafetensorError for truncated data
        why = str(e).splitlines()[0]
        raise InputError(f"{run / RunDir.RESUME_TENSORS} is damaged or truncated ({why}); {damaged}") from None
    try:
        state = read_json(run / RunDir.RESUME_STATE)
    except InputError:
        state = {}
    if "cxrtool.state" in meta:  # written by cxrtool ≥ 0.2: the state travels with the tensors
        saved = json.loads(meta["cxrtool.state"])
        if state.get("generation") != saved.get("generation"):
            warn(
                f"{run / RunDir.RESUME_STATE} is from another save point than {RunDir.RESUME_TENSORS} (the run was "
                "stopped while saving); continuing from the state saved with the tensors"
            )
        state = saved
    elif not state:
        raise InputError(f"{run / RunDir.RESUME_STATE} is unreadable; {damaged}")
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k[len("optim.") :]: v for k, v in tensors.items() if k.startswith("optim.")}
    return model, optim, state


def optimizer_state(optim: dict[str, torch.Tensor], param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild `optimizer.state_dict()` from the flat tensors of `save_resume`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in optim.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def read_history(run: Path) -> pd.DataFrame:
    path = run / RunDir.HISTORY
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def write_history(run: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    write_csv(run / RunDir.HISTORY, pd.DataFrame(rows, columns=columns), float_format="%.6g")


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)
