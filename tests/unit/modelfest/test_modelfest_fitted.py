"""Per-map weights fitted to people: they find the human-like map and are scored held out only."""

import numpy as np
import pytest
from scipy import stats

from psychovis.modelfest import fitted


def test_fitted_weights_find_the_human_like_map_and_score_held_out():
    rng = np.random.default_rng(0)
    n_s, n_m = 43, 8
    contrasts = np.geomspace(1e-3, 1.0, 4)
    truth_db = rng.normal(-30, 6, n_s)
    gains = 10 ** rng.normal(3, 0.6, (n_s, n_m))  # the same scale as the human-like map
    gains[:, 3] = 10 ** (-truth_db / 10)  # map 3 alone predicts the people
    errors = gains[:, None, :] * contrasts[None, :, None] ** 2
    people = truth_db[None] + rng.normal(0, 0.5, (4, n_s))
    train = np.arange(20)
    weights, numbers = fitted.premise_test(
        errors, contrasts, people, train, {"vfss": np.arange(n_m)}, ridge=1e-3, null_draws=200
    )
    assert (weights > 0).all() and np.isclose(weights.mean(), 1.0)
    assert int(np.argmax(weights)) == 3
    assert numbers["held_out_rms_db"] < numbers["held_out_rms_db_uniform"]
    assert numbers["held_out_rms_db"] < 2.0
    assert -1 <= numbers["spearman_vfss"] <= 1


def test_fit_uses_only_the_training_stimuli():
    rng = np.random.default_rng(1)
    gain = 10 ** rng.normal(0, 1, (10, 5))
    target = rng.normal(-30, 5, 10)
    a = fitted.fit_weights(gain, target, range(5))
    changed = target.copy()
    changed[5:] += 50.0  # the held-out stimuli cannot move the fit
    np.testing.assert_allclose(fitted.fit_weights(gain, changed, range(5)), a)


def _maps(seed: int = 3, maps: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Response gains and weights that partly follow them (as the fitted weights follow gain)."""
    rng = np.random.default_rng(seed)
    gain = np.exp(rng.normal(0, 1, maps))
    weights = np.exp(-0.5 * fitted.normal_scores(gain) + rng.normal(0, 1, maps))
    return gain, weights


def test_every_null_draw_has_the_scores_spearman_with_gain():
    gain, _ = _maps()
    draws = fitted.gain_matched_scores(gain, 0.39, draws=300, seed=5)
    achieved = np.array([stats.spearmanr(row, gain).statistic for row in draws])
    np.testing.assert_allclose(achieved, 0.39, atol=1e-3)
    np.testing.assert_array_equal(draws, fitted.gain_matched_scores(gain, 0.39, draws=300, seed=5))  # seeded
    assert not np.allclose(draws[0], draws[1])  # ... and random


def test_a_score_that_is_pure_gain_sits_inside_its_null():
    gain, weights = _maps()
    rng = np.random.default_rng(11)
    scores = gain * np.exp(rng.normal(0, 0.3, gain.size))  # gain and nothing about the weights
    result = fitted.null_test(scores, weights, gain, draws=500, seed=2)
    assert result["spearman_gain"] > 0.8
    assert result["null_low"] <= result["spearman"] <= result["null_high"]
    assert 2.5 < result["null_percentile"] < 97.5 and result["null_p"] > 0.05
    assert result["null_mean"] == pytest.approx(result["spearman"], abs=0.1)


def test_a_score_equal_to_the_weights_is_far_above_its_null():
    gain, weights = _maps()
    result = fitted.null_test(weights, weights, gain, draws=500, seed=2)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["spearman"] > result["null_high"] + 0.5
    assert result["null_percentile"] == 100.0 and result["null_p"] == pytest.approx(1 / 501)


def test_premise_test_reports_a_null_per_score():
    rng = np.random.default_rng(4)
    n_s, n_m = 43, 16
    contrasts = np.geomspace(1e-3, 1.0, 4)
    errors = 10 ** rng.normal(3, 0.6, (n_s, n_m))[:, None, :] * contrasts[None, :, None] ** 2
    people = rng.normal(-30, 5, (3, n_s))
    scores = {"vfss": rng.random(n_m), "vfss_normalised": rng.random(n_m)}
    _, numbers = fitted.premise_test(errors, contrasts, people, np.arange(20), scores, null_draws=100, seed=1)
    for name in scores:
        assert numbers[f"null_{name}_low"] <= numbers[f"null_{name}_mean"] <= numbers[f"null_{name}_high"]
        assert 0 < numbers[f"null_{name}_p"] <= 1 and -1 <= numbers[f"spearman_{name}_gain"] <= 1
    assert numbers["null_draws"] == 100
    _, bare = fitted.premise_test(errors, contrasts, people, np.arange(20), None, null_draws=100)
    assert not any(key.startswith(("null_vfss", "spearman_vfss")) for key in bare)
