"""Progress of long loops: a tqdm bar on a terminal, plain periodic lines in a log.

tqdm redraws its bar with carriage returns; written to a file (``dvc repro > log``, CI, a batch
job) every redraw lands on one line, tens of thousands of characters long. So::

    for batch in progress(batches, "features", unit="batch"):
        ...

draws a bar when stderr is a terminal, and otherwise prints one short line per tenth of the work
(``features: 30/100 batch (30 %)``), plus the last postfix set (e.g. the loss). ``TQDM_DISABLE=1``
(tqdm's own switch) or ``enabled=False`` silences both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")
STEPS = 10  # lines per loop when not on a terminal: one per tenth


def disabled_by_env() -> bool:
    """Whether ``TQDM_DISABLE`` asks for silence (any value but empty, ``0`` or ``false``)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


class _Lines:
    """The non-terminal progress: a line each time another tenth of ``total`` is done."""

    def __init__(self, desc: str, total: int | None, unit: str, initial: int, stream: IO[str]) -> None:
        self.desc, self.total, self.unit, self.stream = desc, total, unit, stream
        self.done = initial
        self.postfix = ""
        self._last_tenth = self._tenth(initial)

    def _tenth(self, done: int) -> int:
        return done * STEPS // self.total if self.total else 0

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.total:
            tenth = self._tenth(self.done)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            where = f"{self.done}/{self.total} {self.unit} ({100 * self.done // self.total} %)"
        else:
            # unknown length: a line at 1, 2, 4, 8, ... items, so a long loop still writes few lines
            if self.done & (self.done - 1):
                return
            where = f"{self.done} {self.unit}"
        suffix = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {where}{suffix}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class Progress:
    """A progress reporter over ``iterable``: iterate it, or call :meth:`update` by hand.

    Args:
        iterable: what to loop over (None: count by hand with :meth:`update`).
        desc: the label (a stage or loop name).
        total: the number of items (default ``len(iterable)`` when it has one).
        unit: what one item is ("batch", "step", "image").
        initial: items already done (a resumed run).
        enabled: False: no output at all (``TQDM_DISABLE`` also silences it).
        stream: where to write (default stderr).
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        desc: str = "",
        total: int | None = None,
        unit: str = "it",
        initial: int = 0,
        enabled: bool = True,
        stream: IO[str] | None = None,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        stream = stream or sys.stderr
        self._backend: Any = None
        if enabled and not disabled_by_env():
            if stream.isatty():
                from tqdm.auto import tqdm

                self._backend = tqdm(desc=desc, total=total, unit=unit, initial=initial, file=stream)
            else:
                self._backend = _Lines(desc, total, unit, initial, stream)

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("Progress was made without an iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def update(self, count: int = 1) -> None:
        """Count ``count`` more items done."""
        if self._backend is not None:
            self._backend.update(count)

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (e.g. ``loss="0.0312"``), on the bar or the next line."""
        if self._backend is not None:
            self._backend.set_postfix(**values)

    def close(self) -> None:
        """End the bar (a no-op for plain lines)."""
        if self._backend is not None:
            self._backend.close()


def progress(
    iterable: Iterable[T], desc: str, unit: str = "it", total: int | None = None, enabled: bool = True
) -> Progress:
    """``iterable`` wrapped in a :class:`Progress` (bar on a terminal, a line per tenth otherwise)."""
    return Progress(iterable, desc=desc, total=total, unit=unit, enabled=enabled)
