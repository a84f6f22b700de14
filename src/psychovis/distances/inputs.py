"""Input checks shared by every image distance: one clear ``ValueError`` instead of a shape error deep in torch."""

from __future__ import annotations

import torch

from psychovis.errors import ParamsError

RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] an input of a metric may stray (float rounding of a clamped network output)."""


def check_image_batches(first: object, second: object, names: tuple[str, str] = ("prediction", "target")) -> None:
    """Check two image batches are float ``(N, 3, H, W)`` tensors of one shape.

    Args:
        first: the first batch (e.g. the prediction).
        second: the second batch.
        names: how the error message calls them.

    Raises:
        ParamsError: (a ``ValueError``) naming the problem and the fix.
    """
    for name, tensor in zip(names, (first, second), strict=True):
        if not isinstance(tensor, torch.Tensor):
            raise ParamsError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ParamsError(f"{name} must have shape (N, 3, H, W) (RGB), got {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise ParamsError(
                f"{name} must be a floating-point tensor, got {tensor.dtype}; convert with .float() / 255"
            )
    if first.shape != second.shape:
        raise ParamsError(f"{names[0]} and {names[1]} shapes differ: {tuple(first.shape)} vs {tuple(second.shape)}")


def validate_images(
    prediction: torch.Tensor, target: torch.Tensor, data_range: tuple[float, float], check_range: bool = True
) -> None:
    """Check two image batches are float ``(N, 3, H, W)`` tensors of one shape inside ``data_range``.

    The range check tolerates a quarter of the range outside it (a network's raw output may
    overshoot a little) yet still catches the usual mix-ups: [0, 255] or [-1, 1] data given
    to a [0, 1] loss.

    Raises:
        ParamsError: (a ``ValueError``) with a message naming the problem and the fix.
    """
    check_image_batches(prediction, target)
    if check_range:
        low, high = data_range
        slack = 0.25 * (high - low)
        with torch.no_grad():
            for name, tensor in (("prediction", prediction), ("target", target)):
                lo, hi = float(tensor.min()), float(tensor.max())
                if lo < low - slack or hi > high + slack:
                    raise ParamsError(
                        f"{name} values span [{lo:.3g}, {hi:.3g}] but data_range is ({low:g}, {high:g}); "
                        f"pass the range your images use, e.g. data_range=(-1, 1) or (0, 255)"
                    )
