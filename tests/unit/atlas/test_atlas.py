"""Tests of psychovis.atlas: log-Gaussian fits, circular variance, a Gabor network probed end to end,
the CSF/geometry sensitivity table, LPIPS agreement, windowed gratings, and the two atlas stages."""

from __future__ import annotations

import math
import runpy
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from torch import nn

from psychovis import atlas, gratings
from psychovis.errors import DataError, ParamsError
from psychovis.pipeline import params

FREQUENCIES = atlas.log_frequencies(0.0125, 0.45, 14)


# ------------------------------------------------------------------------------------------
# Log-Gaussian fits
# ------------------------------------------------------------------------------------------


def _synthetic(count: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    f0 = 2.0 ** rng.uniform(np.log2(0.025), np.log2(0.25), count)
    sigma = rng.uniform(0.4, 1.4, count)
    amplitude = rng.uniform(0.5, 2.0, count)
    baseline = rng.uniform(0.0, 1.0, count)
    curves = atlas.log_gaussian(FREQUENCIES[None], f0[:, None], sigma[:, None], amplitude[:, None], baseline[:, None])
    return curves + rng.normal(0.0, noise, curves.shape), f0, sigma, amplitude, baseline


def test_fit_recovers_noise_free_parameters():
    curves, f0, sigma, amplitude, baseline = _synthetic(300, noise=0.0)
    fit = atlas.fit_log_gaussian(FREQUENCIES, curves)
    assert np.abs(np.log2(fit.preferred / f0)).max() < 0.01
    np.testing.assert_allclose(fit.sigma_octaves, sigma, rtol=0.01)
    np.testing.assert_allclose(fit.bandwidth_octaves, 2 * math.sqrt(2 * math.log(2)) * sigma, rtol=0.01)
    np.testing.assert_allclose(fit.amplitude, amplitude, rtol=0.02)
    np.testing.assert_allclose(fit.baseline, baseline, atol=0.02)
    assert fit.r2.min() > 0.9999
    assert fit.peak_in_range.all()
    assert not fit.at_bound.any()


def test_fit_recovers_parameters_under_noise():
    curves, f0, sigma, amplitude, _ = _synthetic(2000, noise=0.03, seed=1)
    fit = atlas.fit_log_gaussian(FREQUENCIES, curves)
    error = np.abs(np.log2(fit.preferred / f0))
    assert np.median(error) < 0.02
    assert np.quantile(error, 0.95) < 0.08
    assert np.median(np.abs(fit.sigma_octaves / sigma - 1)) < 0.03
    assert np.median(np.abs(fit.amplitude / amplitude - 1)) < 0.03
    assert np.median(fit.r2) > 0.99


def test_fit_is_vectorised_and_fast_on_4224_maps():
    import time

    curves, *_ = _synthetic(4224, noise=0.02, seed=2)
    started = time.perf_counter()
    fit = atlas.fit_log_gaussian(FREQUENCIES, curves)
    assert time.perf_counter() - started < 10.0  # about 1 s on 2 busy cores
    assert np.isfinite(fit.preferred).all()


def test_fit_skips_unselected_and_flat_maps():
    curves, *_ = _synthetic(4, noise=0.0)
    curves[2] = 0.7  # flat: no bump to fit
    curves[3] = np.linspace(1.0, 0.0, FREQUENCIES.size) ** 3  # monotone: peak below the probed range
    fit = atlas.fit_log_gaussian(FREQUENCIES, curves, fit=np.array([True, False, True, True]))
    assert np.isfinite(fit.preferred[0])
    for field in ("preferred", "sigma_octaves", "amplitude", "baseline", "r2"):
        assert np.isnan(getattr(fit, field)[1]), field
    assert np.isnan(fit.preferred[2])
    assert fit.amplitude[2] == 0
    assert not fit.peak_in_range[1:3].any()
    assert fit.preferred[3] < FREQUENCIES[0] and not fit.peak_in_range[3]
    assert not fit.at_bound[1:3].any()  # not fitted: no bound to report
    narrow = np.where(np.arange(FREQUENCIES.size) == 6, 1.0, 0.0)[None]  # one sample: narrower than the grid
    assert atlas.fit_log_gaussian(FREQUENCIES, narrow).at_bound[0]


def test_fit_rejects_bad_axes():
    with pytest.raises(ValueError, match="positive and increasing"):
        atlas.fit_log_gaussian(FREQUENCIES[::-1], np.ones((2, FREQUENCIES.size)))
    with pytest.raises(ValueError, match="shape"):
        atlas.fit_log_gaussian(FREQUENCIES, np.ones((2, 3)))


# ------------------------------------------------------------------------------------------
# Orientation: Brain-Score's circular variance
# ------------------------------------------------------------------------------------------

ORIENTATIONS = np.array(atlas.even_orientations(8))


def _brainscore_circular_variance(curve: np.ndarray, orientation: np.ndarray) -> float:
    """``calc_circular_variance`` of brainscore_vision.benchmark_helpers.properties_common, verbatim maths."""
    vect_sum = curve.dot(np.exp(1j * 2 * orientation / 180 * np.pi))
    return 1 - np.absolute(vect_sum) / np.sum(np.absolute(curve))


def test_circular_variance_is_one_for_isotropic_and_zero_for_single_orientation():
    # Brain-Score's convention: 0 = perfectly selective, 1 = unselective.
    flat = np.full(8, 3.0)
    single = np.zeros(8)
    single[3] = 5.0
    values = atlas.circular_variance(np.stack([flat, single]), ORIENTATIONS)
    np.testing.assert_allclose(values, [1.0, 0.0], atol=1e-12)


def test_circular_variance_matches_brainscore_and_cosine_tuning():
    rng = np.random.default_rng(3)
    curves = rng.uniform(0, 1, (20, 8))
    expected = [_brainscore_circular_variance(curve, ORIENTATIONS) for curve in curves]
    np.testing.assert_allclose(atlas.circular_variance(curves, ORIENTATIONS), expected, rtol=1e-12)
    # r = 1 + cos(2 (theta - 30)): |sum r e^{2i theta}| = N/2, sum r = N -> CV = 0.5, preferred 30 deg.
    cosine = 1 + np.cos(2 * np.deg2rad(ORIENTATIONS - 30.0))
    assert atlas.circular_variance(cosine, ORIENTATIONS) == pytest.approx(0.5)
    assert atlas.preferred_orientation(cosine, ORIENTATIONS) == pytest.approx(30.0)
    assert np.isnan(atlas.circular_variance(np.zeros(8), ORIENTATIONS))


def test_preferred_orientation_wraps_into_0_180():
    curves = np.stack([np.roll(np.eye(8)[0], k) for k in range(8)])
    np.testing.assert_allclose(atlas.preferred_orientation(curves, ORIENTATIONS), ORIENTATIONS, atol=1e-9)
    near_180 = np.exp(-0.5 * (np.minimum(np.abs(ORIENTATIONS - 170), 180 - np.abs(ORIENTATIONS - 170)) / 15) ** 2)
    assert atlas.preferred_orientation(near_180, ORIENTATIONS) == pytest.approx(170.0, abs=3.0)


# ------------------------------------------------------------------------------------------
# End to end: a hand-built network of Gabor filters of known frequency and orientation
# ------------------------------------------------------------------------------------------

GABORS = [(0.1, 0.0), (0.1, 90.0), (0.2, 45.0), (0.2, 135.0), (0.35, 0.0), (0.35, 112.5)]  # (cyc/px, deg)
KERNEL = 35


def _gabor(frequency: float, orientation: float) -> np.ndarray:
    """Even Gabor, wave vector at ``orientation`` (x along columns, y along rows), ~1 octave wide, zero mean."""
    coords = np.arange(KERNEL) - KERNEL // 2
    y, x = np.meshgrid(coords, coords, indexing="ij")
    theta = np.deg2rad(orientation)
    sigma = 0.56 / frequency
    kernel = np.cos(2 * np.pi * frequency * (x * np.cos(theta) + y * np.sin(theta))) * np.exp(
        -(x**2 + y**2) / (2 * sigma**2)
    )
    return kernel - kernel.mean()


def _difference_of_gaussians() -> np.ndarray:
    coords = np.arange(KERNEL) - KERNEL // 2
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    centre, surround = np.exp(-r2 / (2 * 1.5**2)), np.exp(-r2 / (2 * 3.0**2))
    return centre / centre.sum() - surround / surround.sum()


class GaborNet(nn.Module):
    """Grey input -> Conv2d (Gabors, a centre-surround blob, a dead filter) -> ReLU, as ``{layer: map}``."""

    def __init__(self) -> None:
        super().__init__()
        kernels = [_gabor(f, o) for f, o in GABORS] + [_difference_of_gaussians(), np.zeros((KERNEL, KERNEL))]
        self.conv = nn.Conv2d(1, len(kernels), KERNEL, bias=False)  # no padding: no edge artefacts
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(np.stack(kernels)[:, None], dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"gabor": torch.relu(self.conv(images.mean(dim=1, keepdim=True) - 0.5))}


@pytest.fixture(scope="module")
def gabor_atlas():
    stimuli = atlas.atlas_stimuli(
        size=96,
        frequencies_cpp=atlas.log_frequencies(0.03, 0.45, 12),
        orientations_deg=atlas.even_orientations(8),
        phases_rad=atlas.even_phases(2),
    )
    responses, columns = atlas.module_responses(GaborNet(), stimuli, batch_size=64)
    grid = atlas.response_grid(responses, columns, stimuli)
    table, curves = atlas.fit_atlas(grid, atlas.cpd_per_cpp("paper"))
    return stimuli, responses, columns, grid, table, curves


def test_module_adapter_returns_spatial_means(gabor_atlas):
    stimuli, responses, columns, grid, *_ = gabor_atlas
    assert responses.shape == (len(stimuli), len(GABORS) + 2)
    assert columns == [("gabor", c) for c in range(len(GABORS) + 2)]
    assert grid.responses.shape == (len(GABORS) + 2, 12, 8)
    assert responses.min() >= 0


def test_gabor_network_frequency_and_orientation_are_recovered(gabor_atlas):
    *_, table, _ = gabor_atlas
    for channel, (frequency, orientation) in enumerate(GABORS):
        row = table.iloc[channel]
        assert row["reliable"], channel
        assert abs(math.log2(row["preferred_frequency_cpp"] / frequency)) < 0.2, (
            channel,
            row["preferred_frequency_cpp"],
        )
        difference = abs((row["preferred_orientation_deg"] - orientation + 90) % 180 - 90)
        assert difference < 5.0, (channel, row["preferred_orientation_deg"])
        assert row["circular_variance"] < 0.6, channel  # oriented filters are selective
        assert row["r2"] > 0.9
        # A 1-octave filter at 0.35 cyc/px stays above half-max up to ~0.49 > 0.45 (the top probe): high-pass.
        assert row["tuning_class"] == ("band-pass" if frequency < 0.3 else "high-pass"), channel
        assert 0.5 < row["bandwidth_octaves"] < 3.0
    # cpd follows the paper mapping: cpd = cpp / 0.016172.
    np.testing.assert_allclose(
        table["preferred_frequency_cpd"], table["preferred_frequency_cpp"] * atlas.cpd_per_cpp("paper")
    )


def test_centre_surround_is_unselective_and_dead_filter_is_flagged(gabor_atlas):
    *_, table, _ = gabor_atlas
    blob, dead = table.iloc[len(GABORS)], table.iloc[len(GABORS) + 1]
    assert blob["reliable"]
    assert blob["circular_variance"] > 0.9  # isotropic: responds to every orientation alike
    assert blob["circular_variance"] > table["circular_variance"].iloc[: len(GABORS)].max()
    assert not dead["reliable"]
    assert dead["tuning_class"] == "unresponsive"
    for column in ("preferred_frequency_cpp", "bandwidth_octaves", "r2", "circular_variance"):
        assert np.isnan(dead[column]), column


def test_orientation_pooling_variants(gabor_atlas):
    *_, grid, _, _ = gabor_atlas
    preferred, f_pref, _ = atlas.frequency_curves(grid, "preferred")
    maximum, _, _ = atlas.frequency_curves(grid, "max")
    mean, _, _ = atlas.frequency_curves(grid, "mean")
    assert np.all(maximum >= preferred - 1e-12)
    assert np.all(maximum >= mean - 1e-12)
    rows = np.arange(len(preferred))
    np.testing.assert_allclose(preferred[rows, f_pref], grid.responses.reshape(len(rows), -1).max(axis=1))
    with pytest.raises(ParamsError, match="orientation_pooling"):
        atlas.frequency_curves(grid, "median")


def test_grid_from_tidy_frame_matches(gabor_atlas):
    stimuli, responses, columns, grid, *_ = gabor_atlas
    frame = pd.DataFrame(  # the tidy layout of probe.responses_frame
        {
            "layer": np.repeat([layer for layer, _ in columns], len(stimuli)),
            "channel": np.repeat([channel for _, channel in columns], len(stimuli)),
            "stimulus_id": np.tile(stimuli["stimulus_id"].to_numpy(), len(columns)),
            "response": responses.T.reshape(-1),
        }
    )
    again = atlas.grid_from_frame(frame.sample(frac=1.0, random_state=0), stimuli)  # row order does not matter
    np.testing.assert_allclose(again.responses, grid.responses)
    with pytest.raises(DataError, match="exactly once"):
        atlas.response_grid(responses[:-1], columns, stimuli.iloc[:-1])


# ------------------------------------------------------------------------------------------
# Sensitivity table and LPIPS agreement
# ------------------------------------------------------------------------------------------


def test_sensitivity_variants_put_the_paper_default_first():
    variants = atlas.sensitivity_variants(["mannos_sakrison", "barten_2003"], ["physical", "paper"], [40.0])
    names = [variant.name for variant in variants]
    assert names[0] == "mannos_sakrison_code|paper"
    assert len(names) == len(set(names)) == 1 + 2 * 3
    assert "barten_2003|physical@40ppd" in names
    physical = next(v for v in variants if v.mapping.startswith("physical@161"))
    assert physical.cpd_per_cpp == pytest.approx(gratings.pixels_per_degree(103.35, 89.7))
    assert variants[0].cpd_per_cpp == pytest.approx(1 / 0.0161719, rel=1e-5)


def test_sensitivity_table_diagonal_and_symmetry(gabor_atlas):
    *_, grid, _, curves = gabor_atlas
    rng = np.random.default_rng(4)
    curves = np.concatenate([curves[:-1], rng.uniform(0, 1, (40, curves.shape[1]))])  # more maps, no dead one
    layer = np.array(["a"] * 20 + ["b"] * (len(curves) - 20))
    variants = atlas.sensitivity_variants(
        ["mannos_sakrison_code", "mannos_sakrison", "barten_2003"], ["paper", "physical"]
    )
    table = atlas.sensitivity_table(curves, grid.frequency_cpp, layer, variants, top_k=5)
    assert set(table["layer"]) == {"a", "b", "all"}
    assert len(table) == 3 * len(variants) ** 2
    diagonal = table[table["reference"] == table["variant"]]
    np.testing.assert_allclose(diagonal["spearman_vfss"], 1.0)
    np.testing.assert_allclose(diagonal["pearson_weights"], 1.0)
    np.testing.assert_allclose(diagonal["weight_distance"], 0.0, atol=1e-12)
    np.testing.assert_allclose(diagonal["topk_overlap"], 1.0)
    pivot = table[table["layer"] == "b"].pivot(index="reference", columns="variant", values="spearman_vfss")
    np.testing.assert_allclose(pivot.to_numpy(), pivot.to_numpy().T)
    off = table[table["reference"] != table["variant"]]
    assert off["spearman_vfss"].between(-1, 1).all()
    assert off["weight_distance"].between(0, 1).all()


def test_lpips_agreement_detects_a_monotone_relation():
    rng = np.random.default_rng(5)
    vfss = rng.uniform(0, 1, 32)
    table = pd.DataFrame(
        {
            "layer": "relu1",
            "channel": np.arange(32),
            "vfss": vfss,
            "reliable": True,
            "peak_response": rng.uniform(0, 1, 32),
            "preferred_frequency_cpp": rng.uniform(0.01, 0.4, 32),
            "circular_variance": rng.uniform(0, 1, 32),
        }
    )
    heads = {"relu1": np.exp(3 * vfss), "relu9": np.ones(4)}  # relu9 was not probed: skipped
    agreement = atlas.lpips_agreement(table, heads, "test")
    assert list(agreement["layer"]) == ["relu1"]
    assert agreement["spearman_vfss"].iloc[0] == pytest.approx(1.0)
    assert 0.8 < agreement["pearson_vfss"].iloc[0] < 1.0
    with pytest.raises(DataError, match="LPIPS head"):
        atlas.lpips_agreement(table, {"relu1": np.ones(5)})


# ------------------------------------------------------------------------------------------
# Stimuli: the Gabor window and the orientation convention
# ------------------------------------------------------------------------------------------


def test_window_none_leaves_table_and_images_unchanged():
    kwargs = dict(kind="linear", size=32, frequencies_cpd=[5.0, 12.0], orientations_deg=[0, 60], phases_rad=[0, 1])
    plain = gratings.stimulus_table(**kwargs)
    explicit = gratings.stimulus_table(**kwargs, window_sigma_px=None)
    assert list(explicit.columns) == list(gratings.STIMULUS_COLUMNS)
    pd.testing.assert_frame_equal(plain, explicit)
    assert torch.equal(gratings.render(plain), gratings.render(explicit))
    paper = gratings.stimulus_table()
    assert list(paper.columns) == list(gratings.STIMULUS_COLUMNS)


def test_window_multiplies_the_modulation_by_a_gaussian():
    table = gratings.stimulus_table("linear", 65, [10.0], phases_rad=[-math.pi / 2], window_sigma_px=6.0)
    assert table["window_sigma_px"].iloc[0] == 6.0
    windowed = gratings.render(table)[0, 0].double().numpy()
    full = gratings.render(table.drop(columns="window_sigma_px"))[0, 0].double().numpy()
    coords = np.arange(65) - 32.0
    envelope = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 6.0**2))
    np.testing.assert_allclose(windowed - 0.5, (full - 0.5) * envelope, atol=1e-6)
    assert windowed[32, 32] == pytest.approx(full[32, 32], abs=1e-6)  # the centre keeps full contrast
    assert np.abs(windowed[0] - 0.5).max() < 1e-3  # the border is mean grey
    nan_window = table.assign(window_sigma_px=np.nan)
    assert torch.equal(gratings.render(nan_window), gratings.render(table.drop(columns="window_sigma_px")))
    with pytest.raises(ParamsError, match="window_sigma_px"):
        gratings.stimulus_table("linear", 16, [1.0], window_sigma_px=0.0)


def test_atlas_stimuli_are_the_full_product_with_exact_cpp():
    stimuli = atlas.atlas_stimuli(
        size=32, frequencies_cpp=[0.05, 0.1], orientations_deg=atlas.even_orientations(4), phases_rad=[0.0, 1.0]
    )
    assert len(stimuli) == 2 * 4 * 2
    np.testing.assert_allclose(np.unique(stimuli["frequency_cpp"]), [0.05, 0.1], rtol=1e-12)
    assert set(stimuli["orientation_deg"]) == {0.0, 45.0, 90.0, 135.0}
    assert set(stimuli["kind"]) == {"linear"}
    with pytest.raises(ParamsError):
        atlas.log_frequencies(0.1, 0.6, 5)


# ------------------------------------------------------------------------------------------
# params and the two stages on a tiny config
# ------------------------------------------------------------------------------------------


def test_atlas_params_validate_and_name_bad_keys():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    validated = params.validate(raw, ["atlas"])
    assert validated["atlas"]["csf"] in params.CSF_MODELS
    bad = {**raw, "atlas": {**raw["atlas"], "orientation_pooling": "median"}}
    with pytest.raises(ParamsError, match=r"atlas\.orientation_pooling"):
        params.validate(bad, ["atlas"])
    inverted = {**raw["atlas"], "frequency_min_cpp": 0.4, "frequency_max_cpp": 0.1}
    with pytest.raises(ParamsError, match="0 < min < max"):  # checked when the stimuli are built
        atlas.stimuli_from_params(params.validate({**raw, "atlas": inverted}, ["atlas"])["atlas"])


def test_layers_for_filters_by_backbone():
    assert atlas.layers_for(["relu1", "relu2"], "all") == ["relu1", "relu2"]
    assert atlas.layers_for(["relu1", "relu2"], ["relu2", "relu3_2"]) == ["relu2"]
    with pytest.raises(ParamsError, match=r"atlas\.layers"):
        atlas.layers_for(["relu1"], ["relu3_2"])


@pytest.mark.e2e
def test_atlas_stages_on_a_tiny_config(tmp_path, monkeypatch):
    # Both stage scripts run in this process (one torch/mlflow import instead of two subprocesses).
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["atlas"].update(
        size=32, frequencies=5, orientations=4, phases=1, layers=["relu1_1", "relu1_2"], example_maps=2, top_k=8
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for script in ("atlas_features.py", "atlas.py"):
        monkeypatch.setattr(sys, "argv", [script, "--backbone", "vgg16"])
        runpy.run_path(str(ROOT / "stages" / script), run_name="__main__")
    out = tmp_path / "data/atlas/vgg16"
    maps = pd.read_parquet(out / "maps.parquet")
    assert len(maps) == 128
    assert {"preferred_frequency_cpp", "bandwidth_octaves", "r2", "circular_variance", "reliable", "vfss"} <= set(
        maps.columns
    )
    assert maps["lpips_weight"].notna().sum() == 64  # relu1_2 carries an LPIPS head
    lpips = pd.read_csv(out / "lpips.csv")
    assert list(lpips["layer"]) == ["relu1_2"]
    sensitivity = pd.read_csv(out / "sensitivity.csv")
    assert (sensitivity.loc[sensitivity["reference"] == sensitivity["variant"], "spearman_vfss"] == 1.0).all()
    metrics = yaml.safe_load((out / "summary.json").read_text())
    assert set(metrics["layers"]) == {"relu1_1", "relu1_2"}
    headline = yaml.safe_load((tmp_path / "metrics/atlas/vgg16.json").read_text())
    assert set(headline) == {"maps", "share_reliable", "share_band_pass", "lpips_spearman_vfss"}
    assert headline["maps"] == 128 and headline["lpips_spearman_vfss"] == round(float(lpips["spearman_vfss"][0]), 4)
    for name in ("heatmaps", "distributions", "orientation", "vfss", "sensitivity", "lpips", "stimuli"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
