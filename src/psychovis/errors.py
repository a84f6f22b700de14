"""Errors that carry a one-line message saying what went wrong and how to fix it."""

from __future__ import annotations


class PsychovisError(Exception):
    """Base class: a problem the user can fix. Stages print it as one line, no traceback."""


class ParamsError(PsychovisError, ValueError):
    """A value in ``params.yaml`` (or passed to a function) is unknown, of the wrong type or out of range."""


class WeightsError(PsychovisError):
    """Backbone or loss weights are missing, truncated, tampered with or unsafe to load."""


class InvalidWeightsError(WeightsError, ValueError):
    """Feature weights the loss cannot use: non-finite, negative, missing maps, or made for another backbone."""


class DataError(PsychovisError, ValueError):
    """An input file (image, Parquet table) is missing, corrupt or has the wrong schema."""


class TrackingError(PsychovisError):
    """The MLflow tracking store cannot be reached."""


QUOTE_LIMIT = 200
"""The most characters of an offending value an error message quotes (:func:`quote`)."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` bounded to about ``limit`` characters, whatever the value's size or nesting.

    Every error message that shows a value goes through here: a huge list, a 10,000-digit number,
    a deeply nested or self-referencing structure (a YAML alias bomb) is quoted by its first items
    only, never formatted in full.
    """
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel = 3
    bounded.maxlist = bounded.maxtuple = bounded.maxset = bounded.maxdict = 8
    bounded.maxstring = bounded.maxother = bounded.maxlong = limit
    try:
        text = bounded.repr(value)
    except (ValueError, RecursionError):  # e.g. an int too long to convert to decimal
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


LINE_LIMIT = 500
"""The most characters of the one line a stage prints for an error (:func:`one_line`)."""


def one_line(text: object, limit: int = LINE_LIMIT) -> str:
    """``text`` on one line (whitespace runs made one space), at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
