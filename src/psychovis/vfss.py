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

from psychovis.csf import contrast_sensitivity
from psychovis.errors import ParamsError


def vfss_scores(responses: np.ndarray, frequency_cpd: np.ndarray, csf: str = "mannos_sakrison_code") -> np.ndarray:
    """VFSS of each tuning curve.

    Args:
        responses: tuning curves of shape ``(maps, frequencies)``, frequencies increasing.
        frequency_cpd: the frequency axis in cycles/degree, shape ``(frequencies,)``.
        csf: a CSF model name (see :data:`psychovis.csf.CSF_MODELS`).

    Returns:
        Scores of shape ``(maps,)``; NaN (e.g. from a NaN response) becomes 0 as in the paper.
    """
    responses = np.asarray(responses, dtype=np.float64)
    frequency_cpd = np.asarray(frequency_cpd, dtype=np.float64)
    if responses.ndim != 2 or responses.shape[1] != frequency_cpd.shape[0]:
        raise ValueError(f"responses must have shape (maps, {frequency_cpd.shape[0]}), got {responses.shape}")
    if responses.shape[1] < 2:
        raise ValueError("VFSS needs at least two frequencies")
    sensitivity = contrast_sensitivity(frequency_cpd, csf)
    slope = np.abs(np.gradient(responses, axis=1))
    return np.nan_to_num(slope @ sensitivity, nan=0.0)


def l1_weights(scores: np.ndarray) -> np.ndarray:
    """The paper's per-layer weights: ``w = VFSS / sum(|VFSS|)`` (all zero if every score is 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    total = np.abs(scores).sum()
    return scores / total if total > 0 else np.zeros_like(scores)


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Select the ``k`` highest-scoring maps (ties broken by lower channel index).

    Returns:
        A float array with 1 for selected maps and 0 elsewhere, normalised to sum 1 like
        :func:`l1_weights`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= scores.size:
        raise ParamsError(f"weights.top_k must be in [1, {scores.size}] for this layer, got {k}")
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros_like(scores)
    mask[order[:k]] = 1.0 / k
    return mask
