"""Agreement of a distance with people: rank correlations with MOS, 2AFC agreement, paired bootstrap CIs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata, spearmanr

# The generic bootstrap helpers live in psychovis.statistics; CI_LEVEL is re-exported for old imports.
from psychovis.statistics import CI_LEVEL as CI_LEVEL
from psychovis.statistics import bootstrap_indices, percentile_ci

SCORE_COLUMNS: tuple[str, ...] = ("dataset", "distance", "metric", "value", "ci_low", "ci_high", "n")
"""Columns of the scores table (one row per data set, distance and metric)."""


def rank_correlations(distance: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Signed Spearman and Kendall (tau-b) correlations of a distance with human scores.

    Args:
        distance: ``(n,)`` distances.
        score: ``(n,)`` human scores (MOS: higher = better quality, so a good distance gives
            **negative** correlations).

    Returns:
        ``{"srcc": rho, "krcc": tau}`` (NaN when either input is constant or ``n < 2``).

    Raises:
        ValueError: mismatched shapes.
    """
    distance, score = _pair(distance, score)
    if distance.size < 2 or np.ptp(distance) == 0 or np.ptp(score) == 0:
        return {"srcc": math.nan, "krcc": math.nan}
    return {"srcc": float(spearmanr(distance, score)[0]), "krcc": float(kendalltau(distance, score)[0])}


def two_afc_agreement(d0: np.ndarray, d1: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Per-triplet agreement of a distance with people: ``judge (d1<d0) + (1-judge) (d1>d0) + 0.5 (d1=d0)``.

    Args:
        d0: ``(n,)`` distance of ``p0`` from the reference.
        d1: ``(n,)`` distance of ``p1`` from the reference.
        judge: ``(n,)`` fraction of people who found ``p1`` closer, in [0, 1].

    Returns:
        ``(n,)`` float64 in [0, 1]; its mean is the 2AFC score.

    References:
        R. Zhang et al., CVPR 2018 (their ``score_2afc_dataset``).
    """
    d0, d1 = _pair(d0, d1)
    judge = np.asarray(judge, dtype=np.float64)
    if judge.shape != d0.shape:
        raise ValueError(f"judge must have shape {d0.shape}, got {judge.shape}")
    return judge * (d1 < d0) + (1.0 - judge) * (d1 > d0) + 0.5 * (d1 == d0)


def human_agreement(judge: np.ndarray) -> np.ndarray:
    """Per-triplet agreement of one person with another: ``judge^2 + (1 - judge)^2`` (the 2AFC ceiling)."""
    judge = np.asarray(judge, dtype=np.float64)
    return judge**2 + (1.0 - judge) ** 2


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"inputs must have one length, got {a.size} and {b.size}")
    return a, b


def bootstrap_means(values: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """The mean of ``values`` over each bootstrap resample, vectorised: ``(resamples,)``."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return np.full(int(resamples), math.nan)
    return values[bootstrap_indices(values.size, resamples, seed)].mean(axis=1)


def bootstrap_correlations(
    distance: np.ndarray, score: np.ndarray, resamples: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Spearman and Kendall correlations over bootstrap resamples of the pairs.

    Spearman's rho is vectorised (average ranks of every resample at once, then row-wise Pearson);
    Kendall's tau is computed per resample with :func:`scipy.stats.kendalltau`.

    Args:
        distance: ``(n,)`` distances.
        score: ``(n,)`` human scores.
        resamples: number of resamples.
        seed: seed of the resample indices (the same seed gives the same resamples).

    Returns:
        ``{"srcc": (resamples,), "krcc": (resamples,)}`` signed correlations (NaN for a resample
        where either side is constant).
    """
    distance, score = _pair(distance, score)
    index = bootstrap_indices(distance.size, resamples, seed)
    if distance.size < 2 or index.shape[0] == 0:
        return {"srcc": np.full(index.shape[0], math.nan), "krcc": np.full(index.shape[0], math.nan)}
    x, y = rankdata(distance[index], axis=1), rankdata(score[index], axis=1)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    tau = np.array([kendalltau(distance[rows], score[rows])[0] for rows in index], dtype=np.float64)
    return {"srcc": rho, "krcc": tau}


def _record(dataset: str, distance: str, metric: str, value: float, samples: np.ndarray, n: int) -> dict:
    low, high = percentile_ci(samples)
    return {
        "dataset": dataset,
        "distance": distance,
        "metric": metric,
        "value": float(value),
        "ci_low": low,
        "ci_high": high,
        "n": int(n),
    }


def score_mos(
    dataset: str, values: Mapping[str, np.ndarray], score: np.ndarray, bootstrap: int = 200, seed: int = 0
) -> pd.DataFrame:
    """Sign-oriented SRCC and KRCC of each distance with mean opinion scores, with bootstrap CIs.

    Args:
        dataset: the data set's name (the ``dataset`` column).
        values: distance name -> ``(n,)`` distances.
        score: ``(n,)`` MOS (higher = better quality).
        bootstrap: resamples of the CI (0: no CI, NaN bounds).
        seed: seed of the resamples (shared by every distance: a paired bootstrap).

    Returns:
        :data:`SCORE_COLUMNS`, metrics ``srcc`` and ``krcc`` = ``-corr(distance, score)``: equal
        to ``|corr|`` when the distance grows as quality falls, negative when it orders backwards.
    """
    records = []
    for name, distance in values.items():
        point = rank_correlations(distance, score)
        samples = bootstrap_correlations(distance, score, bootstrap, seed)
        for metric in ("srcc", "krcc"):
            records.append(_record(dataset, name, metric, -point[metric], -samples[metric], len(score)))
    return pd.DataFrame(records, columns=list(SCORE_COLUMNS))


def score_2afc(
    d0: Mapping[str, np.ndarray],
    d1: Mapping[str, np.ndarray],
    judge: np.ndarray,
    subset: np.ndarray,
    bootstrap: int = 200,
    seed: int = 0,
    dataset: str = "bapps",
) -> pd.DataFrame:
    """2AFC score of each distance per BAPPS subset and averaged over subsets, with bootstrap CIs.

    Args:
        d0: distance name -> ``(n,)`` distances of ``p0`` from the reference.
        d1: distance name -> ``(n,)`` distances of ``p1``.
        judge: ``(n,)`` fraction of people who found ``p1`` closer.
        subset: ``(n,)`` subset name of each triplet.
        bootstrap: resamples of the CI (0: no CI).
        seed: seed of the resamples (the same resamples for every distance).
        dataset: prefix of the ``dataset`` column: ``"<dataset>/<subset>"`` per subset and
            ``dataset`` for the mean over subsets (a stratified bootstrap: each subset resampled
            on its own, then the per-subset means averaged).

    Returns:
        :data:`SCORE_COLUMNS` with metric ``2afc``; ``distance = "human"`` is the human ceiling
        :func:`human_agreement`.
    """
    judge = np.asarray(judge, dtype=np.float64)
    subset = np.asarray(subset).astype(str)
    names = list(dict.fromkeys(subset.tolist()))
    per_triplet = {name: two_afc_agreement(d0[name], d1[name], judge) for name in d0}
    per_triplet["human"] = human_agreement(judge)
    records = []
    for name, agreement in per_triplet.items():
        means, samples = [], []
        for position, part in enumerate(names):
            rows = subset == part
            means.append(agreement[rows].mean())
            samples.append(bootstrap_means(agreement[rows], bootstrap, seed + position))
            records.append(_record(f"{dataset}/{part}", name, "2afc", means[-1], samples[-1], int(rows.sum())))
        if len(names) > 1:
            records.append(_record(dataset, name, "2afc", np.mean(means), np.mean(samples, axis=0), len(judge)))
    return pd.DataFrame(records, columns=list(SCORE_COLUMNS))
