"""Figures of the psychophysical test: each distance's "CSF" against the human one, and map subsets."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TABLEAU_COLORS, to_hex
from matplotlib.figure import Figure

from psychovis.csf import contrast_sensitivity
from psychovis.names import SELECTION_COLOURS
from psychovis.psychophysics.robustness import select_condition


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


def subsets_figure(nulls: pd.DataFrame, panels: Mapping[str, Mapping[str, object]]) -> Figure:
    """Top-k and bottom-k VFSS maps against the random-k null, one panel per analysis condition.

    Args:
        nulls: the frame of :func:`psychovis.psychophysics.robustness.null_summary`.
        panels: title -> condition (values of the ``CONDITION`` columns) of each panel.

    Returns:
        The figure: the null's 95 % band and median, top-k and bottom-k log-correlation, against k.
    """
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True, squeeze=False)
    for axis, (title, condition) in zip(axes[0], panels.items(), strict=True):
        rows = select_condition(nulls, condition).sort_values("k")
        draws = int(rows["draws"].min()) if len(rows) else 0
        _null_and_selections(axis, rows, "k", f"random k: 95 % band ({draws} draws)", "")
        axis.plot(
            rows["k"], rows["null_median"], color=SELECTION_COLOURS["randomk"], ls="--", lw=1, label="random k: median"
        )
        axis.set_xscale("log", base=2)
        ks = sorted(rows["k"].unique())
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.set_xlabel("feature maps kept (k)")
        axis.set_title(title, fontsize=9)
        axis.grid(True, alpha=0.25)
    axes[0][0].set_ylabel("log-correlation with the human CSF")
    axes[0][0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def criterion_sweep_figure(table: pd.DataFrame, nulls: pd.DataFrame, k: int, condition: Mapping[str, object]) -> Figure:
    """Log-correlation with the human CSF against the criterion level, for every distance and the k-map tests.

    Args:
        table: the frame of :func:`psychovis.psychophysics.robustness.robustness_table`.
        nulls: its :func:`~psychovis.psychophysics.robustness.null_summary`.
        k: the map-subset size drawn.
        condition: the fixed ``control``, ``frequency_range`` and ``csf``.

    Returns:
        The figure, criterion contrast on a log axis.
    """
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    chosen = select_condition(nulls[nulls["k"] == k], condition).sort_values("criterion_contrast")
    fixed = select_condition(table, condition)
    _null_and_selections(axis, chosen, "criterion_contrast", f"random {k} maps: 95 % band", f" ({k} maps)")
    distances = fixed[fixed["kind"] == "distance"]
    for name, rows in distances.groupby("name", sort=False):
        if name == "pixel_mse" or name in SELECTION_COLOURS:
            continue  # pixel MSE is flat by construction; the selections are drawn above
        rows = rows.sort_values("criterion_contrast")
        axis.plot(rows["criterion_contrast"], rows["log_correlation"], marker=".", lw=1, label=str(name))
    axis.set_xscale("log")
    axis.set_xlabel("criterion: contrast of the reference grating (8 cpd on grey)")
    axis.set_ylabel("log-correlation with the human CSF")
    axis.set_title("Each distance's agreement with the human CSF, by criterion level", fontsize=10)
    axis.grid(True, alpha=0.25)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def geometry_sweep_figure(sweep: pd.DataFrame, csf: str, as_run: float, background: str = "grey") -> Figure:
    """Each distance's log-correlation with the human CSF against the viewing geometry (px/deg, log axis).

    Args:
        sweep: the frame of :func:`~psychovis.psychophysics.thresholds.geometry_sweep`.
        csf: the human CSF drawn.
        as_run: the geometry the stimuli were rendered at (a dashed line).
        background: the background drawn.

    Returns:
        The figure.
    """
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    rows = sweep[(sweep["csf"] == csf) & (sweep["background"] == background)]
    # the selections keep their colours; the other distances take the rest of tab10 (compared as RGB:
    # "tab:grey" and "tab:gray" are one colour)
    taken = {to_hex(colour) for colour in SELECTION_COLOURS.values()}
    others = iter(colour for colour in TABLEAU_COLORS if to_hex(colour) not in taken)
    for name, curve in rows.groupby("distance", sort=False):
        if name == "pixel_mse":
            continue  # flat by construction: no correlation at any geometry
        curve = curve.sort_values("px_per_degree")
        colour = SELECTION_COLOURS.get(str(name)) or next(others, None)
        axis.plot(curve["px_per_degree"], curve["log_correlation"], marker="o", lw=1, color=colour, label=str(name))
    axis.axvline(as_run, color="black", ls="--", lw=1, label=f"as rendered ({as_run:.3g} px/deg)")
    axis.axhline(0.0, color="grey", lw=0.8)
    axis.set_xscale("log")
    # label the sweep's geometries, but not one that would overprint the rendered geometry's label
    geometries = [v for v in sorted(set(rows["px_per_degree"])) if v == as_run or abs(np.log(v / as_run)) > 0.1]
    axis.set_xticks(geometries, [f"{value:.3g}" for value in geometries])
    axis.minorticks_off()
    axis.set_xlabel("viewing geometry (pixels per degree)")
    axis.set_ylabel(f"log-correlation with the human CSF ({csf})")
    axis.set_title(f"Agreement with the human CSF depends on the assumed geometry ({background})", fontsize=10)
    axis.grid(True, alpha=0.25)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def _null_and_selections(axis: plt.Axes, rows: pd.DataFrame, x: str, band_label: str, suffix: str) -> None:
    """The random-subset null's 95 % band and the top-k and bottom-k lines of ``rows`` against column ``x``."""
    colour = SELECTION_COLOURS["randomk"]
    axis.fill_between(rows[x], rows["null_low"], rows["null_high"], color=colour, alpha=0.25, lw=0, label=band_label)
    for selection in ("topk", "bottomk"):
        axis.plot(
            rows[x], rows[selection], marker="o", color=SELECTION_COLOURS[selection], label=f"{selection}{suffix}"
        )
