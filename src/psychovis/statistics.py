"""Bootstrap statistics shared by the experiments: resample indices, percentile CIs, paired method comparisons.

The paired comparison answers "is method A better than baseline B on judge J, and by how much?"
from a long table of per-(seed, image) scores. Each method is paired with the baseline on the
same (seed, image) - the same test image, the same training seed - and the difference is
oriented so that **positive = the method is better** whatever the judge's direction. The
uncertainty is a percentile bootstrap interval over the pairs (or over clusters of pairs, e.g.
images, when the pairs are not independent). Every method and every judge is evaluated on the
same resamples, so the intervals of one table come from one set of bootstrap worlds.

The resamples are applied as a count matrix ``W`` (``resamples x pairs``: how often each pair
was drawn), so the resampled means of every (method, judge) are one matrix product ``W @ D.T``
instead of a loop over resamples; non-finite differences enter with weight zero.

References:
    B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993
    (Ch. 13, percentile intervals).
    A. C. Davison, D. V. Hinkley, "Bootstrap Methods and their Application", Cambridge University
    Press, 1997 (Sec. 3.8, hierarchical data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from psychovis.errors import ParamsError, quote
from psychovis.io import json_number
from psychovis.validation import integer_at_least

CI_LEVEL = 0.95
"""Default confidence level of the percentile intervals."""

PAIR_KEYS: tuple[str, ...] = ("seed", "image")
"""Columns that identify a pair: a method's row and the baseline's row with these values are compared."""

SCORE_COLUMNS: tuple[str, ...] = ("method", *PAIR_KEYS, "judge", "value")
"""Columns of the long score table :func:`paired_differences` reads."""

DIFFERENCE_COLUMNS: tuple[str, ...] = (
    "method",
    "baseline",
    "judge",
    "mean",
    "ci_low",
    "ci_high",
    "win_share",
    "n",
    "higher_is_better",
    "verdict",
    "level",
    "resamples",
    "resample_unit",
)
"""Columns of :func:`paired_differences`' table (one row per method and judge)."""

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no detectable difference"
VERDICTS: tuple[str, ...] = (BETTER, WORSE, NO_DIFFERENCE)
"""A comparison's verdict: CI above zero, CI below zero, or CI containing zero (or undefined)."""

SUMMARY_KEYS: tuple[str, ...] = ("mean", "ci_low", "ci_high", "win_share")
"""The numbers :func:`compare_metrics` keeps per comparison and judge."""


def bootstrap_indices(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """A ``(resamples, n)`` matrix of row indices drawn with replacement (``default_rng(seed)``).

    Args:
        n: number of rows to resample.
        resamples: number of resamples (rows of the matrix).
        seed: seed of :func:`numpy.random.default_rng`; the same ``(n, resamples, seed)`` gives the
            same matrix, so results computed on it are paired.

    Returns:
        ``(resamples, n)`` int64 indices in ``[0, n)``.

    References:
        B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", 1993, Ch. 6.
    """
    resamples = integer_at_least("bootstrap resamples", resamples, 0)
    if n == 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` (NaN ignored; NaN when none is finite).

    Args:
        samples: bootstrap replicates of a statistic.
        level: the confidence level, e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns:
        ``(low, high)``.

    References:
        B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", 1993, Ch. 13.
    """
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_counts(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each resample of :func:`bootstrap_indices`: ``(resamples, n)``.

    ``counts @ values / n`` is the resampled mean of ``values``, for any number of value vectors at once.
    """
    index = bootstrap_indices(n, resamples, seed)
    return _counts(index, np.ones(index.shape, dtype=bool), n)


def cluster_bootstrap_counts(clusters: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """Two-stage (hierarchical) bootstrap counts: clusters with replacement, then rows within each drawn cluster.

    Rows of one cluster (e.g. the seeds of one test image) are not independent; resampling rows
    alone would treat them as if they were and give too narrow intervals. Each resample draws as
    many clusters as there are, with replacement (:func:`bootstrap_indices` with ``seed``), and for
    each drawn cluster as many of its rows as it has, with replacement. Resampling at both stages
    slightly overstates the variance (Davison & Hinkley 1997, Sec. 3.8): a conservative choice.

    Args:
        clusters: ``(n,)`` cluster label of each row.
        resamples: number of resamples.
        seed: seed of the draws (clusters from ``default_rng(seed)``, rows from ``default_rng((seed, 1))``).

    Returns:
        ``(resamples, n)`` counts; a resample's row total varies with the sizes of the drawn clusters.

    References:
        A. C. Davison, D. V. Hinkley, "Bootstrap Methods and their Application", 1997, Sec. 3.8.
        B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", 1993.
    """
    labels = pd.factorize(np.asarray(clusters), sort=True)[0]
    n = labels.size
    order = np.argsort(labels, kind="stable")  # rows grouped by cluster
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    drawn = bootstrap_indices(sizes.size, resamples, seed)  # (resamples, clusters)
    if n == 0 or drawn.shape[0] == 0:
        return np.zeros((drawn.shape[0], n))
    drawn_sizes = sizes[drawn][..., None]  # (resamples, clusters, 1)
    # One uniform per (resample, drawn cluster, slot): slots beyond the drawn cluster's size are masked out.
    uniform = np.random.default_rng((seed, 1)).random((*drawn.shape, int(sizes.max())))
    within = np.minimum((uniform * drawn_sizes).astype(np.int64), drawn_sizes - 1)
    used = np.arange(sizes.max()) < drawn_sizes
    rows = order[starts[drawn][..., None] + np.where(used, within, 0)]
    return _counts(rows.reshape(drawn.shape[0], -1), used.reshape(drawn.shape[0], -1), n)


def _counts(index: np.ndarray, used: np.ndarray, n: int) -> np.ndarray:
    """``(resamples, n)`` float counts of the ``used`` entries of an index matrix (one bincount, no loop)."""
    resamples = index.shape[0]
    flat = (np.arange(resamples)[:, None] * n + index)[used]
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def paired_differences(
    scores: pd.DataFrame,
    baseline: str,
    higher_is_better: Mapping[str, bool],
    methods: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    level: float = CI_LEVEL,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Paired differences of each method from ``baseline`` per judge, with percentile bootstrap CIs.

    Each method's row is paired with the baseline's row of the same ``(seed, image, judge)``; both
    must have exactly the same keys (a missing or duplicated row is an error, never silently
    dropped). The difference is ``value - baseline`` for a judge where higher is better and
    ``baseline - value`` where lower is better, so **positive = the method is better**.

    A pair whose difference is undefined (e.g. PSNR = inf on both sides of a perfect
    reconstruction, or a NaN score) is left out of that method's and judge's statistics; ``n``
    counts the pairs used. A one-sided infinity (a perfect reconstruction against an imperfect one)
    is kept: it counts as a win (or loss) of the size of the largest finite difference of that method
    and judge, so a better method is never judged on its imperfect pairs only. Left-out pairs keep
    their place in the resamples (with weight zero), so every method and judge still shares one set of resamples.

    Args:
        scores: long table with columns :data:`SCORE_COLUMNS` (``method, seed, image, judge, value``).
        baseline: the method every other is compared with.
        higher_is_better: judge name -> whether a higher value is better; must cover every judge
            of ``scores`` (extra names are ignored).
        methods: the methods to compare (default: every method of ``scores``, in order of
            appearance); ``baseline`` itself is skipped.
        resamples: bootstrap resamples (>= 1).
        seed: seed of the resamples; the same seed gives the same resamples for every call with the
            same pairs (e.g. for each baseline).
        level: confidence level of the percentile interval, in (0, 1).
        cluster: ``None`` to resample pairs; ``"image"`` (or ``"seed"``) to resample clusters of
            pairs sharing that value with replacement, then pairs within (see
            :func:`cluster_bootstrap_counts`) - seeds of one image are not independent. The point
            estimate is the mean over pairs either way.

    Returns:
        One row per method and judge (methods in the given order, judges in order of appearance),
        with columns :data:`DIFFERENCE_COLUMNS`: ``mean`` difference, ``ci_low``/``ci_high`` its
        percentile interval, ``win_share`` the share of pairs where the method is strictly better
        (ties count half), ``n`` the pairs used, ``verdict`` ``"better"`` when ``ci_low > 0``,
        ``"worse"`` when ``ci_high < 0``, else ``"no detectable difference"`` (also when no pair is
        finite: then ``mean``, the CI and ``win_share`` are NaN); ``level``, ``resamples`` and
        ``resample_unit`` (``"pair"`` or the cluster column) say how the interval was made.

    Raises:
        ParamsError: a column is missing, ``baseline`` or a method is not in ``scores``, a judge
            has no direction, a row is duplicated, a method lacks a pair the baseline has (or the
            other way round), or ``resamples``/``level``/``cluster`` is out of range.

    References:
        B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993.
    """
    resamples = integer_at_least("resamples", resamples, 1)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.0 < level < 1.0:
        raise ParamsError(f"level must be a number in (0, 1), got {quote(level)}")
    if cluster is not None and cluster not in PAIR_KEYS:
        raise ParamsError(f"cluster must be None or one of {list(PAIR_KEYS)}, got {quote(cluster)}")
    missing = [column for column in SCORE_COLUMNS if column not in scores.columns]
    if missing:
        raise ParamsError(f"scores lack column(s) {missing}; expected {list(SCORE_COLUMNS)}")
    present = list(dict.fromkeys(scores["method"]))
    if baseline not in present:
        raise ParamsError(f"baseline {baseline!r} has no scores; methods present: {present}")
    methods = [method for method in present if method != baseline] if methods is None else list(methods)
    unknown = [method for method in methods if method not in present]
    if unknown:
        raise ParamsError(f"method(s) {unknown} have no scores; methods present: {present}")
    methods = [method for method in methods if method != baseline]

    rows = scores[scores["method"].isin([baseline, *methods])]
    keys = [*PAIR_KEYS, "judge"]
    duplicated = rows[rows.duplicated(["method", *keys], keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise ParamsError(
            f"scores have {len(duplicated)} duplicated rows, e.g. method {first['method']!r} "
            f"{_describe(first, keys)}; each (method, seed, image, judge) must appear once"
        )
    judges = list(dict.fromkeys(rows.loc[rows["method"] == baseline, "judge"]))
    undirected = [judge for judge in judges if judge not in higher_is_better]
    if undirected:
        raise ParamsError(f"judge(s) {undirected} have no direction in higher_is_better ({sorted(higher_is_better)})")

    base = rows[rows["method"] == baseline]
    for method in methods:
        _check_same_keys(base[keys], rows.loc[rows["method"] == method, keys], baseline, method)

    # Every method is aligned to the baseline's pairs (sorted, so the resamples do not depend on row order).
    pairs = base[list(PAIR_KEYS)].drop_duplicates().sort_values(list(PAIR_KEYS)).reset_index(drop=True)
    pair_index = pd.MultiIndex.from_frame(pairs)
    wide = rows.set_index(["method", "judge", *PAIR_KEYS])["value"].unstack(list(PAIR_KEYS))
    wide = wide.reindex(index=pd.MultiIndex.from_product([[baseline, *methods], judges]), columns=pair_index)
    # (1 + methods, judges, pairs); NaN where the baseline itself lacks a judge for a pair
    cube = wide.to_numpy(dtype=np.float64).reshape(1 + len(methods), len(judges), len(pairs))
    sign = np.array([1.0 if higher_is_better[judge] else -1.0 for judge in judges])[None, :, None]
    with np.errstate(invalid="ignore"):
        differences = (sign * (cube[1:] - cube[:1])).reshape(len(methods) * len(judges), len(pairs))

    counts = (
        bootstrap_counts(len(pairs), resamples, seed)
        if cluster is None
        else cluster_bootstrap_counts(pairs[cluster].to_numpy(), resamples, seed)
    )
    differences, one_sided = _cap_one_sided_infinities(differences)
    finite = np.isfinite(differences)
    filled = np.where(finite, differences, 0.0)
    used = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / used
        wins = ((filled > 0) & finite | (one_sided > 0)).sum(axis=1) + 0.5 * (
            (filled == 0) & finite & (one_sided == 0)
        ).sum(axis=1)
        win_share = wins / used
        # The mean of every (method, judge) in every resample at once; non-finite pairs weigh zero.
        replicates = (counts @ filled.T) / (counts @ finite.T.astype(np.float64))  # (resamples, methods x judges)
    intervals = [percentile_ci(replicates[:, column], level) for column in range(replicates.shape[1])]

    records = []
    for position, (method, judge) in enumerate((method, judge) for method in methods for judge in judges):
        low, high = intervals[position]
        verdict = BETTER if low > 0 else WORSE if high < 0 else NO_DIFFERENCE  # NaN compares False: no verdict
        records.append(
            {
                "method": method,
                "baseline": baseline,
                "judge": judge,
                "mean": float(mean[position]),
                "ci_low": low,
                "ci_high": high,
                "win_share": float(win_share[position]),
                "n": int(used[position]),
                "higher_is_better": bool(higher_is_better[judge]),
                "verdict": verdict,
                "level": float(level),
                "resamples": resamples,
                "resample_unit": cluster or "pair",
            }
        )
    return pd.DataFrame(records, columns=list(DIFFERENCE_COLUMNS))


def _cap_one_sided_infinities(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(differences with each row's +-inf replaced by +-its largest finite magnitude, sign of the infinities)``.

    A row with no finite difference caps at 0 (the sign array still counts the win or loss).
    """
    one_sided = np.where(np.isinf(differences), np.sign(differences), 0.0)
    if not one_sided.any():
        return differences, one_sided
    finite = np.isfinite(differences)
    largest = np.where(finite, np.abs(differences), 0.0).max(axis=1, keepdims=True)
    return np.where(one_sided != 0, one_sided * largest, differences), one_sided


def _describe(row: pd.Series, keys: Sequence[str]) -> str:
    return ", ".join(f"{key}={row[key]!r}" for key in keys)


def _check_same_keys(base: pd.DataFrame, other: pd.DataFrame, baseline: str, method: str) -> None:
    """Raise unless ``method`` has a row for exactly the baseline's (seed, image, judge) keys."""
    keys = list(base.columns)
    merged = base.merge(other, on=keys, how="outer", indicator=True)
    for side, has, lacks in (("left_only", baseline, method), ("right_only", method, baseline)):
        unpaired = merged[merged["_merge"] == side]
        if not unpaired.empty:
            raise ParamsError(
                f"{len(unpaired)} row(s) of {has!r} have no pair in {lacks!r}, e.g. "
                f"{_describe(unpaired.iloc[0], keys)}; every method needs the same (seed, image, judge) rows"
            )


def compare_metrics(table: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """The comparison table as nested JSON-safe metrics (for ``data/compare/summary.json``).

    Args:
        table: :func:`paired_differences` output (one or several baselines concatenated).

    Returns:
        ``{"<method>_vs_<baseline>": {judge: {"mean", "ci_low", "ci_high", "win_share"}}}``, numbers
        rounded by :func:`psychovis.io.json_number` (NaN and inf become None).
    """
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in table.itertuples(index=False):
        comparison = metrics.setdefault(f"{row.method}_vs_{row.baseline}", {})
        comparison[str(row.judge)] = {key: json_number(getattr(row, key)) for key in SUMMARY_KEYS}
    return metrics


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """A nested metrics dict flattened to ``"a.b.c" -> value`` for MLflow (None and non-numbers left out).

    Args:
        metrics: nested dicts of numbers (e.g. :func:`compare_metrics`, a stage's metrics file).
        prefix: prepended to every key (used in the recursion).
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
