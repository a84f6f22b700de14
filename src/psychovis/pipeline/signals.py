"""How a stage process ends on SIGINT, SIGTERM and SIGHUP, and dies with the DVC that ran it.

Torch-free and import-light: every stage script imports :mod:`psychovis.pipeline.stage_start`
(which calls :func:`install`) before anything else, so a signal during its seconds of imports ends
it in one line (nothing was written yet) rather than with a traceback.

Once the stage runs (:func:`started`), the three signals raise :class:`StageInterrupted` (a
``KeyboardInterrupt``) in the main thread, so the stage transaction puts every output back exactly
as Ctrl-C does: ``timeout``, CI cancellation and torchrun send SIGTERM, a closed terminal SIGHUP.

Under DVC (``DVC_STAGE`` set) the stage also watches the process that launched it (the nearest
ancestor that is not a shell: ``dvc repro`` runs the command through ``$SHELL -c``): when that
process is gone, the stage sends itself SIGTERM, so a ``dvc repro`` that is killed leaves no stage
writing after DVC released its lock. On Linux ``PR_SET_PDEATHSIG`` does the same at once when the
direct parent dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"})
POLL_SECONDS = 0.2
"""How often the stage checks that the process that launched it is still there."""

_state = {"started": False, "interrupted": False, "installed": False}


class StageInterrupted(KeyboardInterrupt):
    """A stage was sent SIGINT, SIGTERM or SIGHUP: raised in the main thread, rolls the stage back."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, the shell's convention (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


def _stage_name() -> str:
    return os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem or "stage"


def _handler(signum: int, frame: object) -> None:
    if not _state["started"]:  # still importing: nothing was written yet
        name = signal.Signals(signum).name
        os.write(
            2, f"psychovis {_stage_name()}: interrupted ({name}) before it started; nothing was written\n".encode()
        )
        os._exit(128 + signum)
    if _state["interrupted"]:  # the rollback of the first signal is under way: let it finish
        return
    _state["interrupted"] = True
    raise StageInterrupted(signum)


def started() -> None:
    """The stage's own code runs from now on: a signal rolls it back (:class:`StageInterrupted`)."""
    _state["started"] = True
    _state["interrupted"] = False


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """The stage's own code: signals roll it back (installed here when the script did not import
    :mod:`~psychovis.pipeline.stage_start` first; then the previous handlers are restored after)."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        started()
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    started()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def install() -> None:
    """Install the handlers (main thread only; once), and tie the process's life to its launcher."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    _state["installed"] = True
    _die_with_parent()
    if os.environ.get("DVC_STAGE"):
        launcher = _launcher()
        if launcher is not None:
            threading.Thread(target=_watch, args=launcher, name="psychovis-launcher-watch", daemon=True).start()


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call: too late for the kernel to tell us
        os.kill(os.getpid(), signal.SIGTERM)


def _stat(pid: int) -> tuple[str, int, str] | None:
    """``(command name, parent pid, start time)`` of ``pid`` from ``/proc``, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), fields[19]


def _launcher() -> tuple[int, str] | None:
    """The nearest ancestor that is not a shell (pid, start time): DVC, torchrun, or the user's program."""
    pid = os.getppid()
    for _ in range(8):
        found = _stat(pid)
        if found is None:
            return None
        name, parent, start = found
        if name not in _SHELLS or parent <= 1:
            return (pid, start) if pid > 1 else None
        pid = parent
    return None


def _watch(pid: int, start: str) -> None:
    """Send this process SIGTERM once ``pid`` (started at ``start``) is gone."""
    import time

    while True:
        time.sleep(POLL_SECONDS)
        found = _stat(pid)
        if found is None or found[2] != start or found[0] == "<defunct>":
            os.kill(os.getpid(), signal.SIGTERM)
            return
