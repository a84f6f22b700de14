"""Tuning curves over spatial frequency and their summary per feature map.

A map's tuning curve is its response to each frequency (mean over phases and orientations, at
the highest contrast). The half-maximum level is taken half-way between the curve's minimum
and its peak, and the crossings are interpolated on a log2-frequency axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TUNING_CLASSES = ("band-pass", "low-pass", "high-pass", "broadband", "unresponsive")


@dataclass(frozen=True)
class TuningCurves:
    """Responses of many maps over a frequency axis.

    Attributes:
        frequency_cpd: the frequency axis in cycles/degree, increasing, shape ``(F,)``.
        frequency_cpp: the same axis in cycles/pixel.
        layer: layer of each map, shape ``(M,)``.
        channel: channel of each map within its layer, shape ``(M,)``.
        responses: shape ``(M, F)``.
    """

    frequency_cpd: np.ndarray
    frequency_cpp: np.ndarray
    layer: np.ndarray
    channel: np.ndarray
    responses: np.ndarray


def tuning_curves(features: pd.DataFrame, stimuli: pd.DataFrame) -> TuningCurves:
    """Pivot the `features` table into one curve per map over frequency.

    Responses are averaged over phases and orientations (so phase does not masquerade as
    tuning) at the highest contrast in the table. Maps keep their order in ``features``.
    """
    top_contrast = stimuli[stimuli["contrast"] == stimuli["contrast"].max()]
    merged = features.merge(top_contrast[["stimulus_id", "frequency_cpd"]], on="stimulus_id")
    merged["map_order"] = pd.factorize(merged["layer"].astype(str) + "\x00" + merged["channel"].astype(str))[0]
    wide = merged.pivot_table(
        index=["map_order", "layer", "channel"], columns="frequency_cpd", values="response", aggfunc="mean"
    ).sort_index(axis=1)
    frequency_cpd = wide.columns.to_numpy(dtype=np.float64)
    cpp = top_contrast.groupby("frequency_cpd")["frequency_cpp"].first().reindex(frequency_cpd)
    return TuningCurves(
        frequency_cpd=frequency_cpd,
        frequency_cpp=cpp.to_numpy(dtype=np.float64),
        layer=wide.index.get_level_values("layer").to_numpy(dtype=object),
        channel=wide.index.get_level_values("channel").to_numpy(dtype=np.int64),
        responses=wide.to_numpy(dtype=np.float64),
    )


def _interpolate_log2(frequency: np.ndarray, curves: np.ndarray, level: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Frequency where each curve crosses ``level`` between samples ``lo`` and ``lo + 1``."""
    rows = np.arange(len(curves))
    y0, y1 = curves[rows, lo], curves[rows, lo + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip((level - y0) / (y1 - y0), 0.0, 1.0)
    log_f = np.log2(frequency)
    return 2.0 ** (log_f[lo] + t * (log_f[lo + 1] - log_f[lo]))


def summarize(curves: TuningCurves, min_response: float = 1e-6) -> pd.DataFrame:
    """Preferred frequency, half-maximum bandwidth and tuning class of every map, vectorised.

    Args:
        curves: tuning curves (see :func:`tuning_curves`).
        min_response: maps whose peak response is below this are ``unresponsive`` and get no
            preferred frequency or bandwidth.

    Returns:
        One row per map: ``layer, channel, preferred_frequency_cpd, preferred_frequency_cpp,
        peak_response, min_response, low_cutoff_cpd, high_cutoff_cpd, bandwidth_octaves,
        tuning_class``. ``bandwidth_octaves`` is ``log2(high/low)`` of the half-maximum
        crossings, NaN where a crossing lies outside the probed range.
    """
    responses = curves.responses
    frequency = curves.frequency_cpd
    n_maps, n_freq = responses.shape
    peak_index = np.nanargmax(np.nan_to_num(responses, nan=-np.inf), axis=1)
    peak = responses[np.arange(n_maps), peak_index]
    floor = np.nanmin(responses, axis=1)
    level = floor + 0.5 * (peak - floor)
    below = responses < level[:, None]
    index = np.arange(n_freq)[None, :]
    left = np.where(below & (index < peak_index[:, None]), index, -1).max(axis=1)
    right = np.where(below & (index > peak_index[:, None]), index, n_freq).min(axis=1)
    has_left, has_right = left >= 0, right < n_freq
    low = np.full(n_maps, np.nan)
    high = np.full(n_maps, np.nan)
    low[has_left] = _interpolate_log2(frequency, responses[has_left], level[has_left], left[has_left])
    high[has_right] = _interpolate_log2(frequency, responses[has_right], level[has_right], right[has_right] - 1)
    tuning_class = np.select(
        [peak < min_response, has_left & has_right, has_right, has_left],
        ["unresponsive", "band-pass", "low-pass", "high-pass"],
        default="broadband",
    )
    responsive = tuning_class != "unresponsive"
    preferred = np.where(responsive, frequency[peak_index], np.nan)
    return pd.DataFrame(
        {
            "layer": curves.layer.astype(str),
            "channel": curves.channel.astype(np.int32),
            "preferred_frequency_cpd": preferred,
            "preferred_frequency_cpp": np.where(responsive, curves.frequency_cpp[peak_index], np.nan),
            "peak_response": peak,
            "min_response": floor,
            "low_cutoff_cpd": np.where(responsive, low, np.nan),
            "high_cutoff_cpd": np.where(responsive, high, np.nan),
            "bandwidth_octaves": np.where(responsive, np.log2(high / low), np.nan),
            "tuning_class": tuning_class.astype(str),
        }
    )


def layer_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Per layer: map count, share of each tuning class, median preferred frequency and bandwidth."""
    order = list(pd.unique(summary["layer"]))
    shares = pd.crosstab(summary["layer"], summary["tuning_class"], normalize="index")
    shares = shares.reindex(columns=list(TUNING_CLASSES), fill_value=0.0)
    shares.columns = [f"share_{name.replace('-', '_')}" for name in shares.columns]
    stats = summary.groupby("layer").agg(
        maps=("channel", "size"),
        median_preferred_frequency_cpd=("preferred_frequency_cpd", "median"),
        median_bandwidth_octaves=("bandwidth_octaves", "median"),
    )
    return stats.join(shares).reindex(order).reset_index()


def nyquist_edge(summary: pd.DataFrame) -> dict[str, float | int]:
    """How many "high-pass" maps simply peak at the highest probed frequency.

    A map whose response still rises at the last sample is classed high-pass, but when that sample
    is near Nyquist (the paper's grid ends at 0.479 cycles/pixel) the rise may be aliasing and
    the class an edge effect rather than a preference.

    Args:
        summary: the frame of :func:`summarize`.

    Returns:
        ``high_pass`` (maps classed high-pass), ``maps`` (of those, peaking at the highest
        probed frequency), ``share`` (their fraction, NaN without high-pass maps) and
        ``frequency_cpp`` (that frequency, cycles/pixel).
    """
    last = float(summary["preferred_frequency_cpp"].max())
    high_pass = summary["tuning_class"] == "high-pass"
    at_edge = high_pass & np.isclose(summary["preferred_frequency_cpp"], last)
    count = int(high_pass.sum())
    return {
        "high_pass": count,
        "maps": int(at_edge.sum()),
        "share": float(at_edge.sum() / count) if count else float("nan"),
        "frequency_cpp": last,
    }
