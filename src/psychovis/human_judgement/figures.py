"""Figures of the human-judgement scores: bars with bootstrap CIs, and the map-subset curve."""

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


def scores_figure(scores: pd.DataFrame) -> Figure:
    """One panel per (data set, metric): a bar per distance with its 95 % bootstrap interval.

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
        low = np.nan_to_num(values - part["ci_low"].to_numpy(dtype=float), nan=0.0).clip(min=0)
        high = np.nan_to_num(part["ci_high"].to_numpy(dtype=float) - values, nan=0.0).clip(min=0)
        positions = np.arange(len(part))
        axis.bar(
            positions,
            values,
            yerr=np.vstack([low, high]),
            capsize=3,
            color=[colours[name] for name in part.index],
            edgecolor="black",
            linewidth=0.5,
        )
        axis.set_xticks(positions, part.index, rotation=45, ha="right", fontsize=8)
        finite = values[np.isfinite(values)]
        if metric == "2afc" and finite.size:
            axis.set_ylim(max(0.0, float(finite.min()) - 0.1), 1.0)
            axis.axhline(0.5, color="black", lw=0.8, ls=":")
        axis.axhline(0.0, color="black", lw=0.6)
        axis.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        n = int(part["n"].max()) if len(part) else 0
        axis.set_title(f"{dataset} (n = {n})", fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.suptitle("Agreement with human judgements (bars: 95 % bootstrap CI)", fontsize=10)
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
