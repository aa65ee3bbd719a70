"""The file names of every artifact cxrtool writes (SPEC §5), in one torch-free module.

The commands that write an artifact, the modules that read it back (`resume`, `compare`, `merge`) and `info`, which
recognises an artifact by the files it holds, all take the names from here. The names are a public contract: a run
directory, evaluation directory or latent store written by an earlier version must still be found by these names.
Column schemas stay beside the code that writes them (`eval_dir`, `loc_dir`, `store`).
"""

from __future__ import annotations

from typing import Final

CONFIG: Final = "config.json"  # how the artifact was made: options, seed, cxrtool version
ERRORS: Final = "errors.csv"  # the inputs that were skipped (then exit 3)


class RunDir:
    """A training run directory (`train-* --out RUN`)."""

    MODEL: Final = "model.safetensors"  # kept weights: best validation loss, or best AUC with --keep auc
    LAST: Final = "last.safetensors"  # the last completed epoch
    RESUME_TENSORS: Final = "resume.safetensors"  # model and optimizer tensors at the last save point
    RESUME_STATE: Final = "resume.json"  # epoch and step, best-so-far, scheduler, RNG states
    CONFIG: Final = CONFIG
    HISTORY: Final = "history.csv"  # one row per completed epoch
    FILES: Final = (MODEL, LAST, RESUME_TENSORS, RESUME_STATE, CONFIG, HISTORY)
    SCRATCH: Final = "tmp"  # a scratch folder removed with the run's files on --overwrite


class EvaluationDir:
    """An evaluation directory (`evaluate --out EVAL`)."""

    PREDICTIONS: Final = "predictions.csv"
    TARGETS: Final = "targets.csv"
    METRICS: Final = "metrics.csv"
    ROC: Final = "roc.png"
    CONFIG: Final = CONFIG


class LocalizationDir:
    """A localization directory (`localize --out EVAL`)."""

    BOXES: Final = "boxes.csv"
    LOCALIZATION: Final = "localization.csv"
    EXAMPLES: Final = "examples.png"
    CONFIG: Final = CONFIG
    ERRORS: Final = ERRORS


class ExplanationDir:
    """An explanation directory (`explain --out DIR`), beside the `<image>_<label>.png` overlays."""

    TABLE: Final = "explain.csv"
    HEATMAPS: Final = "heatmaps.safetensors"
    CONFIG: Final = CONFIG
    ERRORS: Final = ERRORS


class LatentStore:
    """A latent store (`compress IN_DIR OUT_DIR`): numbered shards and three fixed files."""

    SUMMARY: Final = "summary.json"
    MANIFEST: Final = "manifest.csv"
    ERRORS: Final = ERRORS
    SHARD_PREFIX: Final = "latents-"
    SHARD_SUFFIX: Final = ".safetensors"
    SHARD_GLOB: Final = f"{SHARD_PREFIX}*{SHARD_SUFFIX}"

    @staticmethod
    def shard(index: int) -> str:
        """The file name of shard `index`: latents-00000.safetensors, latents-00001.safetensors, …"""
        return f"{LatentStore.SHARD_PREFIX}{index:05d}{LatentStore.SHARD_SUFFIX}"

    @staticmethod
    def shard_index(name: str) -> int | None:
        """The index in a shard's file name, or None for another file."""
        prefix, suffix = LatentStore.SHARD_PREFIX, LatentStore.SHARD_SUFFIX
        if not (name.startswith(prefix) and name.endswith(suffix)):
            return None
        digits = name[len(prefix) : -len(suffix)]
        return int(digits) if digits.isdigit() else None


class PrepareCache:
    """A `cxrtool prepare` cache: the resized images and one marker file."""

    MARKER: Final = "cxrtool-cache.json"
