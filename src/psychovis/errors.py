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
