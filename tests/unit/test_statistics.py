"""Tests of psychovis.statistics (bootstrap helpers, paired method comparisons) and of the `compare` stage."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from psychovis import statistics as st
from psychovis.errors import ParamsError
from psychovis.pipeline import params as params_module
from psychovis.pipeline.runner import StageContext

DIRECTIONS = {"psnr_y": True, "lpips_vgg": False}


def _scores(
    offset: float = 0.5, noise: float = 0.05, seeds: int = 3, images: int = 12, methods: tuple[str, ...] = ("vfss",)
) -> pd.DataFrame:
    """Long scores: the baseline ``vgg`` varies by image; each method is ``vgg`` + ``offset`` (better) + noise.

    On ``lpips_vgg`` (lower is better) a better method has a *lower* value: ``vgg - offset``.
    """
    rng = np.random.default_rng(7)
    rows = []
    for seed in range(seeds):
        for image in range(images):
            base = {"psnr_y": rng.normal(28.0, 2.0), "lpips_vgg": rng.uniform(0.1, 0.5)}
            for judge, value in base.items():
                rows.append({"method": "vgg", "seed": seed, "image": f"im{image:02d}", "judge": judge, "value": value})
                sign = 1.0 if DIRECTIONS[judge] else -1.0
                for method in methods:
                    shifted = value + sign * offset + rng.normal(0.0, noise)
                    rows.append(
                        {"method": method, "seed": seed, "image": f"im{image:02d}", "judge": judge, "value": shifted}
                    )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- helpers


def test_bootstrap_indices_and_percentile_ci_are_shared_with_human_judgement() -> None:
    from psychovis import human_judgement as hj
    from psychovis.human_judgement import stats as hj_stats

    assert hj.bootstrap_indices is st.bootstrap_indices and hj_stats.percentile_ci is st.percentile_ci
    assert hj_stats.CI_LEVEL == st.CI_LEVEL == 0.95
    index = st.bootstrap_indices(5, 4, seed=1)
    assert index.shape == (4, 5) and index.min() >= 0 and index.max() < 5
    np.testing.assert_array_equal(index, st.bootstrap_indices(5, 4, seed=1))
    assert st.bootstrap_indices(0, 3).shape == (3, 0)
    assert st.percentile_ci(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert all(math.isnan(bound) for bound in st.percentile_ci(np.array([np.nan, np.inf])))


def test_bootstrap_counts_match_the_indices() -> None:
    counts = st.bootstrap_counts(6, 50, seed=3)
    index = st.bootstrap_indices(6, 50, seed=3)
    assert counts.shape == (50, 6) and (counts.sum(axis=1) == 6).all()
    np.testing.assert_array_equal(counts[7], np.bincount(index[7], minlength=6))


def test_cluster_bootstrap_draws_whole_clusters_then_rows_within() -> None:
    clusters = np.array(["b", "a", "b", "c", "a", "b"])  # sizes a: 2, b: 3, c: 1
    counts = st.cluster_bootstrap_counts(clusters, 400, seed=5)
    assert counts.shape == (400, 6)
    # A resample holds as many cluster draws as there are clusters; its size is the sum of the drawn sizes.
    sizes = {"a": 2, "b": 3, "c": 1}
    assert set(counts.sum(axis=1)) <= {float(sum(choice)) for choice in _triples(list(sizes.values()))}
    # Within a cluster every row is drawable, and some resamples leave a whole cluster out.
    assert (counts.sum(axis=0) > 0).all()
    assert (counts[:, clusters == "c"].sum(axis=1) == 0).any()
    np.testing.assert_array_equal(counts, st.cluster_bootstrap_counts(clusters, 400, seed=5))


def _triples(values: list[int]) -> list[tuple[int, int, int]]:
    return [(a, b, c) for a in values for b in values for c in values]


# ------------------------------------------------------------------------------------------- paired differences


def test_paired_bootstrap_recovers_a_known_difference() -> None:
    table = st.paired_differences(_scores(offset=0.5, noise=0.05), "vgg", DIRECTIONS, resamples=500, seed=1)
    assert list(table.columns) == list(st.DIFFERENCE_COLUMNS)
    assert list(table["judge"]) == ["psnr_y", "lpips_vgg"] and set(table["method"]) == {"vfss"}
    for row in table.itertuples():
        # Lower-is-better lpips: the method's value is lower, and the oriented difference is still +0.5.
        assert row.mean == pytest.approx(0.5, abs=0.02)
        assert row.ci_low < 0.5 < row.ci_high and row.ci_low > 0
        assert row.verdict == "better" and row.win_share == 1.0 and row.n == 36
        assert row.baseline == "vgg" and row.resample_unit == "pair" and row.resamples == 500
    assert list(table["higher_is_better"]) == [True, False]


def test_no_difference_gives_no_detectable_difference() -> None:
    table = st.paired_differences(_scores(offset=0.0, noise=0.05), "vgg", DIRECTIONS, resamples=500)
    assert (table["verdict"] == "no detectable difference").all()
    assert ((table["ci_low"] < 0) & (table["ci_high"] > 0)).all()
    assert table["win_share"].between(0.25, 0.75).all()


def test_direction_flip_for_lower_is_better_judges() -> None:
    scores = _scores(offset=0.5)
    table = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=200).set_index("judge")
    flipped = st.paired_differences(scores, "vgg", {"psnr_y": False, "lpips_vgg": True}, resamples=200)
    flipped = flipped.set_index("judge")
    np.testing.assert_allclose(flipped["mean"], -table["mean"])
    np.testing.assert_allclose(flipped["ci_low"], -table["ci_high"])
    assert (flipped["verdict"] == "worse").all() and (flipped["win_share"] == 0.0).all()


def test_ties_count_half_and_undefined_pairs_are_dropped() -> None:
    scores = _scores(offset=0.0, noise=0.0, seeds=1, images=4)  # the method equals the baseline: all ties
    table = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=50)
    assert (table["win_share"] == 0.5).all() and (table["mean"] == 0).all()
    assert (table["verdict"] == "no detectable difference").all()
    # A perfect reconstruction: PSNR inf on both sides (inf - inf: left out) and on one side only (kept, a win).
    psnr = (scores["judge"] == "psnr_y") & (scores["image"].isin(["im00", "im01"]))
    scores.loc[psnr & ((scores["image"] == "im00") | (scores["method"] == "vfss")), "value"] = np.inf
    table = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=50).set_index("judge")
    assert table.loc["psnr_y", "n"] == 3 and table.loc["lpips_vgg", "n"] == 4
    assert np.isfinite(table[["mean", "ci_low", "ci_high", "win_share"]].to_numpy()).all()


def test_every_method_and_judge_shares_one_set_of_resamples() -> None:
    scores = _scores(methods=("vfss", "topk"))
    scores.loc[scores["method"] == "topk", "value"] = scores.loc[scores["method"] == "vfss", "value"].to_numpy()
    table = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=300, seed=4)
    by_method = table.set_index(["method", "judge"])
    # Identical differences on the same resamples give identical intervals (independent draws would not).
    pd.testing.assert_frame_equal(by_method.loc["vfss"], by_method.loc["topk"])
    assert list(table["method"]) == ["vfss", "vfss", "topk", "topk"]
    only = st.paired_differences(scores, "vgg", DIRECTIONS, methods=["topk"], resamples=300, seed=4)
    assert list(only["method"]) == ["topk", "topk"]


def test_deterministic_given_the_seed_and_row_order() -> None:
    scores = _scores(offset=0.02, noise=0.1)
    first = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=300, seed=9)
    shuffled = st.paired_differences(scores.sample(frac=1.0, random_state=0), "vgg", DIRECTIONS, resamples=300, seed=9)
    # Rows follow the order of appearance; the numbers do not depend on it (pairs are sorted before resampling).
    pd.testing.assert_frame_equal(first.set_index("judge").sort_index(), shuffled.set_index("judge").sort_index())
    other = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=300, seed=10)
    assert not np.allclose(first["ci_low"], other["ci_low"])
    pd.testing.assert_series_equal(first["mean"], other["mean"])


def test_cluster_resampling_widens_the_interval_when_seeds_agree() -> None:
    # Each image has its own effect, shared by all its seeds: the pairs of one image are not independent.
    scores = _scores(offset=0.0, noise=0.01, seeds=4, images=8)
    rng = np.random.default_rng(2)
    effect = dict(zip([f"im{index:02d}" for index in range(8)], rng.normal(0.3, 0.3, 8), strict=True))
    method = scores["method"] == "vfss"
    sign = np.where(scores["judge"] == "psnr_y", 1.0, -1.0)
    scores.loc[method, "value"] += (sign * scores["image"].map(effect))[method]
    pairs = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=1000, seed=3)
    images = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=1000, seed=3, cluster="image")
    assert (images["resample_unit"] == "image").all()
    np.testing.assert_allclose(images["mean"], pairs["mean"])
    assert ((images["ci_high"] - images["ci_low"]) > 1.5 * (pairs["ci_high"] - pairs["ci_low"])).all()
    assert (images["ci_low"] < images["mean"]).all() and (images["mean"] < images["ci_high"]).all()


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda s: s.drop(index=s.index[(s["method"] == "vfss")][:1]), "no pair in 'vfss'"),
        (lambda s: s.drop(index=s.index[(s["method"] == "vgg")][:1]), "'vfss' have no pair in 'vgg'"),
        (lambda s: pd.concat([s, s.iloc[[0]]]), "duplicated"),
        (lambda s: s.assign(judge=s["judge"].replace("lpips_vgg", "dists")), "'dists'"),
        (lambda s: s.drop(columns="seed"), "lack column"),
    ],
    ids=["missing_method_pair", "missing_baseline_pair", "duplicate", "no_direction", "no_column"],
)
def test_bad_scores_are_one_line_params_errors(spoil, expected: str) -> None:
    with pytest.raises(ParamsError, match=expected) as info:
        st.paired_differences(spoil(_scores()), "vgg", DIRECTIONS, resamples=10)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"baseline": "bicubic"}, "baseline 'bicubic'"),
        ({"methods": ["topk"]}, r"method\(s\) \['topk'\]"),
        ({"resamples": 0}, "resamples"),
        ({"level": 1.0}, "level"),
        ({"cluster": "judge"}, "cluster"),
    ],
)
def test_bad_arguments(kwargs: dict, expected: str) -> None:
    with pytest.raises(ParamsError, match=expected):
        st.paired_differences(_scores(), **{"baseline": "vgg", "higher_is_better": DIRECTIONS, **kwargs})


def test_compare_metrics_are_nested_and_json_safe() -> None:
    table = st.paired_differences(_scores(methods=("vfss", "topk")), "vgg", DIRECTIONS, resamples=100)
    table.loc[0, "ci_low"] = np.nan
    metrics = st.compare_metrics(table)
    assert set(metrics) == {"vfss_vs_vgg", "topk_vs_vgg"}
    assert set(metrics["vfss_vs_vgg"]) == {"psnr_y", "lpips_vgg"}
    assert set(metrics["vfss_vs_vgg"]["psnr_y"]) == {"mean", "ci_low", "ci_high", "win_share"}
    assert metrics["vfss_vs_vgg"]["psnr_y"]["ci_low"] is None
    assert metrics["topk_vs_vgg"]["psnr_y"]["mean"] == round(float(table.loc[2, "mean"]), 5)
    json.dumps(metrics, allow_nan=False)
    flat = st.flat_metrics(metrics)
    assert "vfss_vs_vgg.psnr_y.ci_low" not in flat and "topk_vs_vgg.lpips_vgg.win_share" in flat


# ------------------------------------------------------------------------------------------- stage


def _stage_module():
    spec = importlib.util.spec_from_file_location("compare_stage", ROOT / "stages" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_stage_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    stage = _stage_module()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    scores = _scores(methods=("pixel", "vfss"), seeds=2, images=4)
    bicubic = scores[scores["method"] == "vgg"].assign(method="bicubic", value=lambda frame: frame["value"] - 1.0)
    (tmp_path / "data/evaluate").mkdir(parents=True)
    pd.concat([scores, bicubic]).to_parquet(tmp_path / "data/evaluate/per_image.parquet")
    section = {
        "baselines": ["vgg", "pixel"],
        "resamples": 200,
        "level": 0.9,
        "cluster": "image",
        "primary_judge": "lpips_vgg",
        "equivalence_margin": 0.01,
        "drift": 0.0009,
        "drift_halfwidths": 0.95,
        "drift_draws": 20,
    }
    params = params_module.validate(
        {"base": {"seed": 0, "device": "cpu", "backbone": "vgg16", "threads": 1}, "compare": section},
        ["base", "compare"],
    )
    table = stage.compare(StageContext("compare", params, argparse.Namespace(), tmp_path), DIRECTIONS)

    written = pd.read_parquet(tmp_path / "data/compare/differences.parquet")
    pd.testing.assert_frame_equal(written, table)
    assert len(written) == 2 * 3 * 2  # 2 baselines x 3 other methods x 2 judges
    assert (pd.read_csv(tmp_path / "data/compare/differences.csv")["resample_unit"] == "image").all()
    assert (tmp_path / "data/compare/forest.png").stat().st_size > 0
    # the headline: the primary judge's image-level gain over the first baseline, and its drift flag, per method
    headline = json.loads((tmp_path / "metrics/compare.json").read_text())
    assert set(headline) == {"lpips_vgg_vs_vgg", "fragile_vs_vgg"}
    assert set(headline["lpips_vgg_vs_vgg"]) == set(headline["fragile_vs_vgg"]) == {"pixel", "vfss", "bicubic"}
    inferred = pd.read_csv(tmp_path / "data/compare/inference.csv")
    primary = inferred[(inferred["judge"] == "lpips_vgg") & (inferred["baseline"] == "vgg")].set_index("method")
    for method, gain in headline["lpips_vgg_vs_vgg"].items():
        assert gain == pytest.approx(primary.loc[method, "mean"], abs=1e-5)
        assert headline["fragile_vs_vgg"][method] is bool(primary.loc[method, "fragile"])
    metrics = json.loads((tmp_path / "data/compare/summary.json").read_text())
    assert metrics["vfss_vs_vgg"]["psnr_y"]["win_share"] == 1.0
    assert set(metrics) == {
        f"{m}_vs_{b}" for b in ("vgg", "pixel") for m in ("pixel", "vfss", "bicubic", "vgg") if m != b
    }
    assert metrics["bicubic_vs_vgg"]["psnr_y"]["ci_high"] < 0
    out = capsys.readouterr().out
    assert "vfss vs vgg" in out and "+ better" in out and "90 % percentile bootstrap" in out
    images = pd.read_csv(tmp_path / "data/compare/inference.csv")
    assert len(images) == len(written) and images["n_images"].eq(4).all()
    primary = json.loads((tmp_path / "data/compare/inference.json").read_text())
    assert primary["primary_judge"] == "lpips_vgg" and primary["n_images"] == 4 and "images as the unit" in out

    import mlflow

    run = mlflow.search_runs(experiment_names=["psychovis"], output_format="list")[0]
    assert run.data.tags["stage"] == "compare" and run.data.params["compare.cluster"] == "image"
    assert run.data.metrics["vfss_vs_vgg.psnr_y.win_share"] == 1.0
    artifacts = [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")]
    assert artifacts == ["figures/forest.png"]


def test_stage_names_a_missing_baseline_before_opening_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = _stage_module()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/evaluate").mkdir(parents=True)
    _scores().to_parquet(tmp_path / "data/evaluate/per_image.parquet")
    params = {
        "base": {"seed": 0, "device": "cpu", "backbone": "vgg16"},
        "compare": {"baselines": ["vgg", "pixel"], "resamples": 10, "level": 0.95, "cluster": None},
    }
    with pytest.raises(ParamsError, match="baseline 'pixel'"):
        stage.compare(StageContext("compare", params, argparse.Namespace(), tmp_path), DIRECTIONS)
    assert not (tmp_path / "data/compare").exists() and not (tmp_path / "mlflow.db").exists()


def test_stage_reads_the_directions_of_the_evaluation_judges() -> None:
    pytest.importorskip("psychovis.sr.judges")  # written alongside; the comparison above does not need it
    from psychovis.names import JUDGES

    directions = _stage_module().judge_directions()
    assert set(JUDGES) <= set(directions)
    assert directions["psnr_y"] is True and directions["lpips_vgg"] is False
