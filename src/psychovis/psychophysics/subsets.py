"""The map-subset curve: are the k top-VFSS maps more human-like than the k bottom or k random ones?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from psychovis.distances.engine import selection_weights, selections, weighted_errors
from psychovis.errors import ParamsError
from psychovis.psychophysics.grid import DistanceGrid
from psychovis.psychophysics.thresholds import find_thresholds, sensitivity_scores


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
    if not grid.map_errors:
        raise ValueError("the grid holds no per-map errors: include a PsychovisualLoss distance (e.g. 'vgg')")
    if background not in grid.backgrounds:
        raise ValueError(f"background {background!r} is not in the grid {grid.backgrounds}")
    chosen = selections(ks, seeds)
    layers = list(grid.map_errors)
    for layer in layers:
        if layer not in vfss_scores:
            raise ParamsError(f"no VFSS scores for layer {layer}")
        if len(vfss_scores[layer]) != grid.map_errors[layer].shape[-1]:
            raise ParamsError(
                f"{layer} has {grid.map_errors[layer].shape[-1]} maps but {len(vfss_scores[layer])} VFSS scores"
            )
    b = grid.backgrounds.index(background)
    distances = np.zeros((len(chosen), grid.frequency_cpd.size, grid.contrasts.size))
    criterion = np.zeros(len(chosen))
    for layer in layers:
        weights = selection_weights(vfss_scores[layer], chosen)
        distances += np.moveaxis(weighted_errors(grid.map_errors[layer][b], weights), -1, 0)
        criterion += weighted_errors(grid.map_criterion[layer], weights)
    threshold, _ = find_thresholds(grid.contrasts, distances, criterion[:, None])
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
