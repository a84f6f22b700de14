"""Figures of the psychophysical test: each distance's "CSF" against the human one, and map subsets."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from psychovis.csf import contrast_sensitivity

SELECTION_COLOURS = {"topk": "tab:green", "bottomk": "tab:red", "randomk": "tab:grey"}


def csf_overlay(
    thresholds: pd.DataFrame,
    csf: str = "mannos_sakrison_code",
    examples: Mapping[str, np.ndarray] | None = None,
    reference: str = "grey",
) -> Figure:
    """One panel per background: each distance's sensitivity (``1/threshold``) with the human CSF.

    Curves are normalised by the distance's peak sensitivity on the ``reference`` (grey)
    background, so on a masking background a lower curve means higher thresholds; the human CSF
    is normalised to peak 1 and drawn in black. Axes are log-log.

    Args:
        thresholds: the frame of :func:`psychovis.psychophysics.thresholds_frame`.
        csf: the human CSF model.
        examples: optional background name -> an example stimulus (grey ``(H, W)`` in [0, 1]),
            drawn as a thumbnail in the panel's corner.
        reference: the background whose peak normalises each distance.

    Returns:
        The figure.
    """
    backgrounds = list(pd.unique(thresholds["background"]))
    distances = list(pd.unique(thresholds["distance"]))
    figure, axes = plt.subplots(1, len(backgrounds), figsize=(4.6 * len(backgrounds), 4.2), squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    frequency = np.sort(thresholds["frequency_cpd"].unique())
    dense = np.geomspace(frequency.min(), frequency.max(), 200)
    human = contrast_sensitivity(dense, csf)
    for axis, background in zip(axes.flat, backgrounds, strict=True):
        axis.plot(dense, human / human.max(), color="black", lw=2.5, label=f"human CSF ({csf})")
        for position, distance in enumerate(distances):
            rows = thresholds[thresholds["distance"] == distance]
            norm_rows = rows[rows["background"] == reference] if reference in set(rows["background"]) else rows
            peak = np.nanmax(norm_rows["sensitivity"].to_numpy()) if norm_rows["sensitivity"].notna().any() else 1.0
            curve = rows[rows["background"] == background].sort_values("frequency_cpd")
            axis.plot(
                curve["frequency_cpd"],
                curve["sensitivity"] / peak,
                marker="o",
                ms=3,
                lw=1.3,
                color=colours(position % 10),
                label=distance,
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("grating frequency (cycles/degree)")
        axis.set_title(f"background: {background}", fontsize=10)
        axis.grid(True, which="both", alpha=0.25)
        if examples is not None and background in examples:
            inset = axis.inset_axes((0.02, 0.02, 0.26, 0.26))
            inset.imshow(examples[background], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
    axes.flat[0].set_ylabel(f"sensitivity / peak on {reference}")
    axes.flat[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    figure.suptitle("Each distance's contrast sensitivity (1 / detection threshold) against the human CSF")
    figure.tight_layout()
    return figure


def subsets_figure(summary: pd.DataFrame, references: Mapping[str, float] | None = None) -> Figure:
    """Log-correlation with the human CSF of k top-VFSS, bottom-VFSS and random maps, against k.

    Args:
        summary: the frame of :func:`psychovis.psychophysics.subset_summary`
            (``k, selection, mean, std, count``).
        references: optional label -> log-correlation drawn as horizontal lines (e.g. all maps
            uniformly weighted, VFSS-weighted).

    Returns:
        The figure.
    """
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for selection, rows in summary.groupby("selection", sort=False):
        rows = rows.sort_values("k")
        colour = SELECTION_COLOURS.get(str(selection))
        axis.plot(rows["k"], rows["mean"], marker="o", color=colour, label=str(selection))
        if (rows["std"] > 0).any():
            axis.fill_between(
                rows["k"], rows["mean"] - rows["std"], rows["mean"] + rows["std"], color=colour, alpha=0.2, lw=0
            )
    styles = iter(["--", ":", "-."])
    for label, value in (references or {}).items():
        if value == value:  # skip NaN
            axis.axhline(value, color="black", ls=next(styles, "--"), lw=1, label=label)
    axis.set_xscale("log", base=2)
    axis.set_xticks(sorted(summary["k"].unique()), [str(k) for k in sorted(summary["k"].unique())])
    axis.set_xlabel("feature maps kept (k)")
    axis.set_ylabel("log-correlation with the human CSF")
    axis.set_title("Which maps make a human-like CSF? (random: mean ± std over seeds)", fontsize=10)
    axis.grid(True, alpha=0.25)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
