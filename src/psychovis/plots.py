"""Figures of the paper's analysis that people look at first: stimuli, tuning curves, VFSS."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from psychovis.tuning import TuningCurves


def _grid(count: int, columns: int, cell: float = 1.6) -> tuple[Figure, np.ndarray]:
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * cell, rows * cell), squeeze=False)
    for axis in axes.flat[count:]:
        axis.axis("off")
    return figure, axes


def contact_sheet(
    images: np.ndarray, labels: list[str], columns: int = 10, title: str = "Grating stimuli", fontsize: int = 7
) -> Figure:
    """Thumbnails of stimuli (``images``: N x H x W grey in [0, 1]) with a label each."""
    figure, axes = _grid(len(images), columns)
    for axis, image, label in zip(axes.flat, images, labels, strict=False):
        axis.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(label, fontsize=fontsize)
        axis.axis("off")
    figure.suptitle(title)
    return figure


def tuning_examples(curves: TuningCurves, summary: pd.DataFrame, per_layer: int = 6) -> Figure:
    """Per layer, normalised tuning curves of example maps spread over preferred frequency."""
    layers = list(pd.unique(summary["layer"]))
    figure, axes = _grid(len(layers), min(4, len(layers)), cell=3.0)
    for axis, layer in zip(axes.flat, layers, strict=False):
        rows = np.flatnonzero((curves.layer == layer) & (summary["tuning_class"].to_numpy() != "unresponsive"))
        if rows.size:
            order = rows[np.argsort(summary["preferred_frequency_cpd"].to_numpy()[rows], kind="stable")]
            picks = order[np.linspace(0, len(order) - 1, min(per_layer, len(order))).astype(int)]
            for row in picks:
                curve = curves.responses[row]
                span = curve.max() - curve.min()
                axis.plot(curves.frequency_cpd, (curve - curve.min()) / (span if span > 0 else 1), lw=1)
        axis.set_xscale("log")
        axis.set_title(f"{layer} ({(curves.layer == layer).sum()} maps)", fontsize=9)
        axis.set_xlabel("cycles/degree", fontsize=8)
        axis.set_ylabel("normalised response", fontsize=8)
    figure.suptitle("Tuning curves of example feature maps")
    figure.tight_layout()
    return figure


def layer_bars(table: pd.DataFrame, columns: Mapping[str, str], title: str) -> Figure:
    """One bar chart per column of a per-layer table (``columns``: column -> axis label)."""
    figure, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.2), squeeze=False)
    for axis, (column, label) in zip(axes.flat, columns.items(), strict=True):
        axis.bar(table["layer"], table[column], color="tab:blue")
        axis.set_ylabel(label)
        axis.tick_params(axis="x", rotation=60, labelsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def vfss_overview(scores: pd.DataFrame, frequency_cpd: np.ndarray, sensitivity: np.ndarray, csf: str) -> Figure:
    """VFSS distribution per layer (box plot) beside the CSF over the probed frequencies."""
    layers = list(pd.unique(scores["layer"]))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
    left.boxplot([scores.loc[scores["layer"] == layer, "vfss"] for layer in layers], showfliers=False)
    left.set_xticks(range(1, len(layers) + 1), layers, rotation=60, fontsize=8)
    left.set_ylabel("VFSS")
    left.set_title("VFSS per feature map, by layer")
    right.plot(frequency_cpd, sensitivity, marker=".", color="tab:red")
    right.set_xlabel("cycles/degree")
    right.set_ylabel("sensitivity")
    right.set_title(f"CSF: {csf}")
    figure.tight_layout()
    return figure
