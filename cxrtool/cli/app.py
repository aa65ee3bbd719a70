"""The Typer application: global options, error handling, and the registry of commands.

Commands import their heavy dependencies (torch above all) inside the function body, so `--help`, `split`, `synth`
and `check` start without loading torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from cxrtool import __version__
from cxrtool.errors import CxrError


class CxrCommand(TyperCommand):
    """Turns cxrtool's typed errors into a one-line message on stderr and the SPEC §5 exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CxrError as e:
            prefix = "warning" if e.exit_code == 3 else ("interrupted" if e.exit_code == 130 else "error")
            print(f"{prefix}: {e}", file=sys.stderr, flush=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    name="cxrtool",
    help="Compress chest radiographs with a learned encoder and classify 14 thoracic diseases in the compressed "
    "domain (Ranjan et al., ICVGIP 2018), reproducibly, from the shell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(name: str, **kwargs: Any) -> Any:
    """Register a command with cxrtool's error handling."""
    return app.command(name, cls=CxrCommand, **kwargs)


def _version(value: bool) -> None:
    if value:
        print(f"cxrtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """cxrtool: compress and classify chest X-rays."""


# Registering the commands: this order is the order `cxrtool --help` lists them in (pipeline order).
COMMAND_MODULES = (
    "data_cmds",
    "train_cmds",
    "codec_cmds",
    "eval_cmds",
    "explain_cmds",
    "compare_cmd",
    "report_cmd",
    "info_cmd",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"cxrtool.cli.{_module}")


def main() -> None:
    app()
