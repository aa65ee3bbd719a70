"""`cxrtool info PATH`: what an artifact is and its key figures, for a checkpoint, run directory, evaluation
directory, latent store or `prepare` cache. Reads files only; never imports torch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from cxrtool.artifacts import read_json
from cxrtool.errors import InputError
from cxrtool.layouts import EvaluationDir, LatentStore, PrepareCache, RunDir


def _checkpoint(path: Path) -> dict[str, Any]:
    from cxrtool.models.checkpoint_info import read_info

    info = read_info(path, flag="PATH")
    return {
        "artifact": "checkpoint",
        "path": str(path),
        "kind": info.kind,
        "labels": list(info.labels),
        "input": info.input,
        "version": info.version,
        "encoder_sha256": info.raw.get("cxrtool.encoder_sha256"),
        "tensors": len(info.tensors),
        "tensor_values": sum(math.prod(t["shape"]) for t in info.tensors.values()),  # parameters and buffers
        "bytes": path.stat().st_size,
        "epoch": info.config.get("epoch"),
        "seed": info.config.get("seed"),
        "config": info.config,
    }


def _run(path: Path) -> dict[str, Any]:
    config = read_json(path / RunDir.CONFIG)
    out: dict[str, Any] = {
        "artifact": "run",
        "path": str(path),
        "kind": config.get("kind"),
        "version": config.get("cxrtool_version"),
        "world_size": config.get("world_size"),
        "files": sorted(p.name for p in path.iterdir() if not p.name.startswith(".")),
        "config": config.get("options", {}),
    }
    if (path / RunDir.HISTORY).is_file():
        history = pd.read_csv(path / RunDir.HISTORY)
        out["epochs_done"] = len(history)
        if len(history):
            best = history.loc[history["val_loss"].idxmin()]
            out["best_epoch_val_loss"] = int(best["epoch"])
            out["best_val_loss"] = float(best["val_loss"])
            out["last"] = {
                k: _plain(v) for k, v in history.iloc[-1].items() if not k.startswith("val_auc_") or k == "val_auc_mean"
            }
    if (path / RunDir.RESUME_STATE).is_file():
        progress = read_json(path / RunDir.RESUME_STATE).get("progress", {})
        out["resume_at"] = {"epoch": progress.get("epoch"), "step": progress.get("step")}
    if (path / RunDir.MODEL).is_file():
        out["model"] = {
            k: v for k, v in _checkpoint(path / RunDir.MODEL).items() if k in ("epoch", "encoder_sha256", "parameters")
        }
    return out


def _evaluation(path: Path) -> dict[str, Any]:
    metrics = pd.read_csv(path / EvaluationDir.METRICS)
    config = read_json(path / EvaluationDir.CONFIG) if (path / EvaluationDir.CONFIG).is_file() else {}
    mean = metrics[metrics["label"] == "Mean"]
    out: dict[str, Any] = {
        "artifact": "evaluation",
        "path": str(path),
        "checkpoint": config.get("ckpt"),
        "kind": config.get("kind"),
        "split": config.get("split"),
        "images": config.get("images"),
        "tta": config.get("tta"),
        "version": config.get("cxrtool_version"),
        "config": config,
    }
    if len(mean):
        row = mean.iloc[0]
        out.update(mean_auc=_plain(row["auc"]), mean_ci=[_plain(row["auc_ci_low"]), _plain(row["auc_ci_high"])])
        out["n_labels"] = _plain(row["n_labels"])
    return out


def _store(path: Path) -> dict[str, Any]:
    summary = read_json(path / LatentStore.SUMMARY)
    shards = sorted(p.name for p in path.glob(LatentStore.SHARD_GLOB))
    return {"artifact": "latent store", "path": str(path), "shards": len(shards), **summary}


def _cache(path: Path) -> dict[str, Any]:
    return {"artifact": "prepare cache", "path": str(path), **read_json(path / PrepareCache.MARKER)}


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def describe(path: Path) -> dict[str, Any]:
    """Recognise the artifact at `path` and summarise it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_file():
        if path.suffix == ".safetensors":
            return _checkpoint(path)
        raise InputError(f"{path}: not a cxrtool artifact (expected a .safetensors checkpoint or a directory)")

    def has(name: str) -> bool:
        return (path / name).is_file()

    if has(RunDir.CONFIG) and (has(RunDir.HISTORY) or has(RunDir.RESUME_STATE)):
        return _run(path)
    if has(EvaluationDir.METRICS):
        return _evaluation(path)
    if has(LatentStore.SUMMARY) and has(LatentStore.MANIFEST):
        return _store(path)
    if has(PrepareCache.MARKER):
        return _cache(path)
    if has(RunDir.MODEL):
        return _checkpoint(path / RunDir.MODEL)
    raise InputError(
        f"{path}: not a cxrtool artifact (a run directory, evaluation directory, latent store or prepare cache)"
    )
