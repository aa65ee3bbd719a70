"""Any failure → one line and an exit code (SPEC §5), in one place; the CLI calls `describe` and exits.

cxrtool's own errors carry their message and code. Operating-system errors are mapped by errno to a line that
names the file and the fix (disk full, permission denied, read-only file system, a symlink loop, ...). An error
raised in a DataLoader worker arrives re-wrapped by torch with the worker's traceback in its message; only the
original error's last line is kept. Anything else is a bug: one line that says so and how to see the traceback
(`CXRTOOL_DEBUG=1`, which prints the traceback of every failure).
"""

from __future__ import annotations

import errno
import os
import re

from cxrtool.errors import CxrError

DEBUG_ENV = "CXRTOOL_DEBUG"

# errno → (exit code, what it means, the fix); the file comes from the error itself
_OS_ERRORS: dict[int, tuple[int, str, str]] = {
    errno.ENOSPC: (1, "no space left on the device", "free space there or write elsewhere; rerun to continue"),
    errno.EDQUOT: (1, "disk quota exceeded", "free space there or write elsewhere; rerun to continue"),
    errno.EACCES: (2, "permission denied", "choose a file or folder you may read or write"),
    errno.EPERM: (2, "operation not permitted", "choose a file or folder you may read or write"),
    errno.EROFS: (2, "read-only file system", "write the output to a writable folder"),
    errno.ELOOP: (2, "a loop of symbolic links", "remove or fix the link"),
    errno.ENOENT: (2, "no such file or folder", "check the path"),
    errno.ENOTDIR: (2, "a path component is not a folder", "check the path"),
    errno.EISDIR: (2, "is a folder where a file was expected", "give a file"),
    errno.ENAMETOOLONG: (2, "file name too long", "use a shorter path"),
    errno.EMFILE: (1, "too many open files", "raise the limit (ulimit -n) or use fewer --workers"),
    errno.EIO: (1, "input/output error from the device", "check the disk"),
}
_WORKER = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.", re.MULTILINE)
_ERRNO = re.compile(r"\[Errno (\d+)\] [^:]*(?:: '(.*)')?")


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _worker_line(message: str) -> str:
    """The original error's own line from torch's re-wrapped worker message ('Caught X in DataLoader worker ...')."""
    lines = [line for line in message.splitlines() if line.strip()]
    last = lines[-1] if lines else message
    return last.split(": ", 1)[1] if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b.*?: ", last) else last


def os_error_line(e: OSError, *, code: int | None = None) -> tuple[int, str]:
    number, filename = e.errno, e.filename
    if number is None:  # re-wrapped by a DataLoader worker: the errno is in the text
        match = _ERRNO.search(str(e))
        if match:
            number, filename = int(match.group(1)), match.group(2) or filename
    exit_code, what, fix = _OS_ERRORS.get(number or -1, (1, e.strerror or str(e), "see the message above"))
    where = f"{filename}: " if filename else ""
    if e.filename2:
        where = f"{e.filename} → {e.filename2}: "
    return code or exit_code, f"{where}{what}; {fix}"


def describe(e: BaseException) -> tuple[int, str]:
    """(exit code, one line) for any failure."""
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted"
    message = str(e)
    wrapped = _WORKER.search(message) is not None
    if wrapped:
        message = _worker_line(message)
    if isinstance(e, CxrError):
        return e.exit_code, message.splitlines()[0] if message else type(e).__name__
    if isinstance(e, OSError):
        return os_error_line(OSError(message) if wrapped else e)
    if isinstance(e, MemoryError):
        return 1, "out of memory; lower --batch-size or --workers, or use a smaller --crop/--size"
    first = message.splitlines()[0] if message else ""
    return 1, (
        f"unexpected {type(e).__name__}: {first} — a bug in cxrtool; rerun with {DEBUG_ENV}=1 for the traceback "
        "and report it"
    )
