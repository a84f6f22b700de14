"""Figures of the human-judgement scores: points with bootstrap CIs, and the map-subset curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from psychovis.names import SELECTION_COLOURS

METRIC_LABELS = {
    "srcc": "SRCC (-corr(distance, MOS))",
    "krcc": "KRCC (-corr(distance, MOS))",
    "2afc": "2AFC agreement with people",
}


def message_figure(message: str) -> Figure:
    """A small figure that only says ``message`` (the output of a skipped stage)."""
    figure, axis = plt.subplots(figsize=(6.0, 1.6))
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return figure


def fitted_limits(low: np.ndarray, high: np.ndarray, pad: float = 0.15) -> tuple[float, float] | None:
    """Axis limits that span the intervals ``[low, high]`` (plus ``pad`` of their span each side), not from 0.

    Scores of different distances often differ by a few hundredths at 0.6-0.9: an axis from 0
    flattens those differences, one fitted to the intervals shows them, and their overlap.

    Args:
        low: the lower ends (NaN ignored).
        high: the upper ends (NaN ignored).
        pad: the margin each side, as a fraction of the span.

    Returns:
        ``(bottom, top)``, or None when no end is finite.
    """
    ends = np.concatenate([low, high]).astype(float)
    ends = ends[np.isfinite(ends)]
    if not ends.size:
        return None
    bottom, top = float(ends.min()), float(ends.max())
    margin = pad * (top - bottom) if top > bottom else max(0.05 * abs(top), 0.01)
    return bottom - margin, top + margin


def scores_figure(scores: pd.DataFrame) -> Figure:
    """One panel per (data set, metric): a point per distance with its 95 % bootstrap interval.

    Points, not bars, on an axis fitted to the intervals (:func:`fitted_limits`): the scores of
    distances differ by little relative to their size, which a bar from 0 hides. The reference
    line (chance 0.5 for 2AFC, 0 for a correlation) is drawn when it falls inside the axis.

    Args:
        scores: the frame of :func:`psychovis.human_judgement.evaluate` (``dataset, distance,
            metric, value, ci_low, ci_high, n``).

    Returns:
        The figure (a message figure when ``scores`` is empty).
    """
    if scores.empty:
        return message_figure("no human-judgement scores")
    panels = list(scores[["dataset", "metric"]].drop_duplicates().itertuples(index=False, name=None))
    distances = list(pd.unique(scores["distance"]))
    colours = {name: plt.get_cmap("tab10")(index % 10) for index, name in enumerate(distances)}
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.4 * rows), squeeze=False)
    for axis, (dataset, metric) in zip(axes.flat, panels, strict=False):
        part = scores[(scores["dataset"] == dataset) & (scores["metric"] == metric)]
        part = part.set_index("distance").reindex([name for name in distances if name in set(part["distance"])])
        values = part["value"].to_numpy(dtype=float)
        ci_low, ci_high = part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float)
        low = np.nan_to_num(values - ci_low, nan=0.0).clip(min=0)
        high = np.nan_to_num(ci_high - values, nan=0.0).clip(min=0)
        positions = np.arange(len(part))
        for position, name, value, below, above in zip(positions, part.index, values, low, high, strict=True):
            axis.errorbar(
                position, value, yerr=[[below], [above]], fmt="o", color=colours[name], capsize=3, markersize=5
            )
        axis.set_xticks(positions, part.index, rotation=45, ha="right", fontsize=8)
        axis.set_xlim(-0.6, len(part) - 0.4)
        limits = fitted_limits(np.fmin(values, ci_low), np.fmax(values, ci_high))
        if limits is not None:
            axis.set_ylim(*limits)
            reference = 0.5 if metric == "2afc" else 0.0
            if limits[0] < reference < limits[1]:
                axis.axhline(reference, color="black", lw=0.8, ls=":")
        axis.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        n = int(part["n"].max()) if len(part) else 0
        axis.set_title(f"{dataset} (n = {n})", fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.suptitle(
        "Agreement with human judgements (95 % bootstrap CI; axis fitted to the intervals, not from 0)", fontsize=10
    )
    figure.tight_layout()
    return figure


def subsets_figure(summary: pd.DataFrame) -> Figure:
    """One panel per (data set, metric): score vs k of the top-, bottom- and random-k VFSS maps.

    Args:
        summary: the frame of :func:`psychovis.human_judgement.subset_summary` (``dataset,
            metric, k, selection, mean, std, count``); random-k is drawn as mean +- std over seeds.

    Returns:
        The figure (a message figure when ``summary`` is empty).
    """
    if summary.empty:
        return message_figure("no map-subset scores")
    panels = list(summary[["dataset", "metric"]].drop_duplicates().itertuples(index=False, name=None))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for axis, (dataset, metric) in zip(axes.flat, panels, strict=True):
        part = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
        for selection, rows in part.groupby("selection", sort=False):
            rows = rows.sort_values("k")
            colour = SELECTION_COLOURS.get(str(selection), "tab:blue")
            axis.plot(rows["k"], rows["mean"], marker="o", ms=3, color=colour, label=str(selection))
            if (rows["std"] > 0).any():
                axis.fill_between(
                    rows["k"], rows["mean"] - rows["std"], rows["mean"] + rows["std"], color=colour, alpha=0.2
                )
        axis.set_xscale("log", base=2)
        axis.set_xlabel("k (maps per layer)")
        axis.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        axis.set_title(dataset, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
