"""Validators of parameter values: one-line :class:`~psychovis.errors.ParamsError` naming the key.

Torch-free, shared by the ``params.yaml`` schema (:mod:`psychovis.pipeline.params`) and by the
library functions that take the same values as arguments (so ``batch_size=0`` passed in Python
gets the same message as ``psychophysics.batch_size: 0`` in ``params.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psychovis.errors import ParamsError, quote

Validator = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def __call__(self, key: str, value: Any) -> str:
        if value not in self.options:
            raise ParamsError(f"{key} must be one of {sorted(self.options)}, got {quote(value)}")
        return value


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Number:
    """An int (``integer=True``) or float within ``[minimum, maximum]``."""

    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False

    def __call__(self, key: str, value: Any) -> int | float:
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            hint = ""
            if isinstance(value, str) and _parses_as_number(value):
                hint = " (a quoted string: write the number without quotes)"
            raise ParamsError(f"{key} must be {kind}, got {quote(value)}{hint}")
        if self.integer and not isinstance(value, int):
            raise ParamsError(f"{key} must be an integer, got {quote(value)}")
        if not math.isfinite(value):
            raise ParamsError(f"{key} must be finite, got {quote(value)}")
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not low <= value <= high:
            raise ParamsError(f"{key} must be in [{low}, {high}], got {quote(value)}")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class ListOf:
    """A non-empty list whose items all pass ``item``."""

    item: Validator
    min_length: int = 1

    def __call__(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) < self.min_length:
            raise ParamsError(f"{key} must be a list of at least {self.min_length} item(s), got {quote(value)}")
        return [self.item(f"{key}[{index}]", item) for index, item in enumerate(value)]


@dataclass(frozen=True)
class Text:
    """Any non-empty string."""

    def __call__(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{key} must be a non-empty string, got {quote(value)}")
        return value


@dataclass(frozen=True)
class Nullable:
    """``null`` or a value that passes ``inner``."""

    inner: Validator

    def __call__(self, key: str, value: Any) -> Any:
        return None if value is None else self.inner(key, value)


MAX_THREADS = 1024


@dataclass(frozen=True)
class Threads:
    """``"auto"`` or a whole number of threads in ``[1, MAX_THREADS]``."""

    def __call__(self, key: str, value: Any) -> int | str:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
            raise ParamsError(f"{key} must be 'auto' or an integer in [1, {MAX_THREADS}], got {value!r}")
        return value


@dataclass(frozen=True)
class Pair:
    """Exactly two values ``[low, high]`` with ``low < high``, each passing ``item``."""

    item: Validator

    def __call__(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) != 2:
            raise ParamsError(f"{key} must be a list of two values [low, high], got {quote(value)}")
        low, high = (self.item(f"{key}[{index}]", item) for index, item in enumerate(value))
        if not low < high:
            raise ParamsError(f"{key} must have low < high, got {quote(value)}")
        return [low, high]


@dataclass(frozen=True)
class LayerList:
    """The string ``all`` or a list of layer names (checked against the backbone later)."""

    def __call__(self, key: str, value: Any) -> str | list[str]:
        if value == "all":
            return value
        return ListOf(Text())(key, value)


def integer_at_least(key: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer (Python or numpy, not bool) in ``[minimum, maximum]``.

    Raises:
        ParamsError: ``"<key> must be an integer >= <minimum>, got <value>"`` (or ``in [min, max]``).
    """
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParamsError(f"{key} must be an integer {bound}, got {quote(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ParamsError(f"{key} must be an integer {bound}, got {quote(value)}")
    return int(value)


def integers_at_least(key: str, values: Sequence[Any], minimum: int = 1) -> list[int]:
    """A non-empty list of integers ``>= minimum`` (see :func:`integer_at_least`)."""
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise ParamsError(f"{key} must be a non-empty list of integers >= {minimum}, got {quote(values)}")
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum for v in values):
        raise ParamsError(f"{key} must be integers >= {minimum}, got {quote(list(values))}")
    return [int(v) for v in values]


MAX_PROCESSES = 64
"""The most training processes (torchrun ranks) a training stage launches on one machine."""


def check_processes(batch_size: int, processes: Any, key: str = "train.processes") -> int:
    """``processes`` if it is an integer in ``[1, MAX_PROCESSES]`` that divides ``batch_size``.

    Checked where the value is read (params load, ``--processes``), before any rank is launched.

    Raises:
        ParamsError: naming ``key``, the batch size and what to use.
    """
    processes = integer_at_least(key, processes, 1, MAX_PROCESSES)
    if batch_size % processes:
        raise ParamsError(
            f"train.batch_size ({batch_size}) must be a multiple of {key} ({processes}): "
            "every process takes an equal share of the global batch"
        )
    return processes
