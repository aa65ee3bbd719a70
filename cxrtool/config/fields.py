"""How a configuration field is declared (default, help, bounds), the choice types, and the flat form a
configuration takes in `config.json` and checkpoint metadata."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Literal

from cxrtool.errors import InputError

Kind = Literal["classifier", "autoencoder", "joint"]
Augment = Literal["bl5", "fmix", "none"]
FMixMask = Literal["paper", "reference"]
Keep = Literal["loss", "auc"]
Schedule = Literal["plateau", "step"]
Init = Literal["box", "random"]
PatchSource = Literal["full", "downscaled"]
DicomWindow = Literal["file", "minmax", "none"]
Split = Literal["train", "val", "test"]
Tta = Literal["none", "tencrop"]
TtaAverage = Literal["probs", "logits"]

# help texts of options several configurations declare
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."
WORKERS_HELP = "Data-loading processes [default: min(4, CPUs-1)]."
DICOM_WINDOW_HELP = (
    "DICOM grey levels: file (the file's VOI LUT or first window, else minmax), minmax (the image's own range, "
    "padding excluded) or none (the range Bits Stored allows)."
)


def option(default: Any, help: str, **cli: Any) -> Any:
    """A field with its default and its command-line declaration (help, and Typer's `min`, `max`, ...)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def choices(cls: type, name: str) -> tuple[str, ...]:
    """The values a Literal-typed field accepts."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is Literal:
        return tuple(typing.get_args(hint))
    literal = next((a for a in typing.get_args(hint) if typing.get_origin(a) is Literal), None)
    return tuple(typing.get_args(literal)) if literal is not None else ()


def check_choices(config: Any) -> None:
    """Every Literal-typed field holds one of its values (a config read back from a file is not parsed by Typer)."""
    for field in dataclasses.fields(config):
        allowed = choices(type(config), field.name)
        value = getattr(config, field.name)
        if allowed and value not in allowed and value is not None:
            raise InputError(f"{flag(field.name)} must be one of {', '.join(allowed)}, not {value!r}")


def positive(name: str, value: float, what: str = "a positive number") -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{flag(name)} {value} is invalid; give {what}")


def flat(config: Any) -> dict[str, Any]:
    """A (nested) configuration as one flat dict of option names to JSON values (paths as strings)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out.update(flat(value))
        else:
            out[field.name] = str(value) if isinstance(value, Path) else value
    return out


def from_flat(cls: type, values: dict[str, Any]) -> Any:
    """A configuration from a flat dict (e.g. config.json's `options`): fields it lacks take their defaults (a run
    made before the field existed); keys that are not fields are ignored (what a run recorded besides options)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        if value is not None and Path in typing.get_args(hints[field.name]):
            value = Path(value)
        kwargs[field.name] = value
    return cls(**kwargs)
