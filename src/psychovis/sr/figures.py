"""Figures of the super-resolution task: loss curves, side-by-side crops, error per frequency band."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def loss_curve(curve: pd.DataFrame, loss: str) -> Figure:
    """Training loss terms over steps."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for column in [name for name in ("loss", "pixel", "perceptual") if name in curve]:
        axis.plot(curve["step"], curve[column], label=column)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_title(f"training loss: {loss}")
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
