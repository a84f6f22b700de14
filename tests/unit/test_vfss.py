"""Tests of psychovis.vfss: VFSS scores, L1 weights and top-k selection."""

import numpy as np
import pandas as pd
import pytest

from psychovis import vfss
from psychovis.errors import ParamsError


def _code_csf(f):
    f = np.asarray(f, dtype=np.float64)
    return 2.6 * (0.0192 + 0.114 * f) * np.exp(-0.1254 * f)


def test_vfss_hand_computed_example():
    frequency = np.array([0.1, 0.6, 1.1, 1.6, 2.1])  # spacing 0.5 cpd: the gradient still uses unit spacing
    responses = np.array([[0.0, 1.0, 4.0, 9.0, 16.0]])
    # numpy.gradient, unit spacing: one-sided at the ends, central differences inside.
    slope = np.array([1.0 - 0.0, (4.0 - 0.0) / 2, (9.0 - 1.0) / 2, (16.0 - 4.0) / 2, 16.0 - 9.0])
    expected = float(np.sum(_code_csf(frequency) * slope))
    score = vfss.vfss_scores(responses, frequency)
    assert score.shape == (1,)
    assert score[0] == pytest.approx(expected, rel=1e-12)
    # Spacing by frequency (0.5 cpd) would double the score: the paper's code does not do that.
    assert score[0] != pytest.approx(2 * expected, rel=1e-3)


def test_vfss_uses_absolute_slopes_and_the_chosen_csf():
    frequency = np.array([1.0, 4.0, 8.0, 16.0])
    up = np.array([0.0, 2.0, 1.0, 5.0])
    responses = np.stack([up, -up, up + 3.0])
    slope = np.abs(np.array([2.0, 0.5, 1.5, 4.0]))
    code = vfss.vfss_scores(responses, frequency)
    np.testing.assert_allclose(code, np.sum(_code_csf(frequency) * slope), rtol=1e-12)
    textbook_csf = 2.6 * (0.0192 + 0.114 * frequency) * np.exp(-((0.114 * frequency) ** 1.1))
    textbook = vfss.vfss_scores(responses, frequency, csf="mannos_sakrison")
    np.testing.assert_allclose(textbook, np.sum(textbook_csf * slope), rtol=1e-12)
    assert not np.allclose(code, textbook)


def test_flat_curve_scores_zero():
    assert vfss.vfss_scores(np.full((1, 5), 3.0), np.arange(1.0, 6.0))[0] == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_responses_are_an_error_not_a_zero_score(bad):
    """The authors' code turns NaN into 0, which silently ranks a broken map last; here it is an error."""
    frequency = np.arange(1.0, 6.0)
    responses = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, bad, 2.0, 1.0]])
    with pytest.raises(ValueError, match=r"1 tuning curve\(s\) hold NaN or infinite responses \(first: map 1\)"):
        vfss.vfss_scores(responses, frequency)


def test_map_scores_normalise_by_the_mean_response():
    frequency = np.arange(1.0, 6.0)
    curve = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    responses = np.stack([curve, 10.0 * curve, np.zeros(5)])  # same shape, ten times the gain; a dead map
    paper = vfss.map_scores(responses, frequency, normalise="none")
    shape = vfss.map_scores(responses, frequency, normalise="mean_response")
    assert paper[1] == pytest.approx(10 * paper[0])  # the paper's score follows gain
    assert shape[1] == pytest.approx(shape[0]) and shape[2] == 0.0  # the shape-only score does not
    with pytest.raises(ParamsError, match=r"vfss.normalise must be one of \['none', 'mean_response'\]"):
        vfss.map_scores(responses, frequency, normalise="zscore")


def test_ranking_agreement_per_layer():
    layers = np.array(["a"] * 4 + ["b"] * 3)
    reference = np.array([4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0])
    other = np.array([4.0, 3.0, 1.0, 2.0, 3.0, 2.0, 1.0])  # a: top-2 kept; b: reversed
    table = vfss.ranking_agreement(reference, other, layers, top_k=2).set_index("layer")
    assert table.loc["a", "spearman"] == pytest.approx(0.8) and table.loc["a", "top_k_overlap"] == 1.0
    assert table.loc["b", "spearman"] == pytest.approx(-1.0) and table.loc["b", "top_k_overlap"] == 0.5
    assert table.loc["b", "maps"] == 3


def test_vfss_rejects_one_dimensional_responses():
    with pytest.raises(ValueError, match="shape"):
        vfss.vfss_scores(np.ones(5), np.arange(5.0))


def test_vfss_rejects_mismatched_axis():
    with pytest.raises(ValueError, match="shape"):
        vfss.vfss_scores(np.ones((2, 4)), np.arange(5.0))
    with pytest.raises(ValueError, match="two frequencies"):
        vfss.vfss_scores(np.ones((2, 1)), np.array([1.0]))


def test_vfss_rejects_unknown_csf():
    with pytest.raises(ParamsError, match=r"^csf must be one of .*'barten'"):
        vfss.vfss_scores(np.ones((1, 3)), np.arange(3.0), csf="barten")


def test_l1_weights():
    scores = np.array([1.0, 3.0, 0.0, 4.0])
    weights = vfss.l1_weights(scores)
    np.testing.assert_allclose(weights, scores / 8.0)
    assert np.abs(weights).sum() == pytest.approx(1.0)
    mixed = vfss.l1_weights(np.array([-1.0, 3.0]))
    np.testing.assert_allclose(mixed, [-0.25, 0.75])
    assert np.abs(mixed).sum() == pytest.approx(1.0)


def test_l1_weights_all_zero_gives_zeros():
    weights = vfss.l1_weights(np.zeros(5))
    assert weights.shape == (5,)
    assert not np.any(weights)
    assert not np.any(np.isnan(weights))


def test_top_k_picks_the_largest():
    scores = np.array([0.5, 9.0, 0.1, 7.0, 3.0, 8.0])
    mask = vfss.top_k_mask(scores, 3)
    assert set(np.flatnonzero(mask)) == {1, 3, 5}
    np.testing.assert_allclose(mask[mask > 0], 1 / 3)
    assert mask.sum() == pytest.approx(1.0)


def test_top_k_ties_are_stable():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.flatnonzero(vfss.top_k_mask(scores, 2)), [1, 2])
    np.testing.assert_array_equal(np.flatnonzero(vfss.top_k_mask(scores, 4)), [1, 2, 3, 4])


def test_top_k_all_is_uniform():
    np.testing.assert_allclose(vfss.top_k_mask(np.arange(4.0), 4), 0.25)


@pytest.mark.parametrize("k", [0, -1, 6])
def test_top_k_rejects_bad_k(k):
    with pytest.raises(ParamsError, match=r"weights\.top_k.*\[1, 5\]"):
        vfss.top_k_mask(np.arange(5.0), k)


def test_normalised_vfss_divides_out_the_gain() -> None:
    scores, mean_response = np.array([2.0, 4.0, 1.0, 3.0]), np.array([1.0, 2.0, 0.0, -1.0])
    np.testing.assert_allclose(vfss.normalised_vfss(scores, mean_response), [2.0, 2.0, 0.0, 0.0])


def test_gain_correlations_measure_how_much_vfss_ranks_gain() -> None:
    rng = np.random.default_rng(0)
    gain = rng.uniform(0.1, 10.0, 50)
    table = pd.DataFrame(
        {
            "layer": "relu3_2",
            "vfss": gain * 3.0,
            "mean_response": gain,
            "response_range": 2 * gain + rng.normal(0, 1e-3, 50),
        }
    )
    table["vfss_normalised"] = vfss.normalised_vfss(table["vfss"], table["mean_response"]) + rng.normal(0, 1e-6, 50)
    row = vfss.gain_correlations(table).iloc[0]
    assert row["maps"] == 50 and row["spearman_mean"] == pytest.approx(1.0)
    assert row["spearman_range"] > 0.99 and abs(row["spearman_normalised_range"]) < 0.5
