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

Those intervals condition on the held-out images. :func:`image_level_inference` makes the image the
unit of inference: a hierarchical bootstrap (images, then pairs within), a paired t-test on the
per-image means with Holm's correction (:func:`holm`), an equivalence test (:func:`tost_paired`)
on a primary judge named in advance, the power of that test (:func:`paired_t_power`), and reruns
on scores shifted by the measured cross-machine drift that flag fragile verdicts.

References:
    B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993
    (Ch. 13, percentile intervals).
    A. C. Davison, D. V. Hinkley, "Bootstrap Methods and their Application", Cambridge University
    Press, 1997 (Sec. 3.8, hierarchical data).
    S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6(2), 1979.
    D. J. Schuirmann, "A comparison of the two one-sided tests procedure ...", J. Pharmacokinet.
    Biopharm. 15(6), 1987 (TOST).
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


def percentile_in(null: np.ndarray, value: float) -> float:
    """Where ``value`` falls in ``null``: ``100 * P(null < value)``, ties counted half (NaN if empty)."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size or not np.isfinite(value):
        return float("nan")
    return float(100.0 * ((null < value).mean() + 0.5 * (null == value).mean()))


def bootstrap_counts(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each resample of :func:`bootstrap_indices`: ``(resamples, n)``.

    ``counts @ values / n`` is the resampled mean of ``values``, for any number of value vectors at once.
    """
    index = bootstrap_indices(n, resamples, seed)
    return _counts(index, np.ones(index.shape, dtype=bool), n)


def cluster_bootstrap_counts(clusters: np.ndarray, resamples: int, seed: int = 0, within: bool = True) -> np.ndarray:
    """Two-stage (hierarchical) bootstrap counts: clusters with replacement, then rows within each drawn cluster.

    Rows of one cluster (e.g. the seeds of one test image) are not independent; resampling rows
    alone would treat them as if they were and give too narrow intervals. Each resample draws as
    many clusters as there are, with replacement (:func:`bootstrap_indices` with ``seed``), and for
    each drawn cluster as many of its rows as it has, with replacement (``within=True``) or all
    of its rows once (``within=False``).

    For a balanced two-level design ``y_ij = mu + a_i + e_ij`` (``I`` clusters of ``J`` rows) the
    variance of the mean is ``s_a^2 / I + s_e^2 / (I J)``. Resampling clusters only reproduces it
    up to the factor ``(I - 1) / I``; resampling at both stages adds about ``(J - 1) / J * s_e^2 / (I J)``
    (Davison & Hinkley 1997, Sec. 3.8): conservative when the clusters are many, but with few
    clusters the ``(I - 1) / I`` shrinkage and the discreteness of the resamples dominate, and
    percentile intervals are anti-conservative (3 clusters: an effective alpha of 0.25). Simulated with
    3 images x 3 seeds, the images carrying ~90 % of the variance (as measured on the SR comparison),
    a nominal 95 % interval excludes a true zero in 42 % of data sets resampling pairs and 23 %
    resampling images then pairs; the paired t-test on the image means of :func:`image_level_inference`
    in 6 % (``tests/unit/test_statistics_inference.py``).

    Args:
        clusters: ``(n,)`` cluster label of each row.
        resamples: number of resamples.
        seed: seed of the draws (clusters from ``default_rng(seed)``, rows from ``default_rng((seed, 1))``).
        within: also resample rows within each drawn cluster (two-stage); False keeps each drawn cluster whole.

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
    if not within:
        slots = np.arange(sizes.max())
        used = slots < drawn_sizes
        rows = order[starts[drawn][..., None] + np.where(used, slots, 0)]
        return _counts(rows.reshape(drawn.shape[0], -1), used.reshape(drawn.shape[0], -1), n)
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


def _check_level(level: float) -> None:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.0 < level < 1.0:
        raise ParamsError(f"level must be a number in (0, 1), got {quote(level)}")


def difference_matrix(
    scores: pd.DataFrame,
    baseline: str,
    higher_is_better: Mapping[str, bool],
    methods: Sequence[str] | None = None,
) -> tuple[list[str], list[str], pd.DataFrame, np.ndarray]:
    """The oriented paired differences (positive = better) of each method from ``baseline``, checked.

    Args: as :func:`paired_differences`.

    Returns:
        ``(methods, judges, pairs, differences)``: the compared methods and the judges (in order),
        the ``(seed, image)`` pairs sorted (a DataFrame), and ``differences`` of shape
        ``(methods x judges, pairs)`` (row ``m * len(judges) + j``), NaN where a score is missing.

    Raises:
        ParamsError: as :func:`paired_differences`.
    """
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

    return methods, judges, pairs, differences


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
            estimate is the mean over pairs either way. Neither is conservative with few
            clusters: with 3 images the image-clustered percentile interval excludes 0 whenever
            all 3 images agree in sign, which happens with probability 0.25 under no difference
            (an effective alpha of 0.25, not 0.05); with ``None`` the interval conditions on the
            images and treats their seeds as independent (too narrow for a claim about images).
            :func:`image_level_inference` makes the image the unit and says so.

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
    _check_level(level)
    if cluster is not None and cluster not in PAIR_KEYS:
        raise ParamsError(f"cluster must be None or one of {list(PAIR_KEYS)}, got {quote(cluster)}")
    methods, judges, pairs, differences = difference_matrix(scores, baseline, higher_is_better, methods)

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


# --- Images as the unit of inference: Holm, TOST, power, drift robustness ------------------------------------------

EQUIVALENT = "equivalent"
"""Verdict of :func:`image_level_inference` when the TOST shows the difference lies within the margin."""

INFERENCE_COLUMNS: tuple[str, ...] = (
    "method",
    "baseline",
    "judge",
    "primary",
    "mean",
    "ci_low",
    "ci_high",
    "eq_low",
    "eq_high",
    "n_images",
    "n_pairs",
    "sd_image",
    "p_value",
    "p_holm",
    "margin",
    "tost_p",
    "verdict",
    "drift",
    "flip_rate",
    "fragile",
    "power_at_margin",
    "images_for_power",
    "level",
    "resamples",
    "resample_unit",
)
"""Columns of :func:`image_level_inference`'s table (one row per method and judge)."""

CONDITIONS_ON = (
    "the trained models (the seeds, each with its own warm start, are fixed, not resampled as a level); "
    "the held-out images are the sampled unit"
)
"""What the image-level intervals condition on, for reports."""


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control); NaN stays NaN and is not counted.

    ``p_(i)`` sorted ascending over the ``m`` finite values gets ``max_{k <= i} min(1, (m - k + 1) p_(k))``.
    Reject at ``alpha`` where the adjusted p-value is ``<= alpha``.

    References:
        S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6(2), 1979.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def paired_t_p(differences: np.ndarray) -> float:
    """Two-sided one-sample t-test p-value of ``mean(differences) = 0`` (NaN ignored; NaN when < 2 values or SD 0)."""
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or float(np.std(values, ddof=1)) == 0.0:
        return math.nan
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def tost_paired(differences: np.ndarray, margin: float) -> tuple[float, float, float]:
    """Two one-sided t-tests (TOST) that the mean paired difference lies within ``(-margin, +margin)``.

    ``H0: mean <= -margin`` against ``mean > -margin`` and ``H0: mean >= margin`` against
    ``mean < margin``, each a one-sample t-test with ``n - 1`` degrees of freedom; equivalence is
    shown at ``alpha`` when the larger p-value is ``<= alpha`` (equivalently, the ``1 - 2 alpha``
    t interval lies inside the margins).

    Args:
        differences: paired differences (NaN ignored).
        margin: the equivalence margin (> 0), in the units of the differences.

    Returns:
        ``(p_lower, p_upper, p)`` with ``p = max(p_lower, p_upper)``; NaN with fewer than 2 values.

    References:
        D. J. Schuirmann, "A comparison of the two one-sided tests procedure and the power approach
        for assessing the equivalence of average bioavailability", J. Pharmacokinet. Biopharm. 15(6), 1987.
    """
    from scipy import stats

    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin > 0:
        raise ParamsError(f"equivalence margin must be a number > 0, got {margin!r}")
    values = np.asarray(differences, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan, math.nan, math.nan
    n = values.size
    se = float(np.std(values, ddof=1)) / math.sqrt(n)
    mean = float(values.mean())
    if se == 0.0:
        inside = -margin < mean < margin
        return (0.0, 0.0, 0.0) if inside else (1.0, 1.0, 1.0)
    p_lower = float(stats.t.sf((mean + margin) / se, n - 1))
    p_upper = float(stats.t.cdf((mean - margin) / se, n - 1))
    return p_lower, p_upper, max(p_lower, p_upper)


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample (paired) t-test at ``alpha`` to detect a true mean ``effect``.

    Noncentral t with ``n - 1`` degrees of freedom and noncentrality ``effect / (sd / sqrt(n))``.
    NaN when ``n < 2`` or ``sd`` is not a positive number.

    References:
        J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., 1988, Ch. 2.
    """
    from scipy import stats

    if n < 2 or not (math.isfinite(sd) and sd > 0) or not math.isfinite(effect):
        return math.nan
    df = n - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    noncentrality = abs(effect) / (sd / math.sqrt(n))
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def images_for_power(
    effect: float, sd: float, power: float = 0.8, alpha: float = 0.05, most: int = 100_000
) -> int | None:
    """The fewest images for which :func:`paired_t_power` reaches ``power`` (None when undefined or above ``most``)."""
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(effect) and effect != 0):
        return None
    low, high = 2, 2
    while paired_t_power(effect, sd, high, alpha) < power:
        if high >= most:
            return None
        low, high = high, min(2 * high, most)
    while low < high:  # smallest n in [low, high] with enough power
        middle = (low + high) // 2
        if paired_t_power(effect, sd, middle, alpha) >= power:
            high = middle
        else:
            low = middle + 1
    return high


def row_t_tests(rows: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`paired_t_p` and the TOST p of :func:`tost_paired` for every row of ``rows`` at once (NaN ignored)."""
    from scipy import stats

    rows = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(rows)
    n = finite.sum(axis=1)
    mean = _finite_mean(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(finite, (rows - mean[:, None]) ** 2, 0.0).sum(axis=1) / (n - 1)
        se = np.sqrt(variance / n)
        df = np.maximum(n - 1, 1)
        p = 2.0 * stats.t.sf(np.abs(mean / se), df)
        tost = np.maximum(stats.t.sf((mean + margin) / se, df), stats.t.cdf((mean - margin) / se, df))
    constant = se == 0.0
    p = np.where((n < 2) | constant, np.nan, p)
    tost = np.where(constant, np.where(np.abs(mean) < margin, 0.0, 1.0), tost)
    return p, np.where(n < 2, np.nan, tost)


def _finite_mean(rows: np.ndarray) -> np.ndarray:
    """Mean of each row over its finite values; NaN (no warning) where a row has none."""
    finite = np.isfinite(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, rows, 0.0).sum(axis=1) / finite.sum(axis=1)


def _image_verdicts(image_means: np.ndarray, p_holm: np.ndarray, alpha: float, tost_p: np.ndarray) -> list[str]:
    """Verdict per row: better/worse when Holm's p <= alpha (by the sign of the mean), else equivalent, else none."""
    mean = _finite_mean(image_means)
    verdicts = []
    for row in range(image_means.shape[0]):
        if p_holm[row] <= alpha and mean[row] != 0:
            verdicts.append(BETTER if mean[row] > 0 else WORSE)
        elif tost_p[row] <= alpha:
            verdicts.append(EQUIVALENT)
        else:
            verdicts.append(NO_DIFFERENCE)
    return verdicts


def _image_means(differences: np.ndarray, images: np.ndarray) -> np.ndarray:
    """``(rows, images)`` mean difference per image (sorted by label) over its finite pairs; NaN where none."""
    labels, uniques = pd.factorize(images, sort=True)
    finite = np.isfinite(differences)
    sums = np.zeros((differences.shape[0], uniques.size))
    counts = np.zeros_like(sums)
    for image in range(uniques.size):
        columns = labels == image
        sums[:, image] = np.where(finite[:, columns], differences[:, columns], 0.0).sum(axis=1)
        counts[:, image] = finite[:, columns].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def image_level_inference(
    scores: pd.DataFrame,
    baseline: str,
    higher_is_better: Mapping[str, bool],
    primary_judge: str,
    margin: float,
    drift: float,
    drift_halfwidths: float = 0.95,
    methods: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    level: float = CI_LEVEL,
    draws: int = 200,
) -> pd.DataFrame:
    """Every method against ``baseline`` per judge with the held-out **image** as the unit of inference.

    - Interval: hierarchical percentile bootstrap (images with replacement, then the image's
      (seed, warm start) pairs with replacement within each drawn image; :func:`cluster_bootstrap_counts`).
      ``eq_low``/``eq_high``: the same at ``1 - 2 (1 - level)``, the interval of the TOST.
    - Test: the per-image mean differences (over seeds) are the observations: a two-sided paired
      t-test (``n_images - 1`` df), Holm-adjusted over every method x judge of this baseline
      (:func:`holm`). Verdict ``better``/``worse`` when the adjusted p <= ``1 - level``; else
      ``equivalent`` (primary judge only) when the TOST against ``±margin`` gives p <= ``1 - level``
      (:func:`tost_paired`; not adjusted: one family per claim of no difference); else
      ``no detectable difference``. With ``n`` images no exact sign test can go below
      ``2^(1 - n)``: 0.25 for 3 images.
    - Robustness: each verdict is recomputed ``draws`` times on shifted scores: on the primary judge
      every model's scores (the baseline's too) shift by a constant drawn uniformly within
      ``±drift`` (its units: the measured cross-machine shift of a model's mean score), so a
      difference moves by up to ``2 drift``; on the other judges each difference moves by up to
      ``drift_halfwidths`` of its CI half-width. ``drift`` (column) is that largest move;
      ``flip_rate`` the share of reruns whose verdict differs. ``fragile`` is True when any rerun
      flips, when a better/worse verdict's interval edge lies within the drift of zero, or when an
      equivalent verdict's TOST interval lies within the drift of a margin.
    - Power (primary judge): of the paired t-test at ``1 - level`` to detect a difference of
      ``margin`` given the measured SD of the per-image differences (``sd_image``), with the
      images at hand (``power_at_margin``) and the images needed for 80 % (``images_for_power``).

    The intervals condition on the trained models (:data:`CONDITIONS_ON`): each seed (the ``seed``
    key) is one independent run, its own warm start included; with one seed they say nothing about
    retraining, with several their spread enters within images only, as a crossed factor held fixed.

    Args:
        scores: long table with columns :data:`SCORE_COLUMNS`.
        baseline: the method compared with.
        higher_is_better: judge -> direction (see :func:`paired_differences`).
        primary_judge: the judge named in advance (e.g. ``lpips_alex``); must be scored.
        margin: equivalence margin of the primary judge, in its units (> 0).
        drift: cross-machine drift of the primary judge's scores, in its units (>= 0).
        drift_halfwidths: drift of the other judges, as a fraction of each cell's CI half-width (>= 0).
        methods: as :func:`paired_differences`.
        resamples: bootstrap resamples (>= 1).
        seed: seed of the resamples and of the drift reruns.
        level: confidence level; ``1 - level`` is the tests' alpha.
        draws: drift reruns (>= 0).

    Returns:
        One row per method and judge with columns :data:`INFERENCE_COLUMNS`.

    Raises:
        ParamsError: as :func:`paired_differences`, an unscored primary judge, or bad margin/drift.
    """
    resamples = integer_at_least("resamples", resamples, 1)
    draws = integer_at_least("drift draws", draws, 0)
    _check_level(level)
    for key, value in (("drift", drift), ("drift_halfwidths", drift_halfwidths)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ParamsError(f"{key} must be a number >= 0, got {value!r}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin > 0:
        raise ParamsError(f"equivalence margin must be a number > 0, got {margin!r}")
    methods, judges, pairs, differences = difference_matrix(scores, baseline, higher_is_better, methods)
    if primary_judge not in judges:
        raise ParamsError(f"primary judge {primary_judge!r} has no scores; judges present: {judges}")
    alpha = 1.0 - level
    image_means = _image_means(differences, pairs["image"].to_numpy())
    n_images = np.isfinite(image_means).sum(axis=1)
    cells = [(method, judge) for method in methods for judge in judges]
    is_primary = np.array([judge == primary_judge for _, judge in cells])

    counts = cluster_bootstrap_counts(pairs["image"].to_numpy(), resamples, seed)
    finite = np.isfinite(differences)
    filled = np.where(finite, differences, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (counts @ filled.T) / (counts @ finite.T.astype(np.float64))
        mean = _finite_mean(image_means)
    intervals = np.array([percentile_ci(replicates[:, c], level) for c in range(len(cells))]).reshape(-1, 2)
    equivalence = np.array([percentile_ci(replicates[:, c], 1.0 - 2.0 * alpha) for c in range(len(cells))])
    equivalence = equivalence.reshape(-1, 2)

    def decide(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        shifted = image_means + shift[:, None]
        p, tost = row_t_tests(shifted, margin)
        tost = np.where(is_primary, tost, np.nan)
        adjusted = holm(p)
        return p, adjusted, tost, _image_verdicts(shifted, adjusted, alpha, tost)

    p_value, p_holm, tost_p, verdicts = decide(np.zeros(len(cells)))
    half_width = (intervals[:, 1] - intervals[:, 0]) / 2.0
    # The largest shift of a difference: two models each off by up to ``drift`` (primary judge), or a share of the CI.
    cell_drift = np.where(is_primary, 2.0 * float(drift), float(drift_halfwidths) * half_width)
    rng = np.random.default_rng((seed, 2))
    flips = np.zeros(len(cells))
    for _ in range(draws):
        model_shift = rng.uniform(-drift, drift, (len(methods) + 1, len(judges)))  # row 0: the baseline
        primary_shift = (model_shift[1:] - model_shift[:1]).ravel()
        shift = np.where(is_primary, primary_shift, rng.uniform(-1.0, 1.0, len(cells)) * cell_drift)
        flips += np.array(decide(np.nan_to_num(shift))[3]) != np.array(verdicts)
    flip_rate = flips / draws if draws else np.zeros(len(cells))
    verdict_array = np.array(verdicts)
    with np.errstate(invalid="ignore"):
        # better/worse: the CI edge nearest 0 within the drift of 0; equivalent: the TOST interval within it of a margin
        nearest = np.minimum(np.abs(intervals[:, 0]), np.abs(intervals[:, 1]))
        to_margin = float(margin) - np.maximum(np.abs(equivalence[:, 0]), np.abs(equivalence[:, 1]))
        edge_near = np.where(
            np.isin(verdict_array, [BETTER, WORSE]),
            nearest <= cell_drift,
            (verdict_array == EQUIVALENT) & (to_margin <= cell_drift),
        )
        sd_image = np.array(
            [
                np.nanstd(row, ddof=1) if count > 1 else math.nan
                for row, count in zip(image_means, n_images, strict=True)
            ]
        )

    records = []
    for c, (method, judge) in enumerate(cells):
        primary = bool(is_primary[c])
        records.append(
            {
                "method": method,
                "baseline": baseline,
                "judge": judge,
                "primary": primary,
                "mean": float(mean[c]),
                "ci_low": float(intervals[c, 0]),
                "ci_high": float(intervals[c, 1]),
                "eq_low": float(equivalence[c, 0]),
                "eq_high": float(equivalence[c, 1]),
                "n_images": int(n_images[c]),
                "n_pairs": int(finite[c].sum()),
                "sd_image": float(sd_image[c]),
                "p_value": float(p_value[c]),
                "p_holm": float(p_holm[c]),
                "margin": float(margin) if primary else math.nan,
                "tost_p": float(tost_p[c]),
                "verdict": verdicts[c],
                "drift": float(cell_drift[c]),
                "flip_rate": float(flip_rate[c]),
                "fragile": bool(flip_rate[c] > 0 or edge_near[c]),
                "power_at_margin": paired_t_power(margin, float(sd_image[c]), int(n_images[c]), alpha)
                if primary
                else math.nan,
                "images_for_power": images_for_power(margin, float(sd_image[c]), 0.8, alpha) if primary else None,
                "level": float(level),
                "resamples": resamples,
                "resample_unit": "image, then (seed) pairs within",
            }
        )
    return pd.DataFrame(records, columns=list(INFERENCE_COLUMNS))


def min_sign_test_p(n: int) -> float:
    """The smallest two-sided exact sign-test p-value that ``n`` paired units can give: ``2^(1 - n)`` (1 for n < 1)."""
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))


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
