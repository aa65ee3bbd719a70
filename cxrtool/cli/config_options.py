"""Typer options from configuration dataclasses: an option is declared once, as a field with its default and help
(`cxrtool.config.fields.option`), and every command that takes the dataclass gets it.

    @command("train-ae")
    @options_from(data=DataConfig, stage=AutoencoderConfig, loop=LoopConfig)
    def train_ae_cmd(ctx: typer.Context, data: DataConfig, stage: AutoencoderConfig, loop: LoopConfig, out: ...):

The decorated function's own parameters stay as they are; the dataclass-typed ones are replaced, in the signature
Typer reads, by one option per field, and the function receives the built (and so validated) dataclasses. A
Literal-typed field becomes a choice, which `--help` lists.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer


def field_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword-only parameter per field of `cls`, annotated with its Typer option."""
    hints = typing.get_type_hints(cls, include_extras=True)
    params = []
    for field in dataclasses.fields(cls):
        meta = dict(field.metadata)
        help_text = meta.pop("help", None)
        params.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=Annotated[hints[field.name], typer.Option(help=help_text, **meta)],
            )
        )
    return params


def options_from(**configs: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace the parameters named in `configs` by their dataclass's fields as options; build them on each call."""

    def wrap(body: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(body)
        hints = typing.get_type_hints(body, include_extras=True)  # the body's string annotations, resolved
        own = [
            p.replace(annotation=hints.get(name, p.annotation))
            for name, p in signature.parameters.items()
            if name not in configs
        ]
        fields = [p for cls in configs.values() for p in field_parameters(cls)]
        names = [p.name for p in own] + [p.name for p in fields]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise TypeError(f"{body.__name__}: option(s) {', '.join(twice)} declared twice")
        # Typer wants positional parameters (arguments) first; keyword-only options may follow in any order
        positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in positional]

        @functools.wraps(body)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            built = {
                name: cls(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls)})
                for name, cls in configs.items()
            }
            return body(*args, **kwargs, **built)

        parameters = [*positional, *keyword, *fields]
        wrapper.__signature__ = signature.replace(parameters=parameters, return_annotation=None)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        del wrapper.__wrapped__  # so that inspect reads __signature__, not the body's own
        return wrapper

    return wrap


def given_on_command_line(ctx: typer.Context, names: list[str]) -> list[str]:
    """The options among `names` the user typed (not defaults): what a resumed run compares with its config."""
    out = []
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            out.append(name)
    return out
