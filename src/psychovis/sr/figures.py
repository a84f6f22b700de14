"""Figures of the super-resolution task: loss curves, side-by-side crops, error per frequency band."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator


def loss_curve(curve: pd.DataFrame, loss: str, details: str = "") -> Figure:
    """Training loss terms over steps; ``details`` (the run's settings) goes under the title.

    Two runs' figures then differ whenever their settings do, which also keeps concurrent queued
    experiments from committing one identical new file at once (DVC's shared-cache race, README).
    """
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for column in [name for name in ("loss", "pixel", "perceptual") if name in curve]:
        axis.plot(curve["step"], curve[column], label=column)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_title(f"training loss: {loss}" + (f"\n{details}" if details else ""), fontsize=10)
    axis.legend()
    return figure


def comparison_crops(
    references: Mapping[str, np.ndarray], outputs: Mapping[str, Mapping[str, np.ndarray]], crop: int
) -> Figure:
    """Rows: test images; columns: the HR reference, then each method, on the same central crop."""
    methods = ["HR", *outputs]
    figure, axes = plt.subplots(
        len(references), len(methods), figsize=(2.2 * len(methods), 2.3 * len(references)), squeeze=False
    )
    for row, (name, reference) in enumerate(references.items()):
        height, width = reference.shape[:2]
        top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
        window = (slice(top, top + crop), slice(left, left + crop))
        for column, method in enumerate(methods):
            image = reference if method == "HR" else outputs[method][name]
            axes[row, column].imshow(np.clip(image[window], 0, 1), interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if row == 0:
                axes[row, column].set_title(method, fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=8)
    figure.tight_layout()
    return figure


def band_errors(per_band: pd.DataFrame) -> Figure:
    """Mean relative error (dB) per spatial-frequency band, one line per method."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    grouped = per_band.groupby(["method", "band"], sort=False).agg(
        centre=("high_cpp", "first"), low=("low_cpp", "first"), error=("relative_error_db", "mean")
    )
    for method, frame in grouped.groupby(level="method", sort=False):
        centre = np.sqrt(frame["low"] * frame["centre"])
        axis.plot(centre, frame["error"], marker="o", label=method)
    axis.set_xscale("log")
    axis.set_xlabel("spatial frequency (cycles/pixel)")
    axis.set_ylabel("error / signal power (dB)")
    axis.set_title("Reconstruction error per frequency band (lower is better)")
    axis.legend()
    return figure


VERDICT_COLOURS: dict[str, str] = {
    "better": "tab:green",
    "worse": "tab:red",
    "no detectable difference": "tab:grey",
}
"""Colour of each verdict of :func:`psychovis.statistics.paired_differences` in :func:`forest_plot`."""


def forest_plot(table: pd.DataFrame) -> Figure:
    """Paired differences with their CIs: one small panel per judge, one row per comparison.

    Judges have their own units (dB of PSNR, SSIM, LPIPS distance), so each judge gets its own
    panel and x axis instead of one shared, rescaled axis: a row reads in the judge's units, and
    the zero line (no difference) is drawn in every panel. Rows (``method vs baseline``) are in the
    same order in every panel, so one comparison can be followed across judges.

    Args:
        table: :func:`psychovis.statistics.paired_differences` output (one or several baselines
            concatenated): ``method, baseline, judge, mean, ci_low, ci_high, n, higher_is_better,
            verdict``, and optionally ``level, resamples, resample_unit`` for the title.

    Returns:
        The figure: point = mean difference, bar = CI, colour = verdict; positive = the method is
        better (lower-is-better judges are already sign-flipped, which each panel's title says).
    """
    judges = list(dict.fromkeys(table["judge"]))
    comparisons = list(dict.fromkeys(zip(table["method"], table["baseline"], strict=True)))
    baselines = list(dict.fromkeys(table["baseline"]))
    position = {comparison: row for row, comparison in enumerate(comparisons)}
    columns = max(1, min(5, len(judges)))
    grid_rows = max(1, -(-len(judges) // columns))
    figure, axes = plt.subplots(
        grid_rows,
        columns,
        figsize=(2.9 * columns + 1.2, (0.26 * len(comparisons) + 1.1) * grid_rows + 0.8),
        sharey=True,
        squeeze=False,
    )
    for index, axis in enumerate(axes.flat):
        if index >= len(judges):
            axis.set_visible(False)
            continue
        judge = judges[index]
        rows = table[table["judge"] == judge]
        for verdict, colour in VERDICT_COLOURS.items():
            chosen = rows[rows["verdict"] == verdict]
            if chosen.empty:
                continue
            y = [position[key] for key in zip(chosen["method"], chosen["baseline"], strict=True)]
            errors = np.vstack([chosen["mean"] - chosen["ci_low"], chosen["ci_high"] - chosen["mean"]])
            axis.errorbar(chosen["mean"], y, xerr=errors, fmt="o", color=colour, markersize=4, capsize=2, lw=1.2)
        axis.axvline(0.0, color="black", lw=0.8, zorder=0, gid="zero")
        lower_is_better = not bool(rows["higher_is_better"].iloc[0]) if len(rows) else False
        axis.set_title(f"{judge}" + ("\n(lower is better: sign flipped)" if lower_is_better else ""), fontsize=9)
        axis.tick_params(labelsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(nbins=4))  # few ticks: small differences have long labels
        axis.grid(axis="x", alpha=0.3)
        # A thin rule between the comparisons of one baseline and the next.
        for row in range(1, len(comparisons)):
            if comparisons[row][1] != comparisons[row - 1][1]:
                axis.axhline(row - 0.5, color="grey", lw=0.5, ls=":")
    labels = [method if len(baselines) == 1 else f"{method} vs {baseline}" for method, baseline in comparisons]
    first = axes[0, 0]
    first.set_yticks(range(len(comparisons)), labels)
    first.set_ylim(len(comparisons) - 0.5, -0.5)  # first comparison on top
    versus = baselines[0] if len(baselines) == 1 else "baseline"
    figure.supxlabel(f"difference vs {versus} (positive = better)", fontsize=10)
    handles = [
        Line2D([], [], marker="o", ls="", color=colour, label=verdict) for verdict, colour in VERDICT_COLOURS.items()
    ]
    figure.legend(handles=handles, loc="lower right", fontsize=8, frameon=False, ncols=3)
    figure.suptitle(_forest_title(table, baselines), fontsize=10)
    figure.tight_layout()
    return figure


def _forest_title(table: pd.DataFrame, baselines: list[str]) -> str:
    """What the intervals are: level, resamples, resampling unit and the pairs used."""
    level = f"{100 * float(table['level'].iloc[0]):g} % " if "level" in table and len(table) else ""
    resamples = f", {int(table['resamples'].iloc[0])} resamples" if "resamples" in table and len(table) else ""
    unit = table["resample_unit"].iloc[0] if "resample_unit" in table and len(table) else "pair"
    over = "(seed, image) pairs" if unit == "pair" else f"{unit}s, then pairs within"
    counts = sorted(set(table["n"].astype(int))) if len(table) else [0]
    n = f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}-{counts[-1]}"
    return (
        f"Paired differences vs {', '.join(baselines) or 'baseline'}: mean and {level}percentile bootstrap CI "
        f"over {over}{resamples}; {n} pairs"
    )
