"""Figures of the ModelFest stage: thresholds per stimulus (people vs models) and the px/deg sweep."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from psychovis.modelfest.stimuli import FAMILIES


def thresholds_figure(
    people: np.ndarray, per_stimulus: pd.DataFrame, observers: Sequence[str], px_per_degree: float
) -> Figure:
    """Threshold (dB) per stimulus: each person (grey), their mean, and each model at the mean person's criterion."""
    figure, axis = plt.subplots(figsize=(11, 4.2))
    x = np.arange(1, people.shape[1] + 1)
    for row in people:
        axis.plot(x, row, color="0.8", lw=0.6, zorder=1)
    axis.plot(x, people.mean(axis=0), color="k", lw=2, marker="o", ms=3, label="people (mean of 16)", zorder=3)
    for name in observers:
        rows = per_stimulus[per_stimulus["observer"] == name].sort_values("stimulus")
        if len(rows):
            axis.plot(rows["stimulus"], rows["threshold_db"], lw=1.2, marker=".", label=name, zorder=2)
    for members in FAMILIES.values():
        axis.axvline(min(members) - 0.5, color="0.9", lw=0.5, zorder=0)
    axis.set_xlabel("ModelFest stimulus")
    axis.set_ylabel("threshold (dB re contrast 1; lower = more sensitive)")
    axis.set_title(f"ModelFest thresholds at {px_per_degree:g} px/deg: people and observers (one criterion each)")
    axis.set_xticks(x[::2])
    axis.legend(fontsize=7, ncol=3, loc="upper left")
    figure.tight_layout()
    return figure


def sweep_figure(sweep: pd.DataFrame, human_db: float, floor_db: float, headline_ppd: float) -> Figure:
    """RMS dB of each observer against px/deg (a sensitivity analysis; never fitted in the headline)."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for name, rows in sweep.groupby("observer", sort=False):
        rows = rows.sort_values("px_per_degree")
        axis.plot(rows["px_per_degree"], rows["rms_db"], marker="o", ms=3, label=name)
    axis.axhline(human_db, color="k", ls="--", lw=1, label="person vs the other 15")
    axis.axhline(floor_db, color="k", ls=":", lw=1, label="noise floor of the mean")
    axis.axvline(headline_ppd, color="0.6", lw=0.8)
    axis.axvline(61.8, color="0.6", lw=0.8, ls=":")
    axis.text(61.8, axis.get_ylim()[1], " paper effective", fontsize=7, va="top")
    axis.set_xscale("log")
    axis.set_xlabel("px per degree of the rendering (the data's own: 120)")
    axis.set_ylabel("RMS error (dB), one criterion per person")
    axis.set_title("ModelFest error against viewing geometry")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
