"""The map-subset curve: are the k top-VFSS maps more human-like than the k bottom or k random ones?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from psychovis.distances.engine import selections
from psychovis.psychophysics.grid import DistanceGrid
from psychovis.psychophysics.robustness import selection_thresholds
from psychovis.psychophysics.thresholds import sensitivity_scores


def subset_curve(
    grid: DistanceGrid,
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int] = (8, 16, 32, 64, 128),
    seeds: int | Sequence[int] = 5,
    background: str = "grey",
    csf: str = "mannos_sakrison_code",
) -> pd.DataFrame:
    """How human-like is the "CSF" of the k top-VFSS maps, the k bottom ones, and k random ones?

    Each selection is the VGG distance restricted to its maps (a binary mask rescaled to mean 1,
    as :class:`~psychovis.distances.loss.PsychovisualLoss` does), computed from the grid's per-map errors
    with no further forward pass, thresholded against its own criterion and scored with
    :func:`sensitivity_scores`.

    Args:
        grid: from :func:`distance_grid` with at least one ``PsychovisualLoss`` distance (its
            layers are the layers used here).
        vfss_scores: layer -> VFSS of each map, in channel order.
        ks: numbers of maps per layer (``min(k, maps)`` in a smaller layer).
        seeds: the ``randomk`` seeds, or how many (``0 .. seeds-1``).
        background: the background to score on.
        csf: the human CSF model.

    Returns:
        Columns ``k, selection, seed, log_correlation, peak_frequency_cpd, falloff_slope``: one row
        per ``topk`` and ``bottomk`` selection (``seed`` missing, ``<NA>``), one per seed for
        ``randomk``. Summarise with :func:`subset_summary`.

    Raises:
        ValueError: the grid has no per-map errors, or ``background`` is not in it.
        ParamsError: missing scores, scores of the wrong length, or a bad ``k``.
    """
    chosen = selections(ks, seeds)
    threshold = selection_thresholds(grid, vfss_scores, chosen, background)
    rows = []
    for (k, selection, seed), curve in zip(chosen, threshold, strict=True):
        scores = sensitivity_scores(grid.frequency_cpd, 1.0 / curve, csf)
        rows.append({"k": int(k), "selection": selection, "seed": seed, **scores})
    frame = pd.DataFrame(rows).drop(columns="frequencies")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def subset_summary(subsets: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the log-correlation per ``(k, selection)``.

    Args:
        subsets: the frame of :func:`subset_curve`.

    Returns:
        Columns ``k, selection, mean, std, count`` (std 0 for a single deterministic selection).
    """
    summary = (
        subsets.groupby(["k", "selection"], sort=False)["log_correlation"].agg(["mean", "std", "count"]).reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    return summary
