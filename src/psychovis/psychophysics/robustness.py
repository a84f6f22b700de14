"""How firm is the psychophysics result? A random-subset null and every analysis choice varied.

The headline test asks whether the ``k`` top-VFSS maps give a more human-like "CSF" than the
``k`` bottom-VFSS maps. One pair of numbers says little on its own: this module puts them in the
distribution of ``k`` maps drawn at random (the null, hundreds of draws, nearly free because the
grid holds every map's error), and repeats the whole analysis over every choice the result could
hinge on:

- the criterion level (the reference contrast that sets each distance's detection criterion);
- the frequency range scored (all frequencies, or only those clear of Nyquist, where a grating
  has a few pixels per cycle and the network sees aliasing more than frequency);
- the human CSF it is compared with;
- a gain-normalised control: each map's error divided by its own error at the criterion, so a
  subset's distance counts every map equally whatever its response gain (VFSS ranks maps mostly
  by gain; if the ordering only carries gain, top and bottom become indistinguishable from random).

A top-k (bottom-k) percentile is where its score falls in the null: ``100 * P(null < score)``
(ties count half). Between the 2.5th and 97.5th percentile it is inside the null's 95 % band:
the selection is no more and no less human-like than ``k`` maps picked at random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from psychovis.csf import contrast_sensitivity
from psychovis.distances.engine import Selection, selection_weights, selections, weighted_errors
from psychovis.errors import ParamsError, quote
from psychovis.names import SUBSET_CONTROLS
from psychovis.psychophysics.grid import DistanceGrid
from psychovis.psychophysics.thresholds import FLAT_TOLERANCE_DECADES, find_thresholds
from psychovis.statistics import percentile_in

CONDITION = ["criterion_contrast", "control", "frequency_range", "csf"]
"""The columns that name one analysis condition in :func:`robustness_table`."""
BAND = (2.5, 97.5)
"""The percentiles of the null's 95 % band."""


def log_correlations(
    frequency_cpd: np.ndarray, sensitivity: np.ndarray, csf: str, use: np.ndarray | None = None
) -> np.ndarray:
    """The ``log_correlation`` of :func:`~psychovis.psychophysics.thresholds.sensitivity_scores`, for many curves.

    Args:
        frequency_cpd: ``(F,)`` frequencies.
        sensitivity: ``(S, F)`` curves; NaN, infinite or non-positive points are left out per curve.
        csf: the human CSF model.
        use: optional ``(F,)`` boolean mask of the frequencies to score.

    Returns:
        ``(S,)`` Pearson correlations of log sensitivity with log human sensitivity over each
        curve's valid frequencies: 0 for a flat curve, NaN with fewer than three valid points.
    """
    frequency = np.asarray(frequency_cpd, dtype=np.float64)
    values = np.atleast_2d(np.asarray(sensitivity, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = np.isfinite(values) & (values > 0)
        if use is not None:
            valid &= np.asarray(use, dtype=bool)[None, :]
        count = valid.sum(axis=1)
        log_s = np.where(valid, np.log10(np.where(valid, values, 1.0)), 0.0)
        log_h = np.broadcast_to(np.log10(contrast_sensitivity(frequency, csf)), values.shape)
        mean_s = log_s.sum(axis=1, keepdims=True) / np.maximum(count, 1)[:, None]
        mean_h = np.where(valid, log_h, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)[:, None]
        ds = np.where(valid, log_s - mean_s, 0.0)
        dh = np.where(valid, log_h - mean_h, 0.0)
        r = (ds * dh).sum(axis=1) / np.sqrt((ds**2).sum(axis=1) * (dh**2).sum(axis=1))
        spread = np.where(valid, log_s, -np.inf).max(axis=1) - np.where(valid, log_s, np.inf).min(axis=1)
    r = np.where(spread < FLAT_TOLERANCE_DECADES, 0.0, r)
    return np.where(count >= 3, r, np.nan)


def selection_thresholds(
    grid: DistanceGrid,
    vfss_scores: Mapping[str, np.ndarray],
    chosen: Sequence[Selection],
    background: str = "grey",
    level: int = 0,
    control: str = "raw",
) -> np.ndarray:
    """Detection thresholds of the VGG distance restricted to each selection of maps.

    Args:
        grid: a grid with per-map errors (:func:`~psychovis.psychophysics.grid.distance_grid`).
        vfss_scores: layer -> VFSS of each map.
        chosen: the selections (:func:`psychovis.distances.engine.selections`).
        background: the background scored.
        level: index of the criterion level in ``grid.criterion_contrasts``.
        control: ``raw`` (the distance as the loss computes it) or ``gain_normalised`` (each map's
            error divided by its own error at the criterion, so every map counts equally at the
            criterion; maps with no response to the reference grating are left out).

    Returns:
        ``(len(chosen), F)`` thresholds (NaN where the criterion is never reached).

    Raises:
        ParamsError: an unknown control, or scores that do not match the grid's layers.
        ValueError: the grid has no per-map errors or lacks the background or level.
    """
    if control not in SUBSET_CONTROLS:
        raise ParamsError(f"control must be one of {list(SUBSET_CONTROLS)}, got {quote(control)}")
    if not grid.map_errors:
        raise ValueError("the grid holds no per-map errors: include a PsychovisualLoss distance (e.g. 'vgg')")
    if background not in grid.backgrounds:
        raise ValueError(f"background {background!r} is not in the grid {grid.backgrounds}")
    b = grid.backgrounds.index(background)
    distances = np.zeros((len(chosen), grid.frequency_cpd.size, grid.contrasts.size))
    criterion = np.zeros(len(chosen))
    for layer, errors in grid.map_errors.items():
        scores = _layer_scores(vfss_scores, layer, errors.shape[-1])
        weights = selection_weights(scores, chosen)
        per_map, reference = errors[b], grid.map_criteria[layer][level]
        if control == "gain_normalised":
            alive = np.isfinite(reference) & (reference > 0)
            per_map = per_map * np.where(alive, 1.0 / np.where(alive, reference, 1.0), 0.0)
            reference = alive.astype(np.float64)
        distances += np.moveaxis(weighted_errors(per_map, weights), -1, 0)
        criterion += weighted_errors(reference, weights)
    threshold, _ = find_thresholds(grid.contrasts, distances, criterion[:, None])
    return threshold


def robustness_table(
    grid: DistanceGrid,
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    draws: int,
    csfs: Sequence[str],
    nyquist_safe_cpp: float,
    seed: int = 0,
    background: str = "grey",
    controls: Sequence[str] = SUBSET_CONTROLS,
) -> pd.DataFrame:
    """Every distance and map selection, scored under every analysis condition.

    Conditions are the product of the grid's criterion levels, ``controls`` (for map selections;
    the named distances are scored ``raw`` only), the frequency ranges ``full`` and
    ``nyquist_safe`` (frequencies at or below ``nyquist_safe_cpp`` cycles/pixel) and ``csfs``.

    Args:
        grid: from :func:`~psychovis.psychophysics.grid.distance_grid` with per-map errors.
        vfss_scores: layer -> VFSS of each map, in channel order.
        ks: maps per layer of the selections; each at most the size of every layer.
        draws: random-k draws per k (the null), seeds ``seed .. seed + draws - 1``.
        csfs: the human CSF models compared with.
        nyquist_safe_cpp: the highest frequency (cycles/pixel) of the ``nyquist_safe`` range.
        seed: the first random-k seed.
        background: the background scored.
        controls: the selection controls (see :func:`selection_thresholds`).

    Returns:
        Long frame: the :data:`CONDITION` columns, ``kind`` (``selection`` or ``distance``),
        ``name`` (``topk``/``bottomk``/``randomk`` or the distance), ``k`` and ``draw`` (``<NA>``
        where they do not apply) and ``log_correlation``.

    Raises:
        ParamsError: ``draws`` < 1, a ``k`` larger than a layer, or too few frequencies in range.
    """
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ParamsError(f"psychophysics.null_draws must be an integer >= 1, got {quote(draws)}")
    for layer, errors in grid.map_errors.items():
        too_big = [k for k in ks if k > errors.shape[-1]]
        if too_big:
            raise ParamsError(
                f"psychophysics.subset_ks {too_big} exceed the {errors.shape[-1]} maps of {layer}; "
                f"use values from 1 to {errors.shape[-1]}"
            )
    ranges = {"full": np.ones(grid.frequency_cpd.size, bool), "nyquist_safe": grid.frequency_cpp <= nyquist_safe_cpp}
    if ranges["nyquist_safe"].sum() < 3:
        raise ParamsError(
            f"only {int(ranges['nyquist_safe'].sum())} grating frequencies are at or below "
            f"psychophysics.nyquist_safe_cpp = {nyquist_safe_cpp}; at least 3 are needed"
        )
    chosen = selections(ks, list(range(seed, seed + int(draws))))
    names = [selection for _, selection, _ in chosen]
    k_column = pd.array([k for k, _, _ in chosen], dtype="Int64")
    draw_column = pd.array([None if s is None else s - seed for _, _, s in chosen], dtype="Int64")
    b = grid.backgrounds.index(background)
    frames = []
    for level, contrast in enumerate(grid.criterion_contrasts):
        distance_thresholds = {
            name: find_thresholds(grid.contrasts, values[b], grid.criteria[name][level])[0]
            for name, values in grid.values.items()
        }
        for control in controls:
            thresholds = selection_thresholds(grid, vfss_scores, chosen, background, level, control)
            for range_name, use in ranges.items():
                for csf in csfs:
                    condition = {
                        "criterion_contrast": float(contrast),
                        "control": control,
                        "frequency_range": range_name,
                        "csf": csf,
                    }
                    frames.append(
                        pd.DataFrame(
                            {
                                **condition,
                                "kind": "selection",
                                "name": names,
                                "k": k_column,
                                "draw": draw_column,
                                "log_correlation": log_correlations(grid.frequency_cpd, 1.0 / thresholds, csf, use),
                            }
                        )
                    )
                    if control != "raw":
                        continue
                    stacked = np.stack(list(distance_thresholds.values()))
                    frames.append(
                        pd.DataFrame(
                            {
                                **condition,
                                "kind": "distance",
                                "name": list(distance_thresholds),
                                "k": pd.array([None] * len(stacked), dtype="Int64"),
                                "draw": pd.array([None] * len(stacked), dtype="Int64"),
                                "log_correlation": log_correlations(grid.frequency_cpd, 1.0 / stacked, csf, use),
                            }
                        )
                    )
    return pd.concat(frames, ignore_index=True)


def select_condition(frame: pd.DataFrame, condition: Mapping[str, object]) -> pd.DataFrame:
    """The rows of ``frame`` (a robustness table or null summary) matching every ``column: value`` of ``condition``."""
    chosen = frame
    for column, value in condition.items():
        chosen = chosen[chosen[column] == value]
    return chosen


def null_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Top-k and bottom-k against the random-k null, per condition and k.

    Args:
        table: the frame of :func:`robustness_table`.

    Returns:
        One row per condition and ``k``: the :data:`CONDITION` columns, ``k``, ``draws`` (finite
        null values), ``null_low``/``null_median``/``null_high`` (2.5th, 50th, 97.5th
        percentiles), ``topk``, ``bottomk`` (their log-correlations), ``topk_percentile``,
        ``bottomk_percentile`` and ``gap`` (``topk - bottomk``).
    """
    selected = table[table["kind"] == "selection"]
    rows = []
    for key, group in selected.groupby([*CONDITION, "k"], sort=False):
        null = group.loc[group["name"] == "randomk", "log_correlation"].to_numpy(dtype=np.float64)
        finite = null[np.isfinite(null)]
        top = _single(group, "topk")
        bottom = _single(group, "bottomk")
        low, median, high = np.percentile(finite, [BAND[0], 50.0, BAND[1]]) if finite.size else (np.nan,) * 3
        rows.append(
            {
                **dict(zip([*CONDITION, "k"], key, strict=True)),
                "draws": int(finite.size),
                "null_low": float(low),
                "null_median": float(median),
                "null_high": float(high),
                "topk": top,
                "bottomk": bottom,
                "topk_percentile": percentile_in(finite, top),
                "bottomk_percentile": percentile_in(finite, bottom),
                "gap": top - bottom,
            }
        )
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["k"] = frame["k"].astype("int64")
    return frame


def inside_band(percentile: float) -> bool:
    """Whether a percentile lies inside the null's 95 % band (:data:`BAND`)."""
    return bool(BAND[0] <= percentile <= BAND[1])


def _single(group: pd.DataFrame, name: str) -> float:
    values = group.loc[group["name"] == name, "log_correlation"].to_numpy(dtype=np.float64)
    return float(values[0]) if values.size else float("nan")


def _layer_scores(vfss_scores: Mapping[str, np.ndarray], layer: str, maps: int) -> np.ndarray:
    if layer not in vfss_scores:
        raise ParamsError(f"no VFSS scores for layer {layer}")
    scores = np.asarray(vfss_scores[layer], dtype=np.float64)
    if scores.shape != (maps,):
        raise ParamsError(f"{layer} has {maps} maps but {scores.size} VFSS scores")
    return scores
