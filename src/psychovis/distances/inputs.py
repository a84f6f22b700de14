"""Input checks shared by every image distance: one clear ``ValueError`` instead of a shape error deep in torch."""

from __future__ import annotations

import torch

RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] an input of a metric may stray (float rounding of a clamped network output)."""


def validate_images(
    prediction: torch.Tensor, target: torch.Tensor, data_range: tuple[float, float], check_range: bool = True
) -> None:
    """Check two image batches are float ``(N, 3, H, W)`` tensors of one shape inside ``data_range``.

    The range check tolerates a quarter of the range outside it (a network's raw output may
    overshoot a little) yet still catches the usual mix-ups: [0, 255] or [-1, 1] data given
    to a [0, 1] loss.

    Raises:
        ValueError: with a message naming the problem and the fix.
    """
    for name, tensor in (("prediction", prediction), ("target", target)):
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ValueError(f"{name} must have shape (N, 3, H, W) (RGB), got {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}; convert with .float() / 255")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    if check_range:
        low, high = data_range
        slack = 0.25 * (high - low)
        with torch.no_grad():
            for name, tensor in (("prediction", prediction), ("target", target)):
                lo, hi = float(tensor.min()), float(tensor.max())
                if lo < low - slack or hi > high + slack:
                    raise ValueError(
                        f"{name} values span [{lo:.3g}, {hi:.3g}] but data_range is ({low:g}, {high:g}); "
                        f"pass the range your images use, e.g. data_range=(-1, 1) or (0, 255)"
                    )
