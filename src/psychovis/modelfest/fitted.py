"""Per-map weights fitted to people: which VGG maps make a distance predict human detection?

The weighted feature distance of one layer is ``d_s(c) = mean_m w_m e_m(s, c)`` (the per-map errors
``e`` of one shared pass). In the near-threshold regime ``e_m(s, c) ~ c^2 g_sm``, so the observer's
threshold in dB is ``-10 log10(sum_m w_m g_sm) + K``. The weights ``w = exp(theta)`` (positive) are
fitted to the mean person's thresholds on the training stimuli only, ridge-regularised towards
uniform (``lambda * mean theta^2``), with the offset ``K`` in closed form; the fitted distance is then
scored like every other observer, on held-out stimulus families only.

The direct test of the paper's premise: the Spearman correlation of VFSS with these weights, next
to that of the maps' response gain (VFSS tracks gain; shared/DESIGN.md). Because a score that only
tracks gain would correlate with the weights through gain alone, each score is also placed in a
gain-matched null (:func:`gain_matched_scores`): random map scores with the same Spearman
correlation with the gain as the score has. Above the null's 95 % interval, the score carries
something about people beyond gain; inside it, no more than gain-matched random scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from psychovis.modelfest.observers import Curves, fit_criteria
from psychovis.statistics import percentile_ci, percentile_in

DB = 10.0 / np.log(10.0)
NULL_DRAWS = 2000
"""Random gain-matched scores of the premise test's null."""


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


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Van der Waerden normal scores ``Phi^-1(rank / (n + 1))`` of ``values`` (ties share their mean rank).

    Args:
        values: ``(M,)`` any numbers.

    Returns:
        ``(M,)`` standard-normal quantiles in the order of ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    return stats.norm.ppf(stats.rankdata(values) / (values.size + 1))


def _row_spearman(rows: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``rows`` (continuous: no ties) with ``target``: ``(D,)``."""
    ranks = np.argsort(np.argsort(rows, axis=1), axis=1).astype(np.float64)
    ranks -= ranks.mean(axis=1, keepdims=True)
    centred = stats.rankdata(target) - (target.size + 1) / 2.0
    scale = np.sqrt((ranks**2).sum(axis=1) * (centred**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return ranks @ centred / scale


def gain_matched_scores(
    gain: np.ndarray, spearman: float, draws: int = NULL_DRAWS, seed: int = 0, iterations: int = 30
) -> np.ndarray:
    """Random map scores, each with Spearman correlation ``spearman`` with ``gain``: ``(draws, M)``.

    A Gaussian copula on the gain's ranks: ``z = sin(a) s + cos(a) e``, with ``s`` the gain's normal
    scores (:func:`normal_scores`) and ``e`` independent standard-normal noise per draw. The angle
    ``a`` of each draw is found by bisection (all draws at once) so that the draw's own Spearman
    correlation with the gain matches ``spearman``, not only on average.

    Args:
        gain: ``(M,)`` each map's response gain.
        spearman: the Spearman correlation with ``gain`` every draw must have, in [-1, 1].
        draws: how many scores.
        seed: seed of the noise.
        iterations: bisection steps on ``a`` (30 halve the interval to about 3e-9 rad).

    Returns:
        ``(draws, M)`` scores (their ranks are what matters).
    """
    s = normal_scores(gain)
    noise = np.random.default_rng(seed).standard_normal((draws, s.size))
    low = np.full((draws, 1), -np.pi / 2)
    high = np.full((draws, 1), np.pi / 2)
    for _ in range(iterations):
        middle = (low + high) / 2
        above = _row_spearman(np.sin(middle) * s + np.cos(middle) * noise, gain)[:, None] > spearman
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    angle = (low + high) / 2
    return np.sin(angle) * s + np.cos(angle) * noise


def null_test(
    scores: np.ndarray, weights: np.ndarray, gain: np.ndarray, draws: int = NULL_DRAWS, seed: int = 0
) -> dict[str, float]:
    """Is a map score's Spearman correlation with ``weights`` more than its correlation with gain explains?

    Args:
        scores: ``(M,)`` the map score (e.g. VFSS).
        weights: ``(M,)`` the weights fitted to people.
        gain: ``(M,)`` each map's response gain.
        draws: size of the gain-matched null (:func:`gain_matched_scores`).
        seed: its seed.

    Returns:
        ``spearman`` (score with weights), ``spearman_gain`` (score with gain), ``null_mean``,
        ``null_low``/``null_high`` (the null's 2.5th and 97.5th percentiles), ``null_percentile``
        (where the observed value falls, ties half) and ``null_p`` (one-sided, the observed value or
        higher: ``(1 + #null >= observed) / (1 + draws)``); NaN where a correlation is undefined.
    """
    observed = float(stats.spearmanr(scores, weights).statistic)
    matched = float(stats.spearmanr(scores, gain).statistic)
    nan = float("nan")
    if not (np.isfinite(observed) and np.isfinite(matched)):
        return {"spearman": observed, "spearman_gain": matched, "null_mean": nan, "null_low": nan,
                "null_high": nan, "null_percentile": nan, "null_p": nan}  # fmt: skip
    null = _row_spearman(gain_matched_scores(gain, matched, draws, seed), weights)
    low, high = percentile_ci(null)
    return {
        "spearman": observed,
        "spearman_gain": matched,
        "null_mean": float(np.nanmean(null)),
        "null_low": low,
        "null_high": high,
        "null_percentile": percentile_in(null, observed),
        "null_p": float((1 + np.sum(null >= observed)) / (1 + np.isfinite(null).sum())),
    }


def premise_test(
    errors: np.ndarray,
    contrasts: np.ndarray,
    people: np.ndarray,
    train: Sequence[int],
    scores: Mapping[str, np.ndarray] | None = None,
    reference_contrast: float = 0.01,
    ridge: float = 1.0,
    null_draws: int = NULL_DRAWS,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Fit weights on ``train``, score them held out, and correlate them with map scores and response gain.

    Args:
        errors: ``(S, C, M)`` per-map errors against the blank.
        contrasts: ``(C,)`` the contrast grid.
        people: ``(P, S)`` thresholds in dB.
        train: 0-based training stimuli; every score below is on the others.
        scores: name -> ``(M,)`` map score (``vfss``, ``vfss_normalised``), or None.
        reference_contrast: the contrast of the near-threshold gains the weights are fitted on.
        ridge: the fit's ridge towards uniform weights.
        null_draws: size of each score's gain-matched null (:func:`null_test`).
        seed: the nulls' seed.

    Returns:
        ``(weights, numbers)``: the fitted weights and ``held_out_rms_db`` (fitted),
        ``held_out_rms_db_uniform`` (the plain distance, same split), ``spearman_gain`` (with each
        map's mean error at the top contrast, the response gain), ``null_draws``, and per score
        ``<name>``: ``spearman_<name>`` (with the weights), ``spearman_<name>_gain`` and
        ``null_<name>_{mean,low,high,percentile,p}`` (:func:`null_test`).
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
        "ridge": float(ridge),
        "reference_contrast": float(reference_contrast),
        "null_draws": int(null_draws),
    }
    for name, values in (scores or {}).items():
        tested = null_test(np.asarray(values, dtype=np.float64), weights, response, null_draws, seed)
        numbers[f"spearman_{name}"] = tested["spearman"]
        numbers[f"spearman_{name}_gain"] = tested["spearman_gain"]
        numbers.update({f"null_{name}_{key[5:]}": value for key, value in tested.items() if key.startswith("null_")})
    return weights, numbers
