"""Tests of psychovis.tuning on synthetic tuning curves with known properties."""

import math

import numpy as np
import pandas as pd
import pytest

from psychovis import gratings, tuning

PEAK_CPD = 4.1  # a sample of the paper axis 0.1:0.5:30
SIGMA_OCTAVES = 0.5
FWHM_OCTAVES = 2 * math.sqrt(2 * math.log(2)) * SIGMA_OCTAVES  # 1.177 octaves


def _gaussian(f):
    return np.exp(-((np.log2(f) - np.log2(PEAK_CPD)) ** 2) / (2 * SIGMA_OCTAVES**2))


def _low_pass(f):
    return 1 / (1 + (f / 5.0) ** 4)


def _high_pass(f):
    x = (f / 10.0) ** 4
    return x / (1 + x)


# (layer, channel, curve): maps deliberately not in alphabetical or channel order.
MAPS = [
    ("relu2_1", 7, _gaussian),
    ("relu2_1", 3, _low_pass),
    ("relu2_1", 5, _high_pass),
    ("relu1_1", 0, lambda f: np.zeros_like(f)),
    ("relu1_1", 1, lambda f: np.ones_like(f)),
]


@pytest.fixture(scope="module")
def stimuli():
    return gratings.stimulus_table(phases_rad=[0.0, math.pi / 2], contrasts=[0.5, 1.0])


@pytest.fixture(scope="module")
def features(stimuli):
    """Responses: curve +/- 0.2 at the two phases (mean: the curve); garbage at the lower contrast."""
    rng = np.random.default_rng(0)
    rows = []
    for layer, channel, curve in MAPS:
        f = stimuli["frequency_cpd"].to_numpy()
        response = curve(f) + np.where(stimuli["phase_rad"] == 0.0, 0.2, -0.2)
        response = np.where(stimuli["contrast"] == 1.0, response, 100 * rng.random(len(stimuli)))
        frame = pd.DataFrame(
            {"layer": layer, "channel": channel, "stimulus_id": stimuli["stimulus_id"], "response": response}
        )
        rows.append(frame.iloc[::-1])  # stimulus order within a map must not matter
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def curves(features, stimuli):
    return tuning.tuning_curves(features, stimuli)


@pytest.fixture(scope="module")
def summary(curves):
    return tuning.summarize(curves, min_response=1e-6)


def test_tuning_curves_axis_and_map_order(curves):
    axis = gratings.frequency_axis(0.1, 30, 0.5)
    np.testing.assert_allclose(curves.frequency_cpd, axis)
    np.testing.assert_allclose(curves.frequency_cpp, gratings.cycles_per_pixel(axis))
    assert list(curves.layer) == [layer for layer, _, _ in MAPS]
    assert list(curves.channel) == [channel for _, channel, _ in MAPS]
    assert curves.responses.shape == (len(MAPS), 60)


def test_tuning_curves_average_phases_at_top_contrast(curves):
    for row, (_, _, curve) in enumerate(MAPS):
        np.testing.assert_allclose(curves.responses[row], curve(curves.frequency_cpd), atol=1e-12)


def test_band_pass_preferred_frequency_and_bandwidth(summary):
    row = summary.iloc[0]
    assert row["tuning_class"] == "band-pass"
    assert row["preferred_frequency_cpd"] == pytest.approx(PEAK_CPD)
    assert row["preferred_frequency_cpp"] == pytest.approx(float(gratings.cycles_per_pixel(PEAK_CPD)))
    assert row["peak_response"] == pytest.approx(1.0)
    assert row["bandwidth_octaves"] == pytest.approx(FWHM_OCTAVES, abs=0.02)
    half = FWHM_OCTAVES / 2
    assert row["low_cutoff_cpd"] == pytest.approx(PEAK_CPD * 2**-half, rel=0.02)
    assert row["high_cutoff_cpd"] == pytest.approx(PEAK_CPD * 2**half, rel=0.02)
    assert row["bandwidth_octaves"] == pytest.approx(math.log2(row["high_cutoff_cpd"] / row["low_cutoff_cpd"]))


def test_low_pass(summary):
    row = summary.iloc[1]
    assert row["tuning_class"] == "low-pass"
    assert row["preferred_frequency_cpd"] == pytest.approx(0.1)
    # Half-way between the sampled minimum and the peak: 1/(1+(f/5)^4) = level.
    level = _low_pass(29.6) + 0.5 * (_low_pass(0.1) - _low_pass(29.6))
    assert row["high_cutoff_cpd"] == pytest.approx(5.0 * (1 / level - 1) ** 0.25, rel=0.01)
    assert math.isnan(row["low_cutoff_cpd"])
    assert math.isnan(row["bandwidth_octaves"])


def test_high_pass(summary):
    row = summary.iloc[2]
    assert row["tuning_class"] == "high-pass"
    assert row["preferred_frequency_cpd"] == pytest.approx(29.6)
    level = _high_pass(0.1) + 0.5 * (_high_pass(29.6) - _high_pass(0.1))
    assert row["low_cutoff_cpd"] == pytest.approx(10.0 * (level / (1 - level)) ** 0.25, rel=0.01)
    assert math.isnan(row["high_cutoff_cpd"])
    assert math.isnan(row["bandwidth_octaves"])


def test_zero_and_flat_curves(summary):
    zero, flat = summary.iloc[3], summary.iloc[4]
    assert zero["tuning_class"] == "unresponsive"
    assert math.isnan(zero["preferred_frequency_cpd"])
    assert math.isnan(zero["bandwidth_octaves"])
    assert flat["tuning_class"] == "broadband"
    assert math.isnan(flat["bandwidth_octaves"])


def test_summary_columns_and_identity(summary):
    assert list(summary.columns) == [
        "layer",
        "channel",
        "preferred_frequency_cpd",
        "preferred_frequency_cpp",
        "peak_response",
        "min_response",
        "low_cutoff_cpd",
        "high_cutoff_cpd",
        "bandwidth_octaves",
        "tuning_class",
    ]
    assert list(summary["layer"]) == [layer for layer, _, _ in MAPS]
    assert list(summary["channel"]) == [channel for _, channel, _ in MAPS]
    assert set(summary["tuning_class"]) <= set(tuning.TUNING_CLASSES)


def test_min_response_threshold(curves):
    summary = tuning.summarize(curves, min_response=2.0)
    assert set(summary["tuning_class"]) == {"unresponsive"}
    assert summary["preferred_frequency_cpd"].isna().all()


def test_bandwidth_tracks_the_width():
    """Bandwidth of log-Gaussians of several widths, on a log-spaced axis, against 2.355 sigma."""
    frequency = 2.0 ** np.linspace(-3, 5, 161)
    sigmas = np.array([0.3, 0.6, 1.0])
    responses = np.exp(-((np.log2(frequency)[None] - 1.0) ** 2) / (2 * sigmas[:, None] ** 2))
    curves = tuning.TuningCurves(
        frequency_cpd=frequency,
        frequency_cpp=frequency / 100,
        layer=np.array(["relu1_1"] * 3, dtype=object),
        channel=np.arange(3),
        responses=responses,
    )
    summary = tuning.summarize(curves)
    np.testing.assert_allclose(summary["bandwidth_octaves"], 2 * math.sqrt(2 * math.log(2)) * sigmas, atol=0.01)
    np.testing.assert_allclose(summary["preferred_frequency_cpd"], 2.0, rtol=1e-9)


def test_layer_summary_shares(summary):
    per_layer = tuning.layer_summary(summary)
    assert list(per_layer["layer"]) == ["relu2_1", "relu1_1"]  # order of first appearance
    assert list(per_layer["maps"]) == [3, 2]
    share_columns = [f"share_{name.replace('-', '_')}" for name in tuning.TUNING_CLASSES]
    assert set(share_columns) <= set(per_layer.columns)
    first, second = per_layer.iloc[0], per_layer.iloc[1]
    for name in ("share_band_pass", "share_low_pass", "share_high_pass"):
        assert first[name] == pytest.approx(1 / 3)
    assert first["share_unresponsive"] == 0.0
    assert first["share_broadband"] == 0.0
    assert second["share_unresponsive"] == pytest.approx(0.5)
    assert second["share_broadband"] == pytest.approx(0.5)
    np.testing.assert_allclose(per_layer[share_columns].sum(axis=1), 1.0)
    assert first["median_preferred_frequency_cpd"] == pytest.approx(PEAK_CPD)
    assert first["median_bandwidth_octaves"] == pytest.approx(summary["bandwidth_octaves"].iloc[0])
    assert second["median_preferred_frequency_cpd"] == pytest.approx(0.1)


def test_nyquist_edge_counts_high_pass_maps_peaking_at_the_last_sample(summary):
    edge = tuning.nyquist_edge(summary)
    high_pass = summary[summary["tuning_class"] == "high-pass"]
    assert edge["high_pass"] == len(high_pass) >= 1
    assert edge["frequency_cpp"] == pytest.approx(summary["preferred_frequency_cpp"].max())
    at_last = np.isclose(high_pass["preferred_frequency_cpp"], edge["frequency_cpp"]).sum()
    assert edge["maps"] == at_last and edge["share"] == pytest.approx(at_last / len(high_pass))
    none = tuning.nyquist_edge(summary[summary["tuning_class"] != "high-pass"])
    assert none["high_pass"] == 0 and math.isnan(none["share"])
