"""What kind of file a path is, and the check every input file passes before it is read.

Torch-free and cheap: a device, a FIFO, a socket or a folder given where a file is expected is
named as such (reading ``/dev/zero`` would never end, a FIFO would block), not reported as missing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from psychovis.errors import DataError, PsychovisError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(path: str | os.PathLike[str]) -> str | None:
    """``"a regular file"``, ``"a folder"``, ``"a FIFO (named pipe)"``, ... or None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def require_regular_file(
    path: str | os.PathLike[str],
    what: str = "input file",
    fix: str = "run the stage that writes it (`dvc repro`)",
    max_bytes: int | None = None,
    error: type[PsychovisError] = DataError,
) -> Path:
    """Refuse ``path`` unless it is an existing regular file (of at most ``max_bytes``), in one line.

    Args:
        path: the file to check (symbolic links are followed).
        what: what the file is, for the message (``"params file"``).
        fix: what to do when it is missing or of another kind.
        max_bytes: the largest size accepted, if any.
        error: the exception class raised.

    Raises:
        ``error``: missing, a folder, a device, a FIFO, a socket, or too large.
    """
    path = Path(path)
    found = kind(path)
    if found is None:
        raise error(f"{path} does not exist; {fix}")
    if found != "a regular file":
        raise error(f"{path} is {found}, not a readable {what}; {fix}")
    if max_bytes is not None:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path} is {size:,} bytes, more than the {max_bytes:,} a {what} may have; {fix}")
    return path
