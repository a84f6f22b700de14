"""Figures of the tuning atlas: response heat maps, parameter distributions, orientation polar
plots, VFSS against preferred frequency with the CSF, the CSF/geometry sensitivity and LPIPS."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from psychovis.atlas.responses import ResponseGrid
from psychovis.atlas.sensitivity import csf_curve
from psychovis.plots import contact_sheet


def _grid(count: int, columns: int, width: float, height: float, **kwargs) -> tuple[Figure, np.ndarray]:
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * width, rows * height), squeeze=False, **kwargs)
    for axis in axes.flat[count:]:
        axis.axis("off")
    return figure, axes


def response_heatmaps(curves: np.ndarray, frequency_cpp: np.ndarray, table: pd.DataFrame, backbone: str) -> Figure:
    """Per layer, maps x frequency: each map's curve scaled to [0, 1], rows sorted by preferred frequency.

    Unreliable maps are left out (they have no tuning to show); rows are ordered by the fitted
    preferred frequency, maps without a fitted bump last, ties by the grid peak.
    """
    layers = list(pd.unique(table["layer"]))
    figure, axes = _grid(len(layers), min(5, len(layers)), 2.6, 2.8)
    log_f = np.log2(frequency_cpp)
    extent = (log_f[0], log_f[-1], 0, 1)
    image = None
    for axis, layer in zip(axes.flat, layers, strict=False):
        rows = np.flatnonzero((table["layer"] == layer).to_numpy() & table["reliable"].to_numpy())
        axis.set_title(f"{layer} ({len(rows)}/{int((table['layer'] == layer).sum())})", fontsize=8)
        if rows.size:
            chosen = curves[rows]
            low, high = chosen.min(axis=1, keepdims=True), chosen.max(axis=1, keepdims=True)
            normalised = (chosen - low) / np.where(high > low, high - low, 1.0)
            preferred = table["preferred_frequency_cpp"].to_numpy()[rows]
            peak = table["peak_frequency_cpp"].to_numpy()[rows]
            order = np.lexsort((peak, np.nan_to_num(preferred, nan=np.inf)))
            image = axis.imshow(
                normalised[order], aspect="auto", origin="lower", extent=extent, cmap="magma", vmin=0, vmax=1
            )
        ticks = np.arange(math.ceil(log_f[0] / 2) * 2, math.floor(log_f[-1]) + 1, 2)  # every 2 octaves
        axis.set_xticks(ticks, [f"{2.0**t:.3g}" for t in ticks], fontsize=6)
        axis.set_yticks([])
        axis.set_xlabel("cycles/pixel", fontsize=7)
    figure.suptitle(f"{backbone}: frequency tuning of every reliable map (rows sorted by preferred frequency)")
    figure.subplots_adjust(hspace=0.45, wspace=0.15, top=0.85 if axes.shape[0] == 1 else 0.92)
    if image is not None:  # after the layout: the colour bar takes its space from the axes
        figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="normalised response")
    return figure


def distributions(table: pd.DataFrame, frequency_cpp: np.ndarray, backbone: str) -> Figure:
    """Per layer: preferred frequency (band-pass maps), bandwidth and circular variance (box plots)."""
    layers = list(pd.unique(table["layer"]))
    band = table[table["tuning_class"] == "band-pass"]
    reliable = table[table["reliable"]]
    panels = [
        (band, "preferred_frequency_cpp", "preferred frequency (cycles/pixel)\nband-pass maps", True),
        (band, "bandwidth_octaves", "bandwidth (octaves, FWHM)\nband-pass maps", True),
        (reliable, "circular_variance", "circular variance\n(0 = selective, 1 = flat)", False),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.2), squeeze=False)
    for axis, (frame, column, label, log) in zip(axes.flat, panels, strict=True):
        data = [frame.loc[frame["layer"] == layer, column].dropna().to_numpy() for layer in layers]
        positions = [i + 1 for i, values in enumerate(data) if values.size]
        axis.boxplot([values for values in data if values.size], positions=positions, showfliers=False, widths=0.6)
        for position, values in zip(positions, [v for v in data if v.size], strict=True):
            jitter = np.random.default_rng(position).uniform(-0.2, 0.2, values.size)
            axis.plot(position + jitter, values, ".", color="tab:blue", alpha=0.15, ms=2)
        axis.set_xticks(range(1, len(layers) + 1), layers, rotation=60, fontsize=7)
        axis.set_ylabel(label, fontsize=8)
        if log:
            axis.set_yscale("log", base=2)
        if column == "preferred_frequency_cpp":
            axis.axhspan(frequency_cpp[0], frequency_cpp[-1], color="0.93", zorder=-1)
    figure.suptitle(f"{backbone}: fitted tuning by layer")
    figure.tight_layout()
    return figure


def orientation_polar(grid: ResponseGrid, table: pd.DataFrame, per_layer: int = 8, backbone: str = "") -> Figure:
    """Orientation tuning at the preferred frequency of example maps, as polar plots.

    One row per layer (at most four layers, spread over depth); in each row the ``per_layer``
    reliable maps spread over circular variance, most selective first. Orientation is
    180-periodic, so each curve is drawn over 0..360 deg (theta and theta + 180).
    """
    layers = list(pd.unique(table["layer"]))
    layers = [layers[i] for i in sorted({round(x) for x in np.linspace(0, len(layers) - 1, min(4, len(layers)))})]
    figure, axes = plt.subplots(
        len(layers), per_layer, figsize=(1.7 * per_layer, 1.9 * len(layers)), subplot_kw={"projection": "polar"},
        squeeze=False,
    )  # fmt: skip
    theta = np.deg2rad(np.concatenate([grid.orientation_deg, grid.orientation_deg + 180.0, grid.orientation_deg[:1]]))
    for row_axes, layer in zip(axes, layers, strict=True):
        rows = np.flatnonzero((table["layer"] == layer).to_numpy() & table["reliable"].to_numpy())
        order = rows[np.argsort(table["circular_variance"].to_numpy()[rows], kind="stable")]
        picks = order[np.linspace(0, len(order) - 1, min(per_layer, len(order))).astype(int)] if len(order) else []
        for axis in row_axes:
            axis.set_xticks([])
            axis.set_yticks([])
        for axis, row in zip(row_axes, picks, strict=False):
            f_pref, _ = np.unravel_index(np.nanargmax(grid.responses[row]), grid.responses[row].shape)
            curve = grid.responses[row, f_pref]  # at the preferred frequency, as the circular variance
            values = np.concatenate([curve, curve, curve[:1]])
            axis.plot(theta, values, color="tab:red", lw=1)
            axis.fill(theta, values, color="tab:red", alpha=0.2)
            cv = table["circular_variance"].iloc[row]
            axis.set_title(f"{layer}:{table['channel'].iloc[row]}\nCV {cv:.2f}", fontsize=6)
    figure.suptitle(f"{backbone}: orientation tuning at the preferred frequency (0 deg = vertical bars)", fontsize=9)
    figure.tight_layout()
    return figure


def vfss_vs_frequency(table: pd.DataFrame, cpd_range: tuple[float, float], csf: str, backbone: str) -> Figure:
    """VFSS of every reliable map against its fitted preferred frequency (cpd), with the CSF overlaid."""
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    layers = list(pd.unique(table["layer"]))
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(layers), 2)))
    fitted = table[table["reliable"] & table["peak_in_range"]]  # f0 outside the probed range is unconstrained
    for colour, layer in zip(colours, layers, strict=False):
        maps = fitted[fitted["layer"] == layer]
        axis.scatter(maps["preferred_frequency_cpd"], maps["vfss"], s=5, color=colour, alpha=0.6, label=layer)
    axis.set_xscale("log")
    axis.set_xlabel("fitted preferred frequency (cycles/degree)")
    axis.set_ylabel("atlas VFSS (linear gratings, log axis; not the paper's)")
    axis.axvspan(*cpd_range, color="0.95", zorder=-1)
    twin = axis.twinx()
    grid = np.geomspace(max(cpd_range[0] / 4, 0.05), cpd_range[1] * 2, 300)
    twin.plot(grid, csf_curve(grid, csf), color="tab:red", lw=2, label=f"CSF ({csf})")
    twin.set_ylabel("CSF (normalised to peak 1)", color="tab:red")
    twin.set_ylim(0, 1.05)
    axis.legend(fontsize=6, ncol=2, markerscale=3, loc="upper left")
    axis.set_title(
        f"{backbone}: VFSS vs fitted preferred frequency, {len(fitted)} maps with f0 in the probed range (shaded)",
        fontsize=9,
    )
    figure.tight_layout()
    return figure


def sensitivity_heatmap(sensitivity: pd.DataFrame, reference: str, backbone: str) -> Figure:
    """Spearman correlation of VFSS with the reference variant, per layer x variant."""
    chosen = sensitivity[sensitivity["reference"] == reference]
    table = chosen.pivot(index="layer", columns="variant", values="spearman_vfss")
    table = table.reindex(index=list(pd.unique(chosen["layer"])), columns=list(pd.unique(chosen["variant"])))
    figure, axis = plt.subplots(figsize=(3.0 + 0.7 * table.shape[1], 2.2 + 0.3 * table.shape[0]))
    image = axis.imshow(
        table.to_numpy(), cmap="viridis", vmin=min(0.0, np.nanmin(table.to_numpy())), vmax=1, aspect="auto"
    )
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w" if value < 0.7 else "k")
    axis.set_xticks(
        range(table.shape[1]), [name.replace("|", " | ") for name in table.columns], fontsize=6, rotation=90
    )
    axis.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    figure.colorbar(image, ax=axis, label="Spearman of VFSS (= of L1 weights)")
    axis.set_title(f"{backbone}: VFSS rank agreement with {reference.replace('|', ' + ')}", fontsize=9)
    figure.tight_layout()
    return figure


def lpips_scatter(table: pd.DataFrame, heads: dict[str, np.ndarray], agreement: pd.DataFrame, backbone: str) -> Figure:
    """Per LPIPS layer: each map's LPIPS linear weight against its VFSS."""
    layers = [layer for layer in heads if (table["layer"] == layer).any()]
    figure, axes = _grid(max(len(layers), 1), max(min(5, len(layers)), 1), 3.0, 2.8)
    for axis, layer in zip(axes.flat, layers, strict=False):
        maps = table[table["layer"] == layer].sort_values("channel")
        axis.scatter(maps["vfss"], np.asarray(heads[layer]).reshape(-1), s=4, alpha=0.5)
        row = agreement[agreement["layer"] == layer]
        rho = float(row["spearman_vfss"].iloc[0]) if len(row) else float("nan")
        axis.set_title(f"{layer}: Spearman {rho:.2f}", fontsize=8)
        axis.set_xlabel("atlas VFSS", fontsize=7)
        axis.set_ylabel("LPIPS weight", fontsize=7)
    figure.suptitle(f"{backbone}: LPIPS linear head vs atlas VFSS (linear gratings, log axis; not the paper's)")
    figure.tight_layout()
    return figure


def stimulus_sheet(images: np.ndarray, labels: list[str]) -> Figure:
    """Thumbnails of a few atlas stimuli."""
    return contact_sheet(images, labels, min(8, len(images)), title="Atlas stimuli (examples)", fontsize=6)
