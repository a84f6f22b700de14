"""Visual Frequency Sensitivity Score (VFSS) of feature maps, and weights derived from it.

VFSS of map j with tuning curve ``a_j`` sampled at frequencies ``f_i`` is
``sum_i CSF(f_i) * |gradient(a_j)_i|``, where ``gradient`` is numpy's (and MATLAB's) with unit
spacing: a map scores high when its response changes where human sensitivity is high.

References:
    Tariq, Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual Metrics and
    A Novel Psychovisual Loss", arXiv:1812.00412, and the authors' MATLAB code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from psychovis.csf import contrast_sensitivity
from psychovis.errors import ParamsError, quote
from psychovis.names import SELECTIONS, VFSS_NORMALISATIONS
from psychovis.validation import integer_at_least


def vfss_scores(responses: np.ndarray, frequency_cpd: np.ndarray, csf: str = "mannos_sakrison_code") -> np.ndarray:
    """VFSS of each tuning curve.

    Args:
        responses: tuning curves of shape ``(maps, frequencies)``, frequencies increasing.
        frequency_cpd: the frequency axis in cycles/degree, shape ``(frequencies,)``.
        csf: a CSF model name (see :data:`psychovis.csf.CSF_MODELS`).

    Returns:
        Scores of shape ``(maps,)``.

    Raises:
        ValueError: a wrong shape, fewer than two frequencies, or a non-finite response (the
            authors' code turns NaN into a score of 0, which silently ranks a broken map last;
            here a NaN or infinite response is an error naming the first bad map).
    """
    responses = np.asarray(responses, dtype=np.float64)
    frequency_cpd = np.asarray(frequency_cpd, dtype=np.float64)
    if responses.ndim != 2 or responses.shape[1] != frequency_cpd.shape[0]:
        raise ValueError(f"responses must have shape (maps, {frequency_cpd.shape[0]}), got {responses.shape}")
    if responses.shape[1] < 2:
        raise ValueError("VFSS needs at least two frequencies")
    bad = ~np.isfinite(responses).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} tuning curve(s) hold NaN or infinite responses (first: map {int(np.argmax(bad))}); "
            "rerun the features stage (`dvc repro features`) or check its input"
        )
    sensitivity = contrast_sensitivity(frequency_cpd, csf)
    slope = np.abs(np.gradient(responses, axis=1))
    return slope @ sensitivity


def normalised_vfss(scores: np.ndarray, mean_response: np.ndarray) -> np.ndarray:
    """VFSS divided by each map's mean response: the shape of its tuning, not its gain.

    VFSS sums ``|gradient|`` of the raw tuning curve, so it scales with a map's response level: at
    relu3_2 its ranks follow the response range closely (Spearman ~0.95). Dividing by the mean
    response makes a map that doubles its output score the same. Maps that never respond get 0.

    Args:
        scores: VFSS per map, ``(maps,)``.
        mean_response: each map's mean response over the stimuli, ``(maps,)``.

    Returns:
        ``scores / mean_response`` (0 where the mean response is not positive).
    """
    scores = np.asarray(scores, dtype=np.float64)
    mean_response = np.asarray(mean_response, dtype=np.float64)
    positive = mean_response > 0
    return np.where(positive, scores / np.where(positive, mean_response, 1.0), 0.0)


def map_scores(
    responses: np.ndarray, frequency_cpd: np.ndarray, csf: str = "mannos_sakrison_code", normalise: str = "none"
) -> np.ndarray:
    """The score the pipeline ranks maps by: VFSS, optionally divided by each map's mean response.

    Args:
        responses: tuning curves ``(maps, frequencies)``.
        frequency_cpd: the frequency axis in cycles/degree.
        csf: the CSF model.
        normalise: ``none`` (the paper's VFSS) or ``mean_response`` (:func:`normalised_vfss`).

    Raises:
        ParamsError: an unknown ``normalise``.
    """
    if normalise not in VFSS_NORMALISATIONS:
        raise ParamsError(f"vfss.normalise must be one of {list(VFSS_NORMALISATIONS)}, got {quote(normalise)}")
    scores = vfss_scores(responses, frequency_cpd, csf)
    if normalise == "mean_response":
        scores = normalised_vfss(scores, np.asarray(responses, dtype=np.float64).mean(axis=1))
    return scores


def ranking_agreement(reference: np.ndarray, other: np.ndarray, layers: np.ndarray, top_k: int) -> pd.DataFrame:
    """Per layer, how far two scorings of the same maps agree: rank correlation and top-k overlap.

    Args:
        reference: scores ``(maps,)`` of every map of every layer.
        other: another scoring of the same maps.
        layers: the layer of each map.
        top_k: size of the top sets compared; at most the map count of the smallest layer.

    Returns:
        ``layer, maps, spearman, top_k_overlap`` (the share of the reference's top-k that the
        other scoring also puts in its top-k).

    Raises:
        ParamsError: ``top_k`` is above a layer's map count (every overlap would be 1.0 whatever the scores).
    """
    frame = pd.DataFrame({"layer": layers, "reference": reference, "other": other})
    counts = frame.groupby("layer", sort=False).size()
    if len(counts) and int(top_k) > int(counts.min()):
        raise ParamsError(
            f"vfss.sensitivity_top_k ({top_k}) is above the {int(counts.min())} maps of layer {counts.idxmin()}: "
            f"its top-k overlap would be 1.0 whatever the scores; use at most {int(counts.min())} "
            "or leave that layer out of features.layers"
        )
    rows = []
    for layer, group in frame.groupby("layer", sort=False):
        k = int(top_k)
        top = set(np.argsort(-group["reference"].to_numpy(), kind="stable")[:k])
        top_other = set(np.argsort(-group["other"].to_numpy(), kind="stable")[:k])
        rows.append(
            {
                "layer": layer,
                "maps": len(group),
                "spearman": _spearman(group["reference"], group["other"]),
                "top_k_overlap": len(top & top_other) / k,
            }
        )
    return pd.DataFrame(rows)


def l1_weights(scores: np.ndarray) -> np.ndarray:
    """The paper's per-layer weights: ``w = VFSS / sum(|VFSS|)`` (all zero if every score is 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    total = np.abs(scores).sum()
    return scores / total if total > 0 else np.zeros_like(scores)


def selection_mask(scores: np.ndarray, selection: str, k: int, seed: int = 0, key: str = "k") -> np.ndarray:
    """A binary mask choosing ``k`` feature maps of one layer by their VFSS.

    Args:
        scores: VFSS of each map of the layer, shape ``(maps,)``.
        selection: ``topk`` (highest VFSS), ``bottomk`` (lowest VFSS) or ``randomk`` (uniformly at
            random, ignoring the scores). Ties are broken by the lower channel index.
        k: how many maps to choose, ``1 <= k <= maps``.
        seed: seed of ``randomk`` (``numpy.random.default_rng``).
        key: the parameter that set ``k``, for the error message.

    Returns:
        A float64 array of shape ``(maps,)`` with exactly ``k`` ones and zeros elsewhere.

    Raises:
        ParamsError: unknown selection, ``k`` out of range, or scores not a non-empty finite vector.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise ParamsError(f"VFSS scores must be a non-empty finite vector, got shape {scores.shape}")
    if selection not in SELECTIONS:
        raise ParamsError(f"selection must be one of {list(SELECTIONS)}, got {quote(selection)}")
    k = integer_at_least(key, k, 1, scores.size)
    if selection == "topk":
        chosen = np.argsort(-scores, kind="stable")[:k]
    elif selection == "bottomk":
        chosen = np.argsort(scores, kind="stable")[:k]
    else:
        chosen = np.random.default_rng(seed).choice(scores.size, size=int(k), replace=False)
    mask = np.zeros_like(scores)
    mask[chosen] = 1.0
    return mask


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Select the ``k`` highest-scoring maps (ties broken by lower channel index).

    Returns:
        A float array with ``1 / k`` for selected maps and 0 elsewhere (sums to 1 like
        :func:`l1_weights`): the top-k mask of :func:`selection_mask`, normalised.
    """
    return selection_mask(scores, "topk", k, key="weights.top_k") / k


def gain_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer, how much VFSS is a measure of gain: its rank correlation with response level.

    Args:
        table: one row per map with ``layer, vfss, mean_response, response_range`` (and optionally
            ``vfss_normalised``).

    Returns:
        One row per layer: ``layer, maps, spearman_range, spearman_mean`` (VFSS vs each map's
        response range and mean response), and ``spearman_normalised_range`` when the table has
        ``vfss_normalised``. Near 1 means the score mostly ranks maps by how strongly they respond.
    """
    rows = []
    for layer, rows_of_layer in table.groupby("layer", sort=False):
        row = {"layer": layer, "maps": len(rows_of_layer)}
        for column, name in (("response_range", "spearman_range"), ("mean_response", "spearman_mean")):
            row[name] = _spearman(rows_of_layer["vfss"], rows_of_layer[column])
        if "vfss_normalised" in rows_of_layer:
            row["spearman_normalised_range"] = _spearman(
                rows_of_layer["vfss_normalised"], rows_of_layer["response_range"]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _spearman(x: pd.Series, y: pd.Series) -> float:
    if x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(x.rank().corr(y.rank()))
