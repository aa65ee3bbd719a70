"""The Typer application: global options, error handling, and the registry of commands.

Commands import their heavy dependencies (torch above all) inside the function body, so `--help`, `split`, `synth`
and `check` start without loading torch.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import traceback
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperCommand
from typer.exceptions import TyperException

from cxrtool import __version__


class CxrCommand(TyperCommand):
    """Turns any failure into a one-line message on stderr and the SPEC §5 exit code, within seconds.

    SIGTERM (a cluster's preemption, `kill`) is handled like Ctrl-C: commands that keep resumable state save it
    and exit 130. On any failure the command's worker processes are killed before the exit: DataLoader workers
    ignore SIGTERM (so that the main process can stop at a step boundary), and Python's exit-time
    terminate-and-join would otherwise wait for them forever."""

    def invoke(self, ctx: Any) -> Any:
        from cxrtool.failures import debug, describe

        restore = _sigterm_as_interrupt()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, SystemExit):
            raise  # Typer's own: --help, usage errors, an explicit exit
        except (Exception, KeyboardInterrupt) as e:
            stop_workers()
            if debug():
                traceback.print_exc()
            code, line = describe(e)
            prefix = {3: "warning", 130: "interrupted"}.get(code, "error")
            text = line if line == prefix else f"{prefix}: {line}"
            print(text, file=sys.stderr, flush=True)
            raise typer.Exit(code) from None
        finally:
            restore()

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """A usage error (an unknown option, a bad choice, a missing value) as one line too, not a usage box."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as e:
            print(f"error: {e.format_message()} (see `cxrtool {info_name} --help`)", file=sys.stderr, flush=True)
            raise typer.Exit(e.exit_code) from None


def _sigterm_as_interrupt() -> Any:
    """SIGTERM raises KeyboardInterrupt in the main thread (training's StopRequest overrides this while it runs)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handle(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    return lambda: signal.signal(signal.SIGTERM, previous)


def stop_workers() -> None:
    """Kill this process's worker processes (DataLoader workers, process pools) and reap them."""
    import multiprocessing

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGCHLD"):
        # torch's DataLoader watches its workers through SIGCHLD and would raise at their (intended) death
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    children = multiprocessing.active_children()
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=5)


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
