"""The offline psychophysical test: threshold search, apparatus checks, map selections, scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from psychovis import psychophysics as pp
from psychovis.csf import contrast_sensitivity
from psychovis.distances import build_distances, pixel_mse
from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import ParamsError
from psychovis.names import SELECTIONS
from psychovis.vfss import selection_mask

LAYER = "relu3_2"
MAPS = 256
CONTRASTS = tuple(np.geomspace(1e-3, 1.0, 8).tolist())


def fake_scores(seed: int = 0) -> dict[str, np.ndarray]:
    return {LAYER: np.random.default_rng(seed).gamma(2.0, 3.0, MAPS)}


def tiny_spec(**overrides: object) -> pp.StimulusSpec:
    # Tiny stimuli hold under two cycles at the lowest frequency: that check has its own test.
    settings = dict(size=32, frequencies_cpd=(2.0, 6.0, 18.0), contrasts=CONTRASTS, phases=2, min_cycles=0.0)
    return pp.StimulusSpec(**{**settings, **overrides})


def horizontal_difference(reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
    """Mean squared horizontal finite difference of the change: a known gain per frequency."""
    change = distorted - reference
    return (change[..., 1:] - change[..., :-1]).pow(2).mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def vgg_grid() -> pp.DistanceGrid:
    """VGG (relu3_2 only) and a VFSS top-k selection on grey and noise, 32 px, three frequencies."""
    distances = build_distances(fake_scores(), k=32, layers=[LAYER], include=["pixel_mse", "vgg", "topk"])
    spec = tiny_spec()
    backgrounds = pp.make_backgrounds(spec, ["grey", "texture"], texture_band_cpd=(2.0, 18.0))
    return pp.distance_grid(distances, backgrounds, spec, batch_size=64)


# ------------------------------------------------------------------------------------ threshold search


def test_threshold_search_recovers_a_power_law_exactly() -> None:
    contrasts = np.geomspace(1e-3, 1.0, 13)
    gain = np.array([0.5, 2.0, 40.0, 900.0])  # per frequency
    criterion = 0.01
    threshold, monotone = pp.find_thresholds(contrasts, gain[:, None] * contrasts**2, criterion)
    np.testing.assert_allclose(threshold, np.sqrt(criterion / gain), rtol=1e-10)
    assert monotone.all()
    # A criterion per curve broadcasts, and any exponent is recovered.
    threshold, _ = pp.find_thresholds(contrasts, gain[:, None] * contrasts**1.5, np.array([1e-3, 1e-2, 1e-1, 1.0]))
    np.testing.assert_allclose(threshold, (np.array([1e-3, 1e-2, 1e-1, 1.0]) / gain) ** (1 / 1.5), rtol=1e-10)


def test_threshold_search_edge_cases() -> None:
    contrasts = np.geomspace(0.01, 1.0, 5)  # 0.01, 0.0316, 0.1, 0.316, 1
    curves = np.array(
        [
            contrasts**2 * 1e-3,  # never reaches the criterion: NaN
            contrasts**2 * 1e6,  # already above it at the lowest contrast: NaN
            [0.0, 0.0, 0.0, 1.0, 2.0],  # zeros below the crossing: just under the upper grid point
            [0.0, 2.0, 0.5, 3.0, 4.0],  # not monotone: flagged, first crossing used
        ]
    )
    threshold, monotone = pp.find_thresholds(contrasts, curves, 1.0)
    assert math.isnan(threshold[0]) and math.isnan(threshold[1])
    assert threshold[2] == pytest.approx(contrasts[3], rel=1e-6)
    assert contrasts[0] < threshold[3] <= contrasts[1]
    assert monotone.tolist() == [True, True, True, False]
    # A non-positive criterion gives NaN rather than a meaningless crossing.
    assert np.isnan(pp.find_thresholds(contrasts, curves[:1] + 1, 0.0)[0]).all()
    with pytest.raises(ValueError, match="strictly increasing"):
        pp.find_thresholds(contrasts[::-1], curves, 1.0)
    with pytest.raises(ValueError, match="shape"):
        pp.find_thresholds(contrasts, curves[:, :3], 1.0)


def test_known_threshold_of_a_synthetic_distance_end_to_end() -> None:
    # The squared horizontal difference of 0.5 c sin(2 pi f x + phase), averaged over a quadrature
    # pair, is exactly 0.5 c^2 sin^2(pi f) per pixel (no window): threshold = c_ref sin(pi f_ref) / sin(pi f).
    spec = tiny_spec(window="none", frequencies_cpd=(1.0, 4.0, 10.0, 25.0), contrasts=np.geomspace(1e-3, 1, 10))
    grid = pp.distance_grid({"difference": horizontal_difference}, {"grey": np.full((32, 32), 0.5)}, spec, 17)
    thresholds = pp.thresholds_frame(grid)
    expected = spec.reference_contrast * np.sin(math.pi * spec.cpp(spec.reference_frequency_cpd))
    expected = expected / np.sin(math.pi * spec.frequency_cpp)
    np.testing.assert_allclose(thresholds["threshold"], expected, rtol=1e-5)
    np.testing.assert_allclose(thresholds["sensitivity"], 1 / expected, rtol=1e-5)
    assert thresholds["monotone"].all() and (thresholds["clipped_fraction"] == 0).all()


def test_pixel_mse_csf_is_flat_on_every_background() -> None:
    spec = tiny_spec(frequencies_cpd=(1.0, 3.0, 9.0, 27.0), contrasts=np.geomspace(1e-3, 1, 10))
    backgrounds = pp.make_backgrounds(spec, seed=1)
    thresholds = pp.thresholds_frame(pp.distance_grid({"pixel_mse": pixel_mse}, backgrounds, spec))
    # The window's quadrature-averaged energy c^2 mean(w^2) / 8 does not depend on frequency or
    # (without clipping) on the background: every threshold is the reference contrast.
    np.testing.assert_allclose(thresholds["threshold"], spec.reference_contrast, rtol=1e-5)
    scores = pp.score_thresholds(thresholds, include_human=False)
    assert (scores["log_correlation"] == 0.0).all() and scores["peak_frequency_cpd"].isna().all()
    masking = pp.masking_table(thresholds)
    assert set(masking["background"]) == {"natural", "texture"}
    np.testing.assert_allclose(masking["threshold_elevation"], 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------- selections


def test_selection_masks_have_exactly_k_maps_and_differ() -> None:
    scores = fake_scores()[LAYER]
    k = 40
    masks = {selection: selection_mask(scores, selection, k, seed=3) for selection in SELECTIONS}
    for mask in masks.values():
        assert mask.sum() == k and set(np.unique(mask)) == {0.0, 1.0}
    top, bottom, random = (np.flatnonzero(masks[s]) for s in ("topk", "bottomk", "randomk"))
    assert set(top) == set(np.argsort(scores)[-k:]) and set(bottom) == set(np.argsort(scores)[:k])
    assert not set(top) & set(bottom)
    assert set(random) not in (set(top), set(bottom))
    assert scores[top].min() > scores[bottom].max()
    np.testing.assert_array_equal(selection_mask(scores, "randomk", k, seed=3), masks["randomk"])
    assert not np.array_equal(selection_mask(scores, "randomk", k, seed=4), masks["randomk"])
    with pytest.raises(ParamsError, match="k must be"):
        selection_mask(scores, "topk", MAPS + 1)
    with pytest.raises(ParamsError, match="selection must be"):
        selection_mask(scores, "middlek", 4)


def test_build_distances_gives_loss_modules_with_k_map_masks() -> None:
    distances = build_distances(fake_scores(), k=16, layers=[LAYER], include=["topk", "bottomk", "randomk"])
    selected = {}
    for name, distance in distances.items():
        assert isinstance(distance, PsychovisualLoss) and distance.scheme == "topk"
        weights = distance.layer_weights(LAYER)
        assert int((weights > 0).sum()) == 16
        selected[name] = frozenset(torch.nonzero(weights).flatten().tolist())
    assert len(set(selected.values())) == 3
    with pytest.raises(ParamsError, match="distances must be"):
        build_distances(fake_scores(), include=["psnr"])
    with pytest.raises(ParamsError, match="need VFSS scores"):
        build_distances({}, include=["topk"])


# ------------------------------------------------------------------------------------- shared pass


@pytest.mark.slow
def test_shared_forward_pass_equals_calling_each_distance() -> None:
    # dists: its backgrounds are prepared once (DISTS.prepare), against a forward pass of every pair when wrapped
    distances = build_distances(fake_scores(), k=32, layers=[LAYER], include=["vgg", "topk", "lpips_vgg", "dists"])
    spec = tiny_spec(frequencies_cpd=(3.0, 9.0, 27.0), contrasts=(0.01, 0.05, 0.2, 0.8), phases=1)
    backgrounds = pp.make_backgrounds(spec, ["texture"])  # the criterion's grey is always there
    shared = pp.distance_grid(distances, backgrounds, spec, batch_size=16)
    wrapped = {name: (lambda x, y, d=d: d(x, y)) for name, d in distances.items()}  # not recognised: called as is
    called = pp.distance_grid(wrapped, backgrounds, spec, batch_size=16)
    assert set(shared.map_errors) == {LAYER} and not called.map_errors
    for name in distances:
        np.testing.assert_allclose(shared.values[name], called.values[name], rtol=2e-4, atol=1e-9)
        assert shared.criterion[name] == pytest.approx(called.criterion[name], rel=2e-4)


def test_thresholds_frame_is_tidy(vgg_grid: pp.DistanceGrid) -> None:
    thresholds = pp.thresholds_frame(vgg_grid)
    assert len(thresholds) == 3 * 2 * 3  # distances x backgrounds x frequencies
    assert {"distance", "background", "frequency_cpd", "threshold", "sensitivity", "monotone"} <= set(thresholds)
    vgg = thresholds[thresholds["distance"] == "vgg"]
    assert vgg["threshold"].notna().all() and vgg["monotone"].all()
    np.testing.assert_allclose(vgg["sensitivity"], 1 / vgg["threshold"])


# -------------------------------------------------------------------------------------------- scores


def test_scores_of_hand_made_curves() -> None:
    frequency = np.geomspace(1.0, 28.0, 15)
    human = pp.sensitivity_scores(frequency, 7.0 * contrast_sensitivity(frequency))
    assert human["log_correlation"] == pytest.approx(1.0)
    assert human["peak_frequency_cpd"] == pytest.approx(1 / 0.1254 - 0.0192 / 0.114, rel=0.03)  # analytic 7.8 cpd
    above = frequency > human["peak_frequency_cpd"]
    slope = np.polyfit(np.log10(frequency[above]), np.log10(contrast_sensitivity(frequency[above])), 1)[0]
    assert human["falloff_slope"] == pytest.approx(slope)

    power = pp.sensitivity_scores(frequency, frequency**-2.0)
    assert power["peak_frequency_cpd"] == frequency[0] and power["falloff_slope"] == pytest.approx(-2.0)
    flat = pp.sensitivity_scores(frequency, np.full(frequency.size, 10.0) * (1 + 1e-9 * np.arange(frequency.size)))
    assert flat["log_correlation"] == 0.0 and math.isnan(flat["peak_frequency_cpd"]) and flat["falloff_slope"] == 0.0
    sparse = pp.sensitivity_scores(frequency, np.where(frequency < 1.5, frequency, np.nan))
    assert sparse["frequencies"] == 2 and math.isnan(sparse["log_correlation"])

    table = pd.DataFrame(
        {"distance": "a", "background": "grey", "frequency_cpd": frequency, "sensitivity": frequency**-2.0}
    )
    scored = pp.score_thresholds(table)
    assert scored["distance"].tolist() == ["a", "human_csf"]
    assert scored.loc[1, "log_correlation"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        pp.sensitivity_scores(frequency[::-1], frequency)


def test_geometry_sweep_rereads_a_pixel_curve_at_each_px_per_degree() -> None:
    # A "network" whose curve in cycles/pixel is the human CSF seen at 120 px/deg, measured at the paper's 61.8.
    cpp = np.geomspace(0.01, 0.3, 12)
    curve = pd.DataFrame(
        {
            "distance": "net",
            "background": "grey",
            "frequency_cpp": cpp,
            "frequency_cpd": cpp * 61.8,
            "sensitivity": contrast_sensitivity(cpp * 120.0),
        }
    )
    assert pp.px_per_degree_as_run(curve) == pytest.approx(61.8)
    sweep = pp.geometry_sweep(curve, [30.0, 61.8, 120.0], ["mannos_sakrison_code"])
    assert list(sweep["px_per_degree"]) == [30.0, 61.8, 120.0]
    by_ppd = sweep.set_index("px_per_degree")
    assert by_ppd.loc[120.0, "log_correlation"] == pytest.approx(1.0)  # its own geometry
    assert by_ppd.loc[61.8, "log_correlation"] < by_ppd.loc[120.0, "log_correlation"] - 0.05
    # the peak sits at one cycles/pixel, so in cycles/degree it scales with the geometry
    peaks = by_ppd["peak_frequency_cpd"]
    assert peaks[120.0] / peaks[30.0] == pytest.approx(4.0, rel=1e-6)
    # the rendered frame is left as it was
    np.testing.assert_allclose(curve["frequency_cpd"], cpp * 61.8)

    metrics = pp.geometry_metrics(sweep, "mannos_sakrison_code", 61.8)
    assert metrics["px_per_degree_as_run"] == pytest.approx(61.8)
    assert set(metrics["log_correlation"]["net"]) == {"30ppd", "61.8ppd", "120ppd"}
    assert metrics["sign_changes"] == ([] if (sweep["log_correlation"] > 0).all() else ["net"])
    flipped = sweep.assign(log_correlation=[-0.5, 0.2, 0.9])
    assert pp.geometry_metrics(flipped, "mannos_sakrison_code", 61.8)["sign_changes"] == ["net"]


def test_a_stated_geometry_renders_cycles_per_degree_at_it() -> None:
    paper = pp.StimulusSpec(size=64, frequencies_cpd=(2.0, 4.0, 8.0))
    assert float(paper.cpp(10.0)) == pytest.approx(10.0 / 61.8, rel=1e-3)  # the authors' mapping, as run
    stated = pp.StimulusSpec(size=128, frequencies_cpd=(2.0, 4.0, 8.0), px_per_degree=120.0)
    assert float(stated.cpp(12.0)) == pytest.approx(0.1)


def test_geometry_sweep_refuses_bad_geometries() -> None:
    curve = pd.DataFrame(
        {"distance": "a", "background": "grey", "frequency_cpp": [0.1, 0.2], "frequency_cpd": [6.18, 20.0]}
    )
    with pytest.raises(ValueError, match="one geometry"):
        pp.px_per_degree_as_run(curve)
    with pytest.raises(ValueError, match="positive"):
        pp.geometry_sweep(curve.assign(sensitivity=1.0), [0.0, 60.0], ["mannos_sakrison_code"])
    with pytest.raises(ValueError, match="frequency_cpp"):
        pp.geometry_sweep(curve.drop(columns="frequency_cpp"), [60.0], ["mannos_sakrison_code"])


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"frequencies_cpd": (1.0, 10.0, 40.0)}, "above Nyquist"),
        ({"frequencies_cpd": (1.0, 10.0)}, "at least 3"),
        ({"contrasts": (0.5, 0.1)}, "strictly increasing"),
        ({"contrasts": (0.1, 2.0)}, r"in \(0, 1\]"),
        ({"size": 8}, "size"),
        ({"phases": 0}, "phases"),
        ({"window": "hamming"}, "window"),
        ({"reference_contrast": 0.0}, "reference_contrast"),
        ({"px_per_degree": 0.0}, "px_per_degree"),
        ({"px_per_degree": 20.0}, "above Nyquist"),
    ],
)
def test_bad_stimulus_specs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        tiny_spec(**overrides)


def test_bad_backgrounds_and_distances_are_refused() -> None:
    spec = tiny_spec()
    with pytest.raises(ParamsError, match="backgrounds must be"):
        pp.make_backgrounds(spec, ["sky"])
    with pytest.raises(ParamsError, match="amplitude"):
        pp.make_backgrounds(spec, ["texture"], amplitude=0.7)
    with pytest.raises(ValueError, match="shape"):
        pp.distance_grid({"pixel_mse": pixel_mse}, {"grey": np.full((16, 16), 0.5)}, spec)
    with pytest.raises(ValueError, match="one value per image"):
        pp.distance_grid({"sum": lambda x, y: (x - y).pow(2).sum()}, {"grey": np.full((32, 32), 0.5)}, spec)
    with pytest.raises(ValueError, match="shape"):
        pixel_mse(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
