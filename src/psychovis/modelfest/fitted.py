"""Per-map weights fitted to people: which VGG maps make a distance predict human detection?

The weighted feature distance of one layer is ``d_s(c) = mean_m w_m e_m(s, c)`` (the per-map errors
``e`` of one shared pass). In the near-threshold regime ``e_m(s, c) ~ c^2 g_sm``, so the observer's
threshold in dB is ``-10 log10(sum_m w_m g_sm) + K``. The weights ``w = exp(theta)`` (positive) are
fitted to the mean person's thresholds on the training stimuli only, ridge-regularised towards
uniform (``lambda * mean theta^2``), with the offset ``K`` in closed form; the fitted distance is then
scored like every other observer, on held-out stimulus families only.

The direct test of the paper's premise: the Spearman correlation of VFSS with these weights, next
to that of the maps' response gain (VFSS tracks gain; shared/DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from psychovis.modelfest.observers import Curves, fit_criteria

DB = 10.0 / np.log(10.0)


def near_threshold_gain(errors: np.ndarray, contrasts: np.ndarray, reference_contrast: float) -> np.ndarray:
    """``g_sm = e_m(s, c*) / c*^2`` at the grid contrast ``c*`` nearest ``reference_contrast``: ``(S, M)``."""
    index = int(np.argmin(np.abs(np.log(contrasts) - np.log(reference_contrast))))
    return errors[:, index, :] / contrasts[index] ** 2


def fit_weights(gain: np.ndarray, target_db: np.ndarray, train: Sequence[int], ridge: float = 1.0) -> np.ndarray:
    """Positive per-map weights (mean 1) fitted to ``target_db`` on ``train`` stimuli.

    Args:
        gain: ``(S, M)`` near-threshold per-map gains (:func:`near_threshold_gain`).
        target_db: ``(S,)`` thresholds in dB (e.g. the mean person).
        train: 0-based stimulus indices used for the fit (no other stimulus is looked at).
        ridge: ``lambda`` of the penalty ``lambda * mean_m theta_m^2`` (towards uniform weights).
    """
    train = np.asarray(list(train), dtype=int)
    g, t = gain[train].astype(np.float64), np.asarray(target_db, dtype=np.float64)[train]
    scale = g.mean()
    g = g / scale
    m = g.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = np.exp(theta)
        u = np.maximum(g @ w / m, 1e-300)
        model = -DB * np.log(u)
        offset = np.mean(t - model)
        r = model + offset - t
        value = np.mean(r**2) + ridge * np.mean(theta**2)
        # d model_s / d theta_m = -DB g_sm w_m / (m u_s); the closed-form offset removes the mean of r
        d_model = -DB * g * w[None, :] / (m * u[:, None])
        grad = 2 * (r - r.mean()) @ d_model / len(r) + 2 * ridge * theta / m
        return float(value), grad

    result = optimize.minimize(loss, np.zeros(m), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    w = np.exp(result.x)
    return w / w.mean()


def weighted_curves(errors: np.ndarray, contrasts: np.ndarray, weights: np.ndarray) -> Curves:
    """The distance ``mean_m w_m e_m(s, c)`` as curves."""
    return Curves(np.asarray(contrasts, dtype=np.float64), errors @ weights / weights.size)


def premise_test(
    errors: np.ndarray,
    contrasts: np.ndarray,
    people: np.ndarray,
    train: Sequence[int],
    vfss: np.ndarray | None,
    reference_contrast: float = 0.01,
    ridge: float = 1.0,
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Fit weights on ``train``, score them held out, and correlate them with VFSS and response gain.

    Args:
        errors: ``(S, C, M)`` per-map errors against the blank.
        contrasts: ``(C,)`` the contrast grid.
        people: ``(P, S)`` thresholds in dB.
        train: 0-based training stimuli; every score below is on the others.
        vfss: ``(M,)`` VFSS of the maps, or None.

    Returns:
        ``(weights, numbers)``: the fitted weights and ``held_out_rms_db`` (fitted),
        ``held_out_rms_db_uniform`` (the plain distance, same split), ``spearman_vfss``,
        ``spearman_gain`` (with each map's mean error at the top contrast) and ``spearman_vfss_gain``.
    """
    train = np.asarray(list(train), dtype=int)
    test = np.setdiff1d(np.arange(people.shape[1]), train)
    gain = near_threshold_gain(errors, contrasts, reference_contrast)
    weights = fit_weights(gain, people.mean(axis=0), train, ridge)

    def held_out(w: np.ndarray) -> float:
        fit = fit_criteria(weighted_curves(errors, contrasts, w), people, train)
        return float(np.sqrt((fit.errors(people, test) ** 2).mean()))

    response = errors[:, -1, :].mean(axis=0)
    numbers: dict[str, float | None] = {
        "held_out_rms_db": held_out(weights),
        "held_out_rms_db_uniform": held_out(np.ones_like(weights)),
        "spearman_gain": float(stats.spearmanr(weights, response).statistic),
        "spearman_vfss": None,
        "spearman_vfss_gain": None,
        "ridge": float(ridge),
        "reference_contrast": float(reference_contrast),
    }
    if vfss is not None:
        numbers["spearman_vfss"] = float(stats.spearmanr(weights, vfss).statistic)
        numbers["spearman_vfss_gain"] = float(stats.spearmanr(vfss, response).statistic)
    return weights, numbers
