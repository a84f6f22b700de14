"""Images as the unit of inference: hierarchical bootstrap, Holm, TOST, power and drift robustness."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from psychovis import statistics as st
from psychovis.errors import ParamsError

DIRECTIONS = {"lpips_alex": False, "psnr_y": True}


def _two_level(rng: np.random.Generator, images: int, seeds: int, sd_image: float, sd_seed: float) -> np.ndarray:
    """``y_ij = a_i + e_ij``, image effects ``a_i ~ N(0, sd_image^2)``, seed noise ``e_ij ~ N(0, sd_seed^2)``."""
    return (rng.normal(0, sd_image, (images, 1)) + rng.normal(0, sd_seed, (images, seeds))).ravel()


@pytest.mark.parametrize("within", [False, True])
def test_hierarchical_bootstrap_se_matches_the_analytic_se(within: bool) -> None:
    """Averaged over simulated data sets with known variance components, the bootstrap variance of the mean is
    ``(I - 1) / I (s_a^2 / I + s_e^2 / (I J))`` resampling images only, plus ``(J - 1) / J s_e^2 / (I J)`` when
    seeds are resampled within images too (Davison & Hinkley 1997, Sec. 3.8)."""
    images, seeds, sd_image, sd_seed = 40, 4, 1.0, 2.0
    clusters = np.repeat(np.arange(images), seeds)
    counts = st.cluster_bootstrap_counts(clusters, 1500, seed=3, within=within)
    rng = np.random.default_rng(0)
    variances = []
    for _ in range(40):
        y = _two_level(rng, images, seeds, sd_image, sd_seed)
        replicates = counts @ y / counts.sum(axis=1)
        variances.append(replicates.var())
    analytic = sd_image**2 / images + sd_seed**2 / (images * seeds)
    expected = (images - 1) / images * analytic + (within * (seeds - 1) / seeds * sd_seed**2 / (images * seeds))
    assert math.sqrt(np.mean(variances)) == pytest.approx(math.sqrt(expected), rel=0.06)
    if not within:  # the image-level bootstrap SE is the analytic SE of the mean (up to (I-1)/I)
        assert math.sqrt(np.mean(variances)) == pytest.approx(math.sqrt(analytic), rel=0.06)


def test_cluster_counts_without_within_keep_clusters_whole() -> None:
    clusters = np.array([0, 0, 0, 1, 1, 2])
    counts = st.cluster_bootstrap_counts(clusters, 50, seed=1, within=False)
    # each drawn cluster contributes each of its rows once: rows of one cluster have equal counts
    assert np.all(counts[:, 0] == counts[:, 1]) and np.all(counts[:, 1] == counts[:, 2])
    assert np.all(counts[:, 3] == counts[:, 4])
    assert np.all(counts[:, [0, 3, 5]].sum(axis=1) == 3)


def test_holm_hand_example() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> monotone 0.06
    adjusted = st.holm([0.01, 0.04, 0.03, 0.005, math.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    np.testing.assert_allclose(st.holm([0.5, 0.9]), [1.0, 1.0])


def test_tost_matches_two_one_sided_scipy_t_tests() -> None:
    differences = np.array([0.3, -0.1, 0.2, 0.05, 0.15, -0.05, 0.1, 0.25])
    margin = 0.4
    p_lower, p_upper, p = st.tost_paired(differences, margin)
    expected_lower = stats.ttest_1samp(differences, -margin, alternative="greater").pvalue
    expected_upper = stats.ttest_1samp(differences, margin, alternative="less").pvalue
    assert p_lower == pytest.approx(expected_lower, rel=1e-10)
    assert p_upper == pytest.approx(expected_upper, rel=1e-10)
    assert p == pytest.approx(max(expected_lower, expected_upper), rel=1e-10)
    # equivalence at alpha = 0.05 <=> the 90 % t interval lies inside the margins
    low, high = stats.t.interval(0.90, differences.size - 1, differences.mean(), stats.sem(differences))
    assert (p <= 0.05) == (-margin < low and high < margin)
    assert st.tost_paired(differences, 0.05)[2] > 0.05  # a tight margin cannot be shown
    with pytest.raises(ParamsError, match="margin"):
        st.tost_paired(differences, 0.0)


def test_row_tests_match_the_scalar_tests() -> None:
    rng = np.random.default_rng(2)
    rows = rng.normal(0.01, 0.02, (6, 5))
    rows[1, 2] = math.nan
    rows[2] = 0.003  # constant: no t-test, TOST decided by the margin
    p, tost = st.row_t_tests(rows, 0.02)
    for row, p_row, tost_row in zip(rows, p, tost, strict=True):
        expected = st.paired_t_p(row)
        assert (math.isnan(p_row) and math.isnan(expected)) or p_row == pytest.approx(expected, rel=1e-9)
        assert tost_row == pytest.approx(st.tost_paired(row, 0.02)[2], rel=1e-9)
    assert math.isnan(st.row_t_tests(np.array([[1.0, math.nan]]), 0.1)[0][0])


def test_power_of_the_paired_t_test() -> None:
    # Cohen's d = 1 with 10 pairs: power 0.803 (two-sided alpha 0.05); 9 pairs fall short of 0.8
    assert st.paired_t_power(1.0, 1.0, 10) == pytest.approx(0.8031, abs=0.002)
    assert st.images_for_power(1.0, 1.0) == 10
    assert st.images_for_power(0.5, 1.0) == 34
    assert math.isnan(st.paired_t_power(1.0, 0.0, 10)) and st.images_for_power(0.0, 1.0) is None
    assert st.min_sign_test_p(3) == 0.25


def _scores(effects: dict[str, float], images: int, seeds: int, sd_image: float, sd_seed: float) -> pd.DataFrame:
    """Long scores of vgg (baseline) and methods whose LPIPS is lower by ``effects[method]`` (better)."""
    rng = np.random.default_rng(11)
    base = 0.3 + rng.normal(0, 0.05, (images, seeds))
    rows = []
    for method, effect in {"vgg": 0.0, **effects}.items():
        image_part = rng.normal(0, sd_image, (images, 1)) if method != "vgg" else 0.0
        lpips = base - effect + (image_part + rng.normal(0, sd_seed, (images, seeds)) if method != "vgg" else 0.0)
        for i in range(images):
            for s in range(seeds):
                rows.append((method, s, f"im{i:02d}", "lpips_alex", float(lpips[i, s])))
                rows.append((method, s, f"im{i:02d}", "psnr_y", float(25 - 10 * lpips[i, s])))
    return pd.DataFrame(rows, columns=list(st.SCORE_COLUMNS))


def test_image_level_inference_verdicts_equivalence_and_power() -> None:
    scores = _scores({"good": 0.05, "same": 0.0}, images=20, seeds=3, sd_image=0.004, sd_seed=0.002)
    table = st.image_level_inference(
        scores, "vgg", DIRECTIONS, "lpips_alex", margin=0.01, drift=0.0009, resamples=400, draws=50
    )
    assert list(table.columns) == list(st.INFERENCE_COLUMNS)
    cell = table.set_index(["method", "judge"])
    assert cell.loc[("good", "lpips_alex"), "verdict"] == st.BETTER
    assert cell.loc[("good", "psnr_y"), "verdict"] == st.BETTER
    assert cell.loc[("same", "lpips_alex"), "verdict"] == st.EQUIVALENT  # primary judge: TOST within +-0.01
    assert cell.loc[("same", "psnr_y"), "verdict"] == st.NO_DIFFERENCE  # no margin for the other judges
    assert not cell.loc[("good", "lpips_alex"), "fragile"]
    assert cell.loc[("good", "lpips_alex"), "n_images"] == 20 and cell.loc[("good", "lpips_alex"), "n_pairs"] == 60
    assert cell.loc[("same", "lpips_alex"), "power_at_margin"] > 0.9
    assert (table["p_holm"] >= table["p_value"]).all()
    assert table.loc[table["primary"], "images_for_power"].notna().all()


def test_verdicts_near_zero_are_fragile() -> None:
    # a small effect whose interval edge lies within the drift of zero
    scores = _scores({"small": 0.002}, images=12, seeds=2, sd_image=0.002, sd_seed=0.001)
    table = st.image_level_inference(scores, "vgg", DIRECTIONS, "lpips_alex", margin=0.01, drift=0.003, draws=100)
    primary = table[table["primary"]].iloc[0]
    assert primary["fragile"] and primary["flip_rate"] > 0
    robust = st.image_level_inference(scores, "vgg", DIRECTIONS, "lpips_alex", margin=0.01, drift=0.0, draws=20)
    assert robust["flip_rate"].eq(0).all()


def test_image_level_inference_rejects_an_unscored_primary_judge() -> None:
    scores = _scores({"good": 0.05}, images=4, seeds=2, sd_image=0.01, sd_seed=0.01)
    with pytest.raises(ParamsError, match="primary judge 'dists'"):
        st.image_level_inference(scores, "vgg", DIRECTIONS, "dists", margin=0.01, drift=0.001)


def test_with_three_images_only_the_image_level_test_holds_its_alpha() -> None:
    """Under no difference, with 3 images carrying ~90 % of the variance (as measured), a 95 % percentile interval
    excludes 0 far more often than 5 %: resampling pairs ~0.4, images then pairs ~0.23 (all 3 images of one sign:
    0.25); the paired t-test on the image means keeps ~0.05."""
    rng = np.random.default_rng(1)
    images, seeds, datasets = 3, 3, 1000
    data = (rng.normal(0, 1, (datasets, images, 1)) + rng.normal(0, 0.33, (datasets, images, seeds))).reshape(
        datasets, -1
    )
    clusters = np.repeat(np.arange(images), seeds)

    def rejection_rate(counts: np.ndarray) -> float:
        replicates = (counts @ data.T) / counts.sum(axis=1, keepdims=True)  # (resamples, datasets)
        low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
        return float(np.mean((low > 0) | (high < 0)))

    pairs = rejection_rate(st.bootstrap_counts(images * seeds, 1000, seed=0))
    clustered = rejection_rate(st.cluster_bootstrap_counts(clusters, 1000, seed=0))
    p, _ = st.row_t_tests(data.reshape(datasets, images, seeds).mean(axis=2), 1.0)
    assert pairs > 0.3 and 0.15 < clustered < 0.3
    assert float(np.mean(p <= 0.05)) < 0.08
