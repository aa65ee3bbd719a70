"""Typed errors. Library code raises these; only the CLI turns them into a message and an exit code.

Exit codes are the contract of SPEC §5: 0 success, 1 run-time failure, 2 bad input or usage,
3 partial success (some inputs skipped), 130 interrupted with resumable state saved.
"""

from __future__ import annotations


class CxrError(Exception):
    """Base class: a message for the user and the process exit code that goes with it."""

    exit_code: int = 1


class InputError(CxrError):
    """Bad input or usage: a missing file, a malformed table, an invalid option value (exit 2)."""

    exit_code = 2


class RunFailure(CxrError):
    """A run-time failure that is not the user's input: non-finite loss, I/O error (exit 1)."""

    exit_code = 1


class PartialSuccess(CxrError):
    """The command finished but skipped some inputs (exit 3)."""

    exit_code = 3


class Interrupted(CxrError):
    """Stopped by a signal after saving resumable state (exit 130)."""

    exit_code = 130
