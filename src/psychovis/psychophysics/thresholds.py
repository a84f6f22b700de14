"""Contrast thresholds from the distance grid, and each distance's "CSF" scored against the human one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from psychovis.csf import contrast_sensitivity
from psychovis.psychophysics.grid import DistanceGrid

FLAT_TOLERANCE_DECADES = 1e-3
"""A sensitivity curve whose log10 range is below this is flat: log-correlation 0, no peak."""
MONOTONE_TOLERANCE = 1e-6
"""A drop of distance with contrast larger than this fraction of the curve's maximum is non-monotone."""


def find_thresholds(
    contrasts: np.ndarray, distances: np.ndarray, criterion: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The contrast at which each distance-vs-contrast curve first reaches its criterion.

    Between the last grid contrast below the criterion and the first at or above it, log
    contrast is interpolated linearly in log distance, which is exact for a power law
    ``d = g c^p``. A zero distance below the crossing is treated as a tiny positive one (the
    threshold then lies just below the upper grid point).

    Args:
        contrasts: the contrast grid, shape ``(C,)``, positive and strictly increasing.
        distances: curves of shape ``(..., C)``.
        criterion: the criterion, broadcastable to ``distances.shape[:-1]``.

    Returns:
        ``(threshold, monotone)``, both of shape ``distances.shape[:-1]``: the threshold contrast
        (NaN when the curve never reaches the criterion, already exceeds it at the lowest
        contrast, or the criterion is not positive and finite), and whether the curve is
        non-decreasing (drops smaller than :data:`MONOTONE_TOLERANCE` of its maximum are ignored).

    Raises:
        ValueError: a bad contrast grid or mismatched shapes.
    """
    contrasts = np.asarray(contrasts, dtype=np.float64)
    distances = np.asarray(distances, dtype=np.float64)
    if contrasts.ndim != 1 or contrasts.size < 2 or contrasts.min() <= 0 or np.any(np.diff(contrasts) <= 0):
        raise ValueError("contrasts must be a positive, strictly increasing vector of at least 2 values")
    if distances.ndim < 1 or distances.shape[-1] != contrasts.size:
        raise ValueError(f"distances must have shape (..., {contrasts.size}), got {distances.shape}")
    criterion = np.broadcast_to(np.asarray(criterion, dtype=np.float64), distances.shape[:-1])
    above = distances >= criterion[..., None]
    crossed = above.any(axis=-1)
    first = np.argmax(above, axis=-1)
    valid = crossed & (first > 0) & np.isfinite(criterion) & (criterion > 0)
    high = first[..., None]
    low = np.maximum(high - 1, 0)
    tiny = np.finfo(np.float64).tiny
    d_low = np.log(np.maximum(np.take_along_axis(distances, low, axis=-1)[..., 0], tiny))
    d_high = np.log(np.maximum(np.take_along_axis(distances, high, axis=-1)[..., 0], tiny))
    log_c = np.log(contrasts)
    c_low, c_high = log_c[low[..., 0]], log_c[high[..., 0]]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(d_high > d_low, (np.log(np.maximum(criterion, tiny)) - d_low) / (d_high - d_low), 1.0)
        threshold = np.exp(c_low + np.clip(fraction, 0.0, 1.0) * (c_high - c_low))
    threshold = np.where(valid, threshold, np.nan)
    scale = np.nanmax(np.abs(distances), axis=-1, initial=0.0, keepdims=True) if distances.size else 0.0
    monotone = np.all(np.diff(distances, axis=-1) >= -MONOTONE_TOLERANCE * scale, axis=-1)
    return threshold, monotone


def thresholds_frame(grid: DistanceGrid) -> pd.DataFrame:
    """Detection thresholds of every distance, background and frequency as a tidy frame.

    Args:
        grid: from :func:`distance_grid`.

    Returns:
        Columns ``distance, background, frequency_cpd, frequency_cpp, threshold, sensitivity``
        (``1 / threshold``), ``criterion``, ``monotone``, ``clipped_fraction`` (of the stimulus at
        the first grid contrast at or above the threshold; NaN where the threshold is).
    """
    frames = []
    n_b, n_f = len(grid.backgrounds), grid.frequency_cpd.size
    for name, values in grid.values.items():
        threshold, monotone = find_thresholds(grid.contrasts, values, grid.criterion[name])
        upper = np.clip(np.searchsorted(grid.contrasts, np.nan_to_num(threshold, nan=0.0)), 0, grid.contrasts.size - 1)
        clip = np.take_along_axis(grid.clipped_fraction, upper[..., None], axis=-1)[..., 0]
        frames.append(
            pd.DataFrame(
                {
                    "distance": name,
                    "background": np.repeat(grid.backgrounds, n_f),
                    "frequency_cpd": np.tile(grid.frequency_cpd, n_b),
                    "frequency_cpp": np.tile(grid.frequency_cpp, n_b),
                    "threshold": threshold.ravel(),
                    "sensitivity": 1.0 / threshold.ravel(),
                    "criterion": grid.criterion[name],
                    "monotone": monotone.ravel(),
                    "clipped_fraction": np.where(np.isfinite(threshold), clip, np.nan).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def sensitivity_scores(
    frequency_cpd: np.ndarray, sensitivity: np.ndarray, csf: str = "mannos_sakrison_code"
) -> dict[str, float]:
    """Compare one sensitivity curve with the human CSF.

    Args:
        frequency_cpd: frequencies, positive and strictly increasing, shape ``(F,)``.
        sensitivity: the curve (``1 / threshold``), shape ``(F,)``; NaN, infinite or non-positive
            points are left out.
        csf: the human CSF model (see :data:`psychovis.csf.CSF_MODELS`).

    Returns:
        ``log_correlation``: Pearson correlation of ``log sensitivity`` with ``log CSF`` over the
        valid frequencies (0 for a curve flat to within :data:`FLAT_TOLERANCE_DECADES`, which
        shares no variation with the CSF); ``peak_frequency_cpd``: the frequency of maximum
        sensitivity, refined by a parabola through the peak and its neighbours in log-log
        coordinates (NaN for a flat curve); ``falloff_slope``: least-squares slope of log
        sensitivity vs log frequency over the valid frequencies above the peak (NaN with fewer
        than two; 0 for a flat curve); ``frequencies``: the number of valid points. All NaN with
        fewer than three valid points.

    Raises:
        ValueError: mismatched shapes or a bad frequency axis.
    """
    frequency = np.asarray(frequency_cpd, dtype=np.float64)
    values = np.asarray(sensitivity, dtype=np.float64)
    if frequency.ndim != 1 or values.shape != frequency.shape:
        raise ValueError(
            f"frequency_cpd and sensitivity must be vectors of one length, got {frequency.shape}, {values.shape}"
        )
    if frequency.size and (frequency.min() <= 0 or np.any(np.diff(frequency) <= 0)):
        raise ValueError("frequency_cpd must be positive and strictly increasing")
    valid = np.isfinite(values) & (values > 0)
    result = {"log_correlation": math.nan, "peak_frequency_cpd": math.nan, "falloff_slope": math.nan}
    result["frequencies"] = int(valid.sum())
    if valid.sum() < 3:
        return result
    log_f, log_s = np.log10(frequency[valid]), np.log10(values[valid])
    log_human = np.log10(contrast_sensitivity(frequency[valid], csf))
    if np.ptp(log_s) < FLAT_TOLERANCE_DECADES:
        result.update(log_correlation=0.0, falloff_slope=0.0)
        return result
    result["log_correlation"] = float(np.corrcoef(log_s, log_human)[0, 1])
    top = int(np.argmax(log_s))
    peak = log_f[top]
    if 0 < top < log_f.size - 1:
        x, y = log_f[top - 1 : top + 2], log_s[top - 1 : top + 2]
        curvature, slope, _ = np.polyfit(x, y, 2)
        if curvature < 0:
            peak = float(np.clip(-slope / (2 * curvature), x[0], x[2]))
    result["peak_frequency_cpd"] = float(10**peak)
    beyond = log_f > peak
    if beyond.sum() >= 2:
        result["falloff_slope"] = float(np.polyfit(log_f[beyond], log_s[beyond], 1)[0])
    return result


def score_thresholds(
    thresholds: pd.DataFrame, csf: str = "mannos_sakrison_code", include_human: bool = True
) -> pd.DataFrame:
    """Score every (distance, background) sensitivity curve against the human CSF.

    Args:
        thresholds: the frame of :func:`thresholds_frame`.
        csf: the human CSF model.
        include_human: add a row ``distance="human_csf", background="reference"`` scoring the CSF
            itself on the same frequencies (log-correlation 1; its peak and fall-off for scale).

    Returns:
        Columns ``distance, background, log_correlation, peak_frequency_cpd, falloff_slope,
        frequencies``, one row per curve.

    Raises:
        ValueError: the frame lacks a needed column.
    """
    needed = {"distance", "background", "frequency_cpd", "sensitivity"}
    if not needed <= set(thresholds.columns):
        raise ValueError(f"thresholds needs columns {sorted(needed)}, has {list(thresholds.columns)}")
    rows = []
    for (distance, background), curve in thresholds.groupby(["distance", "background"], sort=False):
        curve = curve.sort_values("frequency_cpd")
        scores = sensitivity_scores(curve["frequency_cpd"].to_numpy(), curve["sensitivity"].to_numpy(), csf)
        rows.append({"distance": distance, "background": background, **scores})
    if include_human and len(thresholds):
        frequency = np.sort(thresholds["frequency_cpd"].unique())
        human = sensitivity_scores(frequency, contrast_sensitivity(frequency, csf), csf)
        rows.append({"distance": "human_csf", "background": "reference", **human})
    return pd.DataFrame(
        rows,
        columns=["distance", "background", "log_correlation", "peak_frequency_cpd", "falloff_slope", "frequencies"],
    )


def px_per_degree_as_run(thresholds: pd.DataFrame) -> float:
    """The geometry the thresholds were measured at: cycles/degree per cycle/pixel (the paper's mapping: 61.8).

    Raises:
        ValueError: no rows, or the frequencies do not share one geometry.
    """
    if not len(thresholds):
        raise ValueError("no thresholds to read the geometry from")
    ratio = (thresholds["frequency_cpd"] / thresholds["frequency_cpp"]).to_numpy(dtype=np.float64)
    if not np.allclose(ratio, ratio[0], rtol=1e-6):
        raise ValueError(f"the frequencies do not share one geometry: {ratio.min():g}-{ratio.max():g} px/deg")
    return float(ratio[0])


def geometry_sweep(thresholds: pd.DataFrame, px_per_degree: Sequence[float], csfs: Sequence[str]) -> pd.DataFrame:
    """Every sensitivity curve re-read at other viewing geometries, scored against each human CSF.

    A network's sensitivity is fixed in cycles/pixel, a person's in cycles/degree: the viewing
    geometry decides which human frequency each grating stands for. The gratings stay as rendered;
    at ``p`` pixels/degree a grating of ``f`` cycles/pixel is ``f p`` cycles/degree. The criterion
    grating moves with the others, so each curve keeps its shape and only its place on the human CSF
    changes: a conclusion that holds at one geometry only is a property of that geometry.

    Args:
        thresholds: the frame of :func:`thresholds_frame` (``frequency_cpp`` and ``sensitivity``).
        px_per_degree: the geometries, in pixels per degree (each positive).
        csfs: human CSF models (:func:`psychovis.csf.contrast_sensitivity`).

    Returns:
        Columns ``px_per_degree, csf, distance, background, log_correlation, peak_frequency_cpd,
        falloff_slope, frequencies``: one row per geometry, CSF and curve.

    Raises:
        ValueError: a geometry is not positive, or the frame lacks a needed column.
    """
    bad = [value for value in px_per_degree if not float(value) > 0]
    if bad:
        raise ValueError(f"px_per_degree must be positive, got {bad}")
    if "frequency_cpp" not in thresholds.columns:
        raise ValueError(f"thresholds needs column frequency_cpp, has {list(thresholds.columns)}")
    frames = []
    for ppd in px_per_degree:
        reread = thresholds.assign(frequency_cpd=thresholds["frequency_cpp"] * float(ppd))
        for csf in csfs:
            scored = score_thresholds(reread, csf, include_human=False)
            frames.append(scored.assign(px_per_degree=float(ppd), csf=csf))
    columns = ["px_per_degree", "csf", "distance", "background", "log_correlation", "peak_frequency_cpd"]
    columns += ["falloff_slope", "frequencies"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def masking_table(thresholds: pd.DataFrame, reference: str = "grey") -> pd.DataFrame:
    """Threshold elevation by each textured background: ``threshold(background) / threshold(grey)``.

    A value above 1 means the background masks the grating (it is harder to detect on it). The
    pixel MSE shows none (its distance does not depend on the background), the human observer a
    lot, most where the masker has power at the grating's frequency.

    Args:
        thresholds: the frame of :func:`thresholds_frame`.
        reference: the unmasked background.

    Returns:
        Columns ``distance, background, frequency_cpd, threshold_elevation`` for every background
        other than ``reference``; empty when there is no other background.

    Raises:
        ValueError: ``reference`` is not among the backgrounds.
    """
    if reference not in set(thresholds["background"]):
        raise ValueError(
            f"masking needs the {reference!r} background, thresholds have {sorted(set(thresholds['background']))}"
        )
    base = thresholds[thresholds["background"] == reference][["distance", "frequency_cpd", "threshold"]]
    others = thresholds[thresholds["background"] != reference][["distance", "background", "frequency_cpd", "threshold"]]
    merged = others.merge(base, on=["distance", "frequency_cpd"], suffixes=("", "_reference"))
    merged["threshold_elevation"] = merged["threshold"] / merged["threshold_reference"]
    return merged[["distance", "background", "frequency_cpd", "threshold_elevation"]].reset_index(drop=True)
