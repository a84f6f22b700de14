"""The robustness analysis: the random-subset null, criterion levels, Nyquist-safe range, CSFs, gain control."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from psychovis import psychophysics as pp
from psychovis.distances import build_distances
from psychovis.distances.engine import selections
from psychovis.errors import ParamsError

LAYER = "relu3_2"
MAPS = 256
LEVELS = (0.01, 0.003, 0.1)
CSFS = ("mannos_sakrison_code", "barten_2003")


def fake_scores(seed: int = 0) -> dict[str, np.ndarray]:
    return {LAYER: np.random.default_rng(seed).gamma(2.0, 3.0, MAPS)}


@pytest.fixture(scope="module")
def grid() -> pp.DistanceGrid:
    """VGG relu3_2, LPIPS-Alex and DISTS on grey, 64 px, five frequencies, three criterion levels."""
    distances = build_distances(fake_scores(), k=32, layers=[LAYER], include=["vgg", "lpips_alex", "dists"])
    spec = pp.StimulusSpec(
        size=64,
        frequencies_cpd=(2.0, 4.0, 8.0, 12.0, 20.0),
        contrasts=tuple(np.geomspace(1e-3, 1.0, 10).tolist()),
        phases=2,
        reference_contrast=LEVELS[0],
        criterion_contrasts=LEVELS,
    )
    backgrounds = pp.make_backgrounds(spec, ["grey"])
    return pp.distance_grid(distances, backgrounds, spec, batch_size=64)


@pytest.fixture(scope="module")
def table(grid: pp.DistanceGrid) -> pd.DataFrame:
    return pp.robustness_table(grid, fake_scores(), ks=(8, 64), draws=40, csfs=CSFS, nyquist_safe_cpp=0.25)


@pytest.mark.slow
def test_grid_criteria_per_level(grid: pp.DistanceGrid) -> None:
    np.testing.assert_allclose(grid.criterion_contrasts, LEVELS)
    for name in ("vgg", "lpips_alex", "dists"):
        assert grid.criteria[name][0] == grid.criterion[name]  # the main level comes first
        low, main, high = grid.criteria[name][1], grid.criteria[name][0], grid.criteria[name][2]
        assert 0 < low < main < high  # a stronger reference grating is a larger distance
        assert np.isfinite(grid.values[name]).all()
    np.testing.assert_array_equal(grid.map_criteria[LAYER][0], grid.map_criterion[LAYER])
    assert grid.map_criteria[LAYER].shape == (len(LEVELS), MAPS)


def test_log_correlations_match_the_single_curve_scores() -> None:
    rng = np.random.default_rng(3)
    frequency = np.geomspace(1.0, 28.0, 9)
    curves = rng.lognormal(size=(6, 9))
    curves[1, [2, 5]] = np.nan  # missing points are left out per curve
    curves[2] = 4.0  # flat: 0
    curves[3, 2:] = np.nan  # two valid points: NaN
    curves[4, 0] = -1.0  # non-positive: left out
    for csf in ("mannos_sakrison_code", "barten_2003"):
        vectorised = pp.log_correlations(frequency, curves, csf)
        single = [pp.sensitivity_scores(frequency, curve, csf)["log_correlation"] for curve in curves]
        np.testing.assert_allclose(vectorised, single, rtol=1e-12, atol=1e-12)
    use = frequency <= 10.0
    np.testing.assert_allclose(
        pp.log_correlations(frequency, curves[:1], "mannos_sakrison_code", use),
        [pp.sensitivity_scores(frequency[use], curves[0, use])["log_correlation"]],
    )


@pytest.mark.slow
def test_gain_normalised_selection_ignores_each_maps_gain(grid: pp.DistanceGrid) -> None:
    """Scaling one map's errors by 100 changes the raw subset distance but not the gain-normalised one."""
    chosen = selections((64,), [0, 1, 2])
    scaled = pp.DistanceGrid(**{**grid.__dict__})
    scaled.map_errors = {LAYER: grid.map_errors[LAYER].copy()}
    scaled.map_criteria = {LAYER: grid.map_criteria[LAYER].copy()}
    top = np.argsort(-fake_scores()[LAYER], kind="stable")[:64]
    responsive = top[grid.map_criterion[LAYER][top] > 0]
    loud = int(responsive[np.argsort(grid.map_criterion[LAYER][responsive])[len(responsive) // 2]])
    scaled.map_errors[LAYER][..., loud] *= 100.0
    scaled.map_criteria[LAYER][:, loud] *= 100.0
    scores = fake_scores()
    raw = pp.selection_thresholds(grid, scores, chosen, control="raw")
    raw_scaled = pp.selection_thresholds(scaled, scores, chosen, control="raw")
    gain = pp.selection_thresholds(grid, scores, chosen, control="gain_normalised")
    gain_scaled = pp.selection_thresholds(scaled, scores, chosen, control="gain_normalised")
    assert not np.allclose(raw[0], raw_scaled[0], rtol=1e-3)  # top-64 holds the loud map
    np.testing.assert_allclose(gain, gain_scaled, rtol=1e-9)
    with pytest.raises(ParamsError, match="control must be one of"):
        pp.selection_thresholds(grid, scores, chosen, control="zscore")


@pytest.mark.slow
def test_robustness_table_covers_every_condition(table: pd.DataFrame, grid: pp.DistanceGrid) -> None:
    selections_per_condition = 2 * 2 + 2 * 40  # (topk, bottomk) x ks + ks x draws
    conditions = len(LEVELS) * 2 * len(CSFS)  # levels x ranges x CSFs
    selection_rows = table[table["kind"] == "selection"]
    assert len(selection_rows) == conditions * 2 * selections_per_condition  # x controls
    distance_rows = table[table["kind"] == "distance"]
    assert set(distance_rows["control"]) == {"raw"}
    assert len(distance_rows) == conditions * 3
    assert set(table["frequency_range"]) == {"full", "nyquist_safe"}
    randomk = selection_rows[selection_rows["name"] == "randomk"]
    assert sorted(randomk["draw"].dropna().unique()) == list(range(40))
    assert table["log_correlation"].notna().mean() > 0.9
    # With every map the "selection" is the plain VGG distance: one score whatever the draw.
    every = pp.robustness_table(grid, fake_scores(), ks=(MAPS,), draws=3, csfs=CSFS[:1], nyquist_safe_cpp=0.25)
    main = every[(every["control"] == "raw") & (every["criterion_contrast"] == LEVELS[0])]
    for _, rows in main.groupby("frequency_range"):
        vgg = rows.loc[rows["name"] == "vgg", "log_correlation"].item()
        np.testing.assert_allclose(rows.loc[rows["kind"] == "selection", "log_correlation"], vgg, rtol=1e-9)


@pytest.mark.slow
def test_robustness_table_refuses_bad_sizes(grid: pp.DistanceGrid) -> None:
    with pytest.raises(ParamsError, match=r"psychophysics.subset_ks \[300\] exceed the 256 maps of relu3_2"):
        pp.robustness_table(grid, fake_scores(), ks=(8, 300), draws=5, csfs=CSFS, nyquist_safe_cpp=0.25)
    with pytest.raises(ParamsError, match=r"psychophysics\.nyquist_safe_cpp"):
        pp.robustness_table(grid, fake_scores(), ks=(8,), draws=5, csfs=CSFS, nyquist_safe_cpp=0.05)
    with pytest.raises(ParamsError, match="null_draws"):
        pp.robustness_table(grid, fake_scores(), ks=(8,), draws=0, csfs=CSFS, nyquist_safe_cpp=0.25)


def test_percentiles_in_the_null() -> None:
    null = np.arange(100.0)
    assert pp.percentile_in(null, -1.0) == 0.0
    assert pp.percentile_in(null, 1000.0) == 100.0
    assert pp.percentile_in(null, 10.0) == pytest.approx(10.5)  # ties count half
    assert np.isnan(pp.percentile_in(np.array([np.nan]), 0.5))
    assert pp.inside_band(50.0) and not pp.inside_band(1.0) and not pp.inside_band(99.0)


def test_null_summary_places_top_and_bottom_in_the_null() -> None:
    condition = {"criterion_contrast": 0.01, "control": "raw", "frequency_range": "full", "csf": "x"}
    null = np.arange(100.0)
    rows = [
        {**condition, "kind": "selection", "name": "randomk", "k": 8, "draw": i, "log_correlation": v}
        for i, v in enumerate(null)
    ]
    rows += [
        {**condition, "kind": "selection", "name": "topk", "k": 8, "draw": None, "log_correlation": 99.0},
        {**condition, "kind": "selection", "name": "bottomk", "k": 8, "draw": None, "log_correlation": 20.0},
        {**condition, "kind": "distance", "name": "vgg", "k": None, "draw": None, "log_correlation": 0.5},
    ]
    summary = pp.null_summary(pd.DataFrame(rows))
    row = summary.iloc[0]
    assert len(summary) == 1 and row["draws"] == 100
    assert row["topk_percentile"] == pytest.approx(99.5)  # 99 below, one tie
    assert row["bottomk_percentile"] == pytest.approx(20.5)
    assert row["null_low"] == pytest.approx(2.475) and row["null_high"] == pytest.approx(96.525)
    assert row["gap"] == pytest.approx(79.0)


@pytest.mark.slow
def test_summary_metrics_are_json_safe_and_lean(table: pd.DataFrame) -> None:
    nulls = pp.null_summary(table)
    main = {"criterion_contrast": LEVELS[0], "control": "raw", "frequency_range": "full", "csf": CSFS[0]}
    metrics = pp.summary_metrics(nulls, table, 64, main)
    json.dumps(metrics, allow_nan=False)
    assert metrics["null_draws"] == 40
    assert set(metrics["subsets_k64"]) == {"main", "nyquist_safe", "gain_normalised"}
    main_row = nulls[(nulls["k"] == 64) & (nulls["control"] == "raw") & (nulls["frequency_range"] == "full")]
    main_row = main_row[(main_row["csf"] == CSFS[0]) & (main_row["criterion_contrast"] == LEVELS[0])].iloc[0]
    assert metrics["subsets_k64"]["main"]["topk_percentile"] == pytest.approx(main_row["topk_percentile"], abs=1e-5)
    assert set(metrics["criterion_sweep"]) == {"c0.003", "c0.01", "c0.1"}
    assert set(metrics["csfs"]) == set(CSFS)
    assert set(metrics["distances"]) == {"vgg", "lpips_alex", "dists"}
    assert set(metrics["distances"]["dists"]) == {"full", "nyquist_safe"}
    with pytest.raises(ValueError, match="main must give"):
        pp.summary_metrics(nulls, table, 64, {"csf": CSFS[0]})


def test_stimulus_needs_two_cycles_at_the_lowest_frequency() -> None:
    with pytest.raises(ParamsError, match=r"1\.03 cycles across the 64-pixel stimulus.*frequency_min_cpd"):
        pp.StimulusSpec(size=64, frequencies_cpd=(1.0, 4.0, 16.0))
    assert pp.StimulusSpec(size=64, frequencies_cpd=(2.0, 4.0, 16.0)).frequencies_cpd[0] == 2.0
    with pytest.raises(ParamsError, match="criterion_contrasts"):
        pp.StimulusSpec(size=64, frequencies_cpd=(2.0, 4.0, 16.0), criterion_contrasts=(0.0,))


@pytest.mark.slow
def test_headline_keeps_the_null_percentiles_within_the_exp_show_budget(table: pd.DataFrame) -> None:
    nulls = pp.null_summary(table)
    main = {"criterion_contrast": LEVELS[0], "control": "raw", "frequency_range": "full", "csf": CSFS[0]}
    summary = pp.summary_metrics(nulls, table, 64, main)
    headline = pp.headline_metrics(summary, 64)
    numbers = [v for value in headline.values() for v in (value.values() if isinstance(value, dict) else [value])]
    assert len(numbers) <= 16  # io.write_headline's limit
    assert headline["subsets_k64"]["topk_pct"] == summary["subsets_k64"]["main"]["topk_percentile"]
    assert (
        headline["subsets_k64"]["bottomk_pct_gain_norm"]
        == summary["subsets_k64"]["gain_normalised"]["bottomk_percentile"]
    )
    assert set(headline["topk_pct_by_criterion"]) == {"c0.003", "c0.01", "c0.1"}
