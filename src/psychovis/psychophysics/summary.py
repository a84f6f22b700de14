"""The psychophysics metrics file: each distance's CSF scores, masking and the map-subset curve, JSON-safe."""

from __future__ import annotations

import numpy as np
import pandas as pd

from psychovis.io import json_number
from psychovis.psychophysics.subsets import subset_summary


def summary_metrics(
    scores: pd.DataFrame, masking: pd.DataFrame | None = None, subsets: pd.DataFrame | None = None
) -> dict[str, dict[str, dict[str, float | None]]]:
    """The small nested dict for ``metrics/psychophysics.json`` (``dvc metrics``), JSON-safe.

    Args:
        scores: the frame of :func:`score_thresholds`.
        masking: optional frame of :func:`masking_table`; adds ``mean_threshold_elevation`` (the
            geometric mean over frequency of ``threshold / threshold on grey``) per background.
        subsets: optional frame of :func:`subset_curve`; adds ``subsets -> {selection}_k{k} ->
            {mean, std}`` of the log-correlation.

    Returns:
        ``distance -> background -> {log_correlation, peak_frequency_cpd, falloff_slope, ...}``
        with numbers rounded to 5 decimals and NaN as None.
    """
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in scores.itertuples(index=False):
        metrics.setdefault(str(row.distance), {})[str(row.background)] = {
            "log_correlation": json_number(row.log_correlation),
            "peak_frequency_cpd": json_number(row.peak_frequency_cpd),
            "falloff_slope": json_number(row.falloff_slope),
        }
    if masking is not None and len(masking):
        elevation = masking.groupby(["distance", "background"], sort=False)["threshold_elevation"].apply(
            lambda values: float(np.exp(np.log(values).mean()))
        )
        for (distance, background), value in elevation.items():
            metrics.setdefault(str(distance), {}).setdefault(str(background), {})["mean_threshold_elevation"] = (
                json_number(value)
            )
    if subsets is not None and len(subsets):
        metrics["subsets"] = {
            f"{row.selection}_k{row.k}": {"mean": json_number(row.mean), "std": json_number(row.std)}
            for row in subset_summary(subsets).itertuples(index=False)
        }
    return metrics
