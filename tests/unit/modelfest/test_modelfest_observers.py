"""Thresholds, criterion fits, held-out guards and scores of the ModelFest observers."""

import numpy as np
import pytest

from psychovis.modelfest import observers as ob
from psychovis.modelfest import scores
from psychovis.modelfest.experiment import geometry_aware, pyramid


def test_threshold_of_a_closed_form_distance():
    # d(c) = a_s c^2: threshold sqrt(k / a_s), exact on any contrast grid (inside and beyond it)
    a = np.array([1.0, 10.0, 1e4])
    curves = ob.power_curves(a, ob.contrast_grid(1e-3, 1.0, 4))
    for log_k in (-4.0, -1.0, 0.5):
        expected = 0.5 * (log_k - np.log10(a))
        np.testing.assert_allclose(ob.thresholds_log10(curves, log_k), expected, atol=1e-12)
    # a non-power distance: d = c^2 + c^4 -> solve exactly by bisection and compare on a fine grid
    c = ob.contrast_grid(1e-3, 1.0, 200)
    curves = ob.Curves(c, (c**2 + c**4)[None])
    k = 0.3
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid**2 + mid**4 < k else (lo, mid)
    assert 10 ** ob.thresholds_log10(curves, np.log10(k))[0] == pytest.approx(lo, rel=1e-3)


def test_criterion_fit_is_the_constant_db_shift_for_power_laws():
    rng = np.random.default_rng(0)
    energy = 10 ** rng.uniform(-2, 2, 12)
    curves = ob.power_curves(energy, ob.contrast_grid(1e-3, 1.0, 4))
    model = -10 * np.log10(energy)  # dB at criterion 1
    people = model[None] + np.array([[3.0], [-5.0]]) + rng.normal(0, 0.5, (2, 12))
    fit = ob.fit_criteria(curves, people, n_grid=4001)
    residual = people - model[None]
    best = fit.thresholds_db - model[None]
    np.testing.assert_allclose(best[:, 0], residual.mean(axis=1), atol=0.02)


def test_held_out_scores_refuse_their_training_stimuli():
    curves = ob.power_curves(np.arange(1.0, 44.0), ob.contrast_grid(1e-3, 1.0, 4))
    people = np.random.default_rng(1).normal(-30, 3, (3, 43))
    fit = ob.fit_criteria(curves, people, train=range(10))
    assert fit.errors(people, range(10, 43)).shape == (3, 33)
    with pytest.raises(ValueError, match="disjoint"):
        fit.errors(people, [5, 20])
    by_ppd = {60.0: curves, 120.0: ob.power_curves(np.arange(43.0, 0.0, -1), curves.contrasts)}
    result = geometry_aware(by_ppd, people, ["gabor_csf"])
    assert result["reference_px_per_degree"] in by_ppd
    assert np.isfinite(scores.held_out_rms(curves, people, ["gabor_csf"]))


def test_standard_spatial_observer_csf_by_hand():
    from psychovis.csf import contrast_sensitivity

    f = np.array([0.5, 4.0, 16.0])
    expected = 330.74 * (np.exp(-f / 7.28) - 0.837 * np.exp(-(f**2) / 1.809**2))
    np.testing.assert_allclose(contrast_sensitivity(f, "standard_spatial_observer"), expected, rtol=1e-12)
    assert 180 < expected[1] < 200


def test_human_band_and_floors():
    rng = np.random.default_rng(2)
    truth = rng.normal(-30, 5, 43)
    people = truth[None] + rng.normal(0, 1.0, (16, 43)) + rng.normal(0, 3, (16, 1))
    band = scores.human_band(people)
    assert band.shape == (16,)
    assert 0.9 < np.sqrt((band**2).mean()) < 1.3  # offsets removed: about the 1-dB noise
    assert scores.noise_floor_of_mean(people) == pytest.approx(1.0 / 4, rel=0.3)
    curves = {"truth": ob.power_curves(10 ** (-truth / 10), ob.contrast_grid(1e-3, 1.0, 4))}
    ladder, per_stimulus, _ = scores.score_observers(
        curves, people, people[..., None].repeat(2, axis=2), {"truth": "classical"}, resamples=50
    )
    row = ladder.set_index("observer").loc["truth"]
    assert row["ci_low"] <= row["rms_db"] <= row["ci_high"]
    assert row["rms_db"] < ladder.set_index("observer").loc["human", "rms_db"]
    assert row["pearson_r"] > 0.95 and len(per_stimulus) == 43


def test_deep_curves_share_one_pass_and_match_the_closed_form_pixel_distance():
    from psychovis.distances import pixel_mse
    from psychovis.distances.loss import PsychovisualLoss
    from psychovis.modelfest.stimuli import patterns

    unit = patterns(30.0, numbers=[2, 26])  # 64 x 64 px
    contrasts = ob.contrast_grid(1e-2, 1.0, 3)
    maps: dict = {}
    distances = {"pixel_mse": pixel_mse, "vgg": PsychovisualLoss(layers=["relu1_2"], reduction="none")}
    curves = ob.deep_curves(distances, unit, contrasts, 4, "cpu", True, False, maps)
    expected = 0.25 * contrasts[None] ** 2 * (unit.astype(np.float64) ** 2).mean(axis=(1, 2))[:, None]
    np.testing.assert_allclose(curves["pixel_mse"].values, expected, rtol=1e-5)
    assert set(curves) == {"pixel_mse", "vgg", "gain_normalised"}
    assert maps["relu1_2"].shape == (2, 3, 64)
    np.testing.assert_allclose(curves["vgg"].values, maps["relu1_2"].mean(axis=2), rtol=1e-6)
    assert (np.diff(curves["vgg"].values, axis=1) > 0).all()


def test_the_pyramid_reads_the_largest_distance_of_every_scale():
    contrasts = ob.contrast_grid(1e-3, 1.0, 4)
    people = np.random.default_rng(3).normal(-30, 3, (3, 43))
    low, high = np.r_[np.ones(21), np.full(22, 1e-3)], np.r_[np.full(21, 1e-3), np.ones(22)]
    by_ppd = {30.0: ob.power_curves(low, contrasts), 120.0: ob.power_curves(high, contrasts)}
    result = pyramid(by_ppd, people, ["gabor_csf"])
    assert result["scales_px_per_degree"] == [30.0, 120.0]
    # the max of two curves that each hold one half of the energy is the curve of all of it at 1
    alone = geometry_aware({1.0: ob.power_curves(np.ones(43), contrasts)}, people, ["gabor_csf"])
    assert result["held_out_rms_db"] == pytest.approx(alone["held_out_rms_db"], abs=1e-9)
    assert result["train_rms_db"] == pytest.approx(alone["train_rms_db"], abs=1e-9)
