"""Input checks shared by every image distance: one clear ``ValueError`` instead of a shape error deep in torch."""

from __future__ import annotations

import math
import sys
import warnings

import torch

from psychovis.errors import ParamsError, quote

RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] an input of a metric may stray (float rounding of a clamped network output)."""
STRICT_SLACK = 0.25
"""``check_range="strict"``: the fraction of the range an input may stray outside it."""
TARGET_SLACK = 0.05
"""Default range check: how far (fraction of the range) a target may stray before it is a mix-up."""
SCALE_FACTOR = 100.0
"""Default range check: predictions reaching this many range widths are on another scale (0-255 vs 0-1)."""
SIGNED_SHARE = 0.5
"""Default range check: a prediction reaching this fraction of the range below it, and never above it, looks signed."""
RANGE_MODES = ("warn", "strict", "off")
RANGE_FIX = "pass data_range=(low, high) of your images, clamp them, or silence this check with check_range=False"
LIBRARY_MODULES = ("psychovis", "torch")
"""Packages whose frames :func:`warn_at_caller` skips (torch: ``Module.__call__`` -> ``forward``)."""


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the location of the first frame outside psychovis and torch: the user's own line.

    ``stacklevel=2`` points into torch's ``module.py`` when the warning comes from a ``forward``
    called through ``nn.Module.__call__``; this walks out of every psychovis and torch frame
    instead, so the warning names the training loop's line however the call got there.

    Args:
        message: the warning text.
        category: the warning class.
    """
    depth, frame = 1, sys._getframe(1)  # sys._getframe(depth) is warnings.warn's stacklevel depth + 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in LIBRARY_MODULES:
        depth, frame = depth + 1, frame.f_back
    warnings.warn(message, category, stacklevel=depth + 1)


def range_mode(check_range: bool | str, default: str = "warn") -> str:
    """Normalise a ``check_range`` argument: ``True`` -> ``default``, ``False`` -> ``off``, or a mode name.

    Raises:
        ParamsError: anything else.
    """
    if check_range is True:
        return default
    if check_range is False:
        return "off"
    if check_range in RANGE_MODES:
        return str(check_range)
    raise ParamsError(f"check_range must be True, False, 'warn' or 'strict', got {quote(check_range)}")


MIN_RANGE_WIDTH = 1e-6
MAX_RANGE_WIDTH = 1e9
"""The widths ``high - low`` a data range may have: outside them the rescaled images are 0 or inf."""


def check_data_range(data_range: object) -> tuple[float, float]:
    """``(low, high)`` as floats, both finite, ``high > low`` and a usable width.

    A single number is read as piq does: ``data_range=255.0`` is ``(0, 255)``.

    Raises:
        ParamsError: not a number or a pair of numbers, non-finite, not increasing, or a width outside
            ``[MIN_RANGE_WIDTH, MAX_RANGE_WIDTH]`` (``(0, 1e-30)`` would give inf, ``(0, 1e38)`` 0.0).
    """
    if isinstance(data_range, int | float) and not isinstance(data_range, bool):
        data_range = (0.0, data_range)
    try:
        low, high = (float(value) for value in data_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ParamsError(
            f"data_range must be a pair (low, high) of numbers or the width (piq style), got {quote(data_range)}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ParamsError(f"data_range must be finite, got {quote(data_range)}; e.g. (0, 1) or (0, 255)")
    if not high > low:
        raise ParamsError(f"data_range must be (low, high) with high > low, got {quote(data_range)}")
    width = high - low
    if not MIN_RANGE_WIDTH <= width <= MAX_RANGE_WIDTH or width < MIN_RANGE_WIDTH * max(abs(low), abs(high)):
        raise ParamsError(
            f"data_range {quote(data_range)} has width {width:g}: rescaled to [0, 1] the images would be "
            f"{'all 0' if width > MAX_RANGE_WIDTH else 'infinite or lose all precision'}; use the range your pixels "
            "really span, e.g. (0, 1), (-1, 1) or (0, 255)"
        )
    return low, high


def check_image_batches(
    first: object, second: object, names: tuple[str, str] = ("prediction", "target"), min_size: int = 1
) -> None:
    """Check two image batches are non-empty float ``(N, 3, H, W)`` tensors of one shape and device.

    Args:
        first: the first batch (e.g. the prediction).
        second: the second batch.
        names: how the error message calls them.
        min_size: the smallest height and width the network behind the distance accepts.

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
    assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
    if first.shape != second.shape:
        raise ParamsError(f"{names[0]} and {names[1]} shapes differ: {tuple(first.shape)} vs {tuple(second.shape)}")
    if first.device != second.device:
        raise ParamsError(f"{names[0]} is on {first.device} but {names[1]} on {second.device}; move both with .to()")
    if first.shape[0] == 0:
        raise ParamsError(f"{names[0]} and {names[1]} are an empty batch (N = 0)")
    if min(first.shape[2:]) < min_size:
        raise ParamsError(
            f"images must be at least {min_size}x{min_size} pixels for this network, "
            f"got {first.shape[2]}x{first.shape[3]}"
        )


def check_metric_inputs(
    metric: str, x: object, y: object, device: torch.device, min_size: int, range_hint: str
) -> None:
    """The input checks of an image metric on [0, 1] images (LPIPS, DISTS): one ``ValueError`` naming the fix.

    Args:
        metric: how messages call the metric (e.g. ``"LPIPS (vgg16)"``); its first word names the inputs.
        x: the first batch.
        y: the second batch.
        device: where the metric's weights are.
        min_size: the smallest height and width the metric accepts.
        range_hint: how to bring other ranges to [0, 1] (appended to the range error).

    Raises:
        ParamsError: (a ``ValueError``) type, shape, dtype, empty batch, size, device, NaN or range.
    """
    name = metric.split()[0]
    check_image_batches(x, y, names=(f"{name} input x", f"{name} input y"))
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    if min(x.shape[2:]) < min_size:
        raise ParamsError(
            f"{metric} needs images of at least {min_size}x{min_size} pixels, got {x.shape[2]}x{x.shape[3]}"
        )
    if x.device != device or y.device != device:
        raise ParamsError(f"{name} inputs are on {x.device}/{y.device} but the metric is on {device}; use .to()")
    with torch.no_grad():
        # One host sync for both batches: min and max of each, NaN and inf included.
        stats = torch.stack([torch.stack(t.detach().aminmax()).float() for t in (x, y)]).tolist()
    for label, (low, high) in zip(("x", "y"), stats, strict=True):
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ParamsError(f"{name} input {label} contains NaN or infinite values")
        if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
            raise ParamsError(f"{name} input {label} values span [{low:.4g}, {high:.4g}], expected [0, 1]{range_hint}")


def validate_images(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: tuple[float, float],
    check_range: bool | str = "strict",
    min_size: int = 1,
) -> str | None:
    """Check two image batches, then their values against ``data_range``.

    Shape, dtype, device, empty batches and image size are always checked. Unless
    ``check_range`` is off, the values are read back once (one host sync) and NaN or infinite
    pixels are refused; then:

    - ``"strict"`` (or ``True``): either batch straying more than a quarter of the range outside
      it raises.
    - ``"warn"``: only clear mix-ups are reported, as the returned message: targets outside the
      range (5 % slack), targets filling under 1/100 of it, or predictions reaching 100 range
      widths (0-255 images given to a 0-1 loss), or predictions that look signed: reaching more than
      half the range below it while staying inside ``[low - width, high]`` (a tanh output in
      [-1, 1] against [0, 1] targets: natural images have dark pixels, so such an output goes well
      below 0, and never above 1). Ordinary network outputs that overshoot on both sides pass.

    Args:
        prediction: the first batch.
        target: the second batch, the reference.
        data_range: ``(low, high)`` the images should use.
        check_range: ``"strict"``, ``"warn"``, ``"off"``, or ``True`` (strict) / ``False`` (off).
        min_size: smallest height and width accepted.

    Returns:
        The warning to show (``"warn"`` mode, a mix-up found), else None.

    Raises:
        ParamsError: (a ``ValueError``) with a message naming the problem and the fix.
    """
    check_image_batches(prediction, target, min_size=min_size)
    mode = range_mode(check_range, default="strict")
    if mode == "off":
        return None
    with torch.no_grad():
        # One host sync for both batches: min and max of each, NaN and inf included.
        stats = torch.stack([torch.stack(t.detach().aminmax()).float() for t in (prediction, target)]).tolist()
    (p_lo, p_hi), (t_lo, t_hi) = stats
    for name, lo, hi in (("prediction", p_lo, p_hi), ("target", t_lo, t_hi)):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ParamsError(f"{name} contains NaN or infinite values; the loss would be NaN")
    low, high = data_range
    width = high - low
    span = f"but data_range is ({low:g}, {high:g}); {RANGE_FIX}"
    if mode == "strict":
        slack = STRICT_SLACK * width
        for name, lo, hi in (("prediction", p_lo, p_hi), ("target", t_lo, t_hi)):
            if lo < low - slack or hi > high + slack:
                raise ParamsError(f"{name} values span [{lo:.3g}, {hi:.3g}] {span}")
        return None
    if t_lo < low - TARGET_SLACK * width or t_hi > high + TARGET_SLACK * width:
        return f"target values span [{t_lo:.3g}, {t_hi:.3g}] {span}"
    if t_hi > t_lo and max(abs(t_hi - low), abs(t_lo - low)) < width / SCALE_FACTOR:
        return f"target values span [{t_lo:.3g}, {t_hi:.3g}], under 1/{SCALE_FACTOR:g} of the range, {span}"
    if max(p_hi - low, high - p_lo) >= SCALE_FACTOR * width:
        return f"prediction values span [{p_lo:.3g}, {p_hi:.3g}], {SCALE_FACTOR:g}x the range or more, {span}"
    slack = TARGET_SLACK * width
    if low - width - slack <= p_lo < low - SIGNED_SHARE * width and p_hi <= high + slack:
        return (
            f"prediction values span [{p_lo:.3g}, {p_hi:.3g}], as a signed (tanh) output in [{low - width:g}, "
            f"{high:g}] does, but data_range is ({low:g}, {high:g}) and the targets fit it; map the prediction into it "
            f"(for [-1, 1] to [0, 1]: (x + 1) / 2); or {RANGE_FIX}"
        )
    return None
