"""Tests of psychovis.report and the `report` stage: sentences worded by the CIs, pages that match the files."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
from conftest import ROOT

from psychovis import report
from psychovis.pipeline import params as params_module


def _differences() -> pd.DataFrame:
    rows = [
        ("vfss", "vgg", "lpips_alex", 0.01, 0.004, 0.02, "better"),
        ("vfss", "vgg", "psnr_y", -0.2, -0.3, -0.1, "worse"),
        ("vfss", "vgg", "dists", 0.001, -0.002, 0.004, "no detectable difference"),
        ("vfss", "bicubic", "lpips_alex", 0.05, 0.04, 0.06, "better"),
        ("vfss", "bicubic", "dists", 0.03, 0.02, 0.04, "better"),
        ("vgg", "bicubic", "lpips_alex", 0.05, 0.04, 0.06, "better"),
        ("vgg", "bicubic", "dists", 0.01, -0.01, 0.03, "no detectable difference"),
    ]
    columns = ["method", "baseline", "judge", "mean", "ci_low", "ci_high", "verdict"]
    return pd.DataFrame(rows, columns=columns).assign(n=9, win_share=0.5)


def test_sentences_follow_the_intervals() -> None:
    sentence = report.verdict_sentence(_differences(), "vfss", "vgg")
    assert sentence == (
        "**vfss** vs vgg: better on LPIPS-Alex; worse on PSNR-Y (dB); no detectable difference on DISTS."
    )
    assert report.beats(_differences(), "vfss", "bicubic", ("lpips_alex", "dists"))
    assert not report.beats(_differences(), "vgg", "bicubic", ("lpips_alex", "dists"))  # DISTS CI spans 0


def test_tables_show_verdict_mean_and_interval() -> None:
    table = report.differences_table(_differences(), "vgg", ["vfss"], ["lpips_alex", "dists"])
    assert "better +0.0100 [+0.0040, +0.0200]" in table and "n.d. +0.0010 [-0.0020, +0.0040]" in table
    assert report.number(float("nan")) == "—" and report.number(None) == "—" and report.number(0.12345, 2) == "0.12"


def _report_stage():
    spec = importlib.util.spec_from_file_location("report_stage", ROOT / "stages" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_match_the_committed_metrics() -> None:
    """Every number in docs/results.md and the README summary comes from the metrics files of the run."""
    if not (ROOT / "data/compare/differences.csv").is_file():
        pytest.skip("no compare output in this checkout")
    stage = _report_stage()
    params = params_module.load(ROOT / "params.yaml", list(params_module.STAGE_SECTIONS["report"]))
    results, summary = stage.pages(ROOT, params)
    assert (ROOT / "docs/results.md").read_text() == results, "docs/results.md is stale: run `dvc repro report`"
    readme = (ROOT / "README.md").read_text()
    assert stage.with_summary(readme, summary) == readme, "the README summary is stale: run `dvc repro report`"


def test_null_verdicts_follow_the_band() -> None:
    assert report.band_verdict(50.0) == "inside the random-subset 95 % band"
    assert report.band_verdict(99.0) == "more human-like than random subsets"
    assert report.band_verdict(1.0) == "less human-like than random subsets"
    assert report.band_verdict(None) == "not measurable"


def _nulls() -> pd.DataFrame:
    rows = []
    for contrast in (0.01, 0.1):
        for control in ("raw", "gain_normalised"):
            for frequency_range in ("full", "nyquist_safe"):
                top = 99.0 if (contrast, control, frequency_range) == (0.1, "raw", "full") else 40.0
                rows.append(
                    {
                        "criterion_contrast": contrast,
                        "control": control,
                        "frequency_range": frequency_range,
                        "csf": "mannos_sakrison_code",
                        "k": 64,
                        "draws": 500,
                        "null_low": 0.3,
                        "null_median": 0.5,
                        "null_high": 0.7,
                        "topk": 0.45,
                        "bottomk": 0.6,
                        "topk_percentile": top,
                        "bottomk_percentile": 80.0,
                        "gap": -0.15,
                    }
                )
    return pd.DataFrame(rows)


def test_psychophysics_section_is_worded_by_the_null() -> None:
    main = {"criterion_contrast": 0.01, "control": "raw", "frequency_range": "full", "csf": "mannos_sakrison_code"}
    entry = {"topk": 0.45, "bottomk": 0.6, "topk_percentile": 40.0, "bottomk_percentile": 80.0}
    metrics = {
        "null_draws": 500,
        "subsets_k64": {"main": {**entry, "null_low": 0.3, "null_high": 0.7}},
        "distances": {"vgg": {"full": 0.5, "nyquist_safe": 0.9}},
    }
    text = "\n".join(report.psychophysics_section(metrics, _nulls(), 64, main, 0.25))
    assert "Top-64 VFSS maps: 0.45, percentile 40: inside the random-subset 95 % band" in text
    assert "top-64 is outside the band in 1 and bottom-64 in 0" in text  # one of 8 conditions
    assert "| criterion 0.1 |" in text and "| as in the paper |" in text
    assert "| vgg | 0.50 | 0.90 |" in text


def test_analysis_findings_come_from_the_metrics() -> None:
    psychophysics = {
        "null_draws": 500,
        "subsets_k64": {"main": {"topk_percentile": 17.0, "bottomk_percentile": 98.0}},
    }
    vfss = {"gain": {"relu3_2": {"spearman_range": 0.948, "spearman_mean": 0.919}}}
    tuning = {"classes": {"band-pass": 2545, "high-pass": 1363}}
    atlas = {"layers": {"relu1_2": {"lpips_spearman_vfss": -0.7069}, "relu1_1": {"maps": 64}}}
    findings = report.analysis_findings(psychophysics, vfss, 64, ["relu3_2"], tuning, atlas)
    assert findings[0] == "Tuning (paper preset): of 3,908 maps, 2,545 band-pass, 1,363 high-pass."
    assert "17th and bottom-64 at the 98th percentile of 500 random 64-map subsets" in findings[1]
    assert "bottom: more human-like than random subsets" in findings[1]
    assert "Spearman 0.95 with the response range, 0.92 with the mean response" in findings[2]
    assert findings[3] == "Atlas VFSS vs the LPIPS linear weights (Spearman, VGG-16): relu1_2 -0.71."


def test_geometry_sentence_names_the_sign_changes_and_the_ends_of_the_sweep() -> None:
    geometry = {
        "px_per_degree_as_run": 61.8358,
        "csf": "mannos_sakrison_code",
        "background": "grey",
        "log_correlation": {
            "pixel_mse": {"30ppd": 0.0, "120ppd": 0.0},
            "vgg": {"120ppd": -0.39, "30ppd": 0.93, "61.8358ppd": 0.15},
            "lpips_alex": {"30ppd": 0.43, "120ppd": 0.22},
        },
        "sign_changes": ["vgg"],
    }
    sentence = report.geometry_sentence(geometry)
    assert sentence is not None
    assert "rendered at 61.8 px/deg" in sentence and "changes sign for 1 of 2 network distances (vgg)" in sentence
    assert "vgg goes from 0.93 at 30 to -0.39 at 120 px/deg" in sentence
    assert report.geometry_sentence(None) is None
    assert report.geometry_sentence({**geometry, "px_per_degree_as_run": None}) is None


def test_the_unit_clause_says_whose_warm_starts_the_seeds_had() -> None:
    differences = pd.DataFrame({"resample_unit": ["pair"], "n": [9]})
    assert "these seeds (each its own warm start and fine-tunes)" in report.unit_clause(differences)
    earlier = report.unit_clause(differences, warm_start_per_seed=False)  # the stored study: one warm start
    assert "the one warm start and these seeds" in earlier and "n = 9" in earlier


def _fronts(low: float, high: float) -> dict:
    comparison = {"loss": "vfss", "baseline": "vgg", "difference": (low + high) / 2, "low": low, "high": high}
    return {
        "weights": [0.03, 0.1, 0.3, 1.0],
        "seeds": [0, 1, 2],
        "test_images": [f"photo{i}" for i in range(24)],
        "train": {"iterations": 150, "image_dir": "scratch"},
        "unit": "the held-out image",
        "seconds": 1800,
        "comparisons": [comparison | {"p": 0.01, "images": 24}],
    }


@pytest.mark.parametrize(
    ("low", "high", "words"),
    [
        (0.001, 0.003, "beyond vgg's front (better at matched PSNR-Y), by less than the ±0.005 margin"),
        (0.001, 0.009, "beyond vgg's front (better at matched PSNR-Y)"),
        (-0.003, -0.001, "behind vgg's front (worse at matched PSNR-Y), by less than the ±0.005 margin"),
        (-0.002, 0.003, "on vgg's front, within ±0.005"),
        (-0.002, 0.008, "no detectable difference from vgg's front"),
        (float("nan"), float("nan"), "not compared"),
    ],
)
def test_fronts_are_worded_by_their_interval_and_margin(low: float, high: float, words: str) -> None:
    lines = "\n".join(report.fronts_section(_fronts(low, high), margin=0.005))
    assert words in lines
    assert "0.03, 0.1, 0.3, 1" in lines and "3 seed(s)" in lines and "24 held-out images (scratch)" in lines


def test_a_study_record_names_its_design() -> None:
    evaluate = {"vgg": {"lpips_alex": 0.3}, "vfss": {"lpips_alex": 0.31}}
    differences = _differences().assign(resample_unit="pair")
    study = (evaluate, differences, "facts of the study")
    earlier = report.render_results(evaluate, differences, "facts", ["lpips_alex"], study)
    assert report.EARLIER_STUDY_TITLE in earlier and "the one warm start and these seeds" in earlier
    today = report.render_results(
        evaluate, differences, "facts", ["lpips_alex"], study, study_title="The study: 24 photographs",
        study_warm_start_per_seed=True, fronts=["## Trade-off fronts"],
    )  # fmt: skip
    assert "## The study: 24 photographs" in today and report.EARLIER_STUDY_TITLE not in today
    # the default section's two verdict sentences name per-seed warm starts; with today's study design, its two too
    assert earlier.count("each its own warm start") == 2 and today.count("each its own warm start") == 4
    assert "## Trade-off fronts" in today


def test_the_fronts_bullet_names_unit_interval_and_verdict() -> None:
    bullet = report.fronts_finding(_fronts(-0.002, 0.003), margin=0.005)
    assert "vs vgg" in bullet and "n = 24, 3 seed(s)" in bullet
    assert "vfss +0.0005 [-0.0020, +0.0030] (on vgg's front, within ±0.005)" in bullet


def test_fronts_list_the_weights_per_loss_when_they_differ() -> None:
    same = _fronts(0.001, 0.002) | {"weights_by_loss": {"vgg": [0.1, 1.0], "vfss": [0.1, 1.0]}}
    assert "Weights per loss" not in "\n".join(report.fronts_section(same, margin=0.005))
    extended = _fronts(0.001, 0.002) | {"weights_by_loss": {"vgg": [0.001, 0.1, 1.0], "vfss": [0.1, 1.0]}}
    assert "Weights per loss: vgg 0.001, 0.1, 1; vfss 0.1, 1." in "\n".join(report.fronts_section(extended, 0.005))


def test_the_display_sweep_is_worded_by_its_intervals_per_geometry():
    def row(ppd, mean, low, high, verdict, primary=True, baseline="vgg"):
        return {"method": "geometry_aware", "px_per_degree": ppd, "reference_px_per_degree": 30.0,
                "baseline": baseline, "judge": "lpips_alex" if primary else "psnr_y", "primary": primary,
                "mean": mean, "ci_low": low, "ci_high": high, "verdict": verdict, "p_holm": 0.01, "fragile": False,
                "n_images": 24}  # fmt: skip

    sweep = pd.DataFrame(
        [
            row(120.0, -0.03, -0.04, -0.02, "worse"),
            row(60.0, -0.02, -0.025, -0.015, "worse"),
            row(60.0, 0.3, 0.2, 0.4, "better", primary=False),
            row(60.0, 0.01, 0.0, 0.02, "better", baseline="pixel"),
            row(40.0, -0.001, -0.004, 0.002, "no detectable difference"),
        ]
    )
    text = "\n".join(report.display_geometry_section(sweep))
    assert "| 40 | 0.75 | n.d. -0.0010 [-0.0040, +0.0020] p=0.01 |" in text
    assert "| 120 | 0.25 | worse -0.0300 [-0.0400, -0.0200] p=0.01 |" in text
    assert text.index("| 40 |") < text.index("| 60 |") < text.index("| 120 |") and "+0.3000" not in text
    finding = report.display_geometry_finding(sweep)
    assert "reference 30 px/deg" in finding and "LPIPS-Alex" in finding and "n = 24" in finding
    assert "40 px/deg n.d. -0.0010 [-0.0040, +0.0020]; 60 px/deg worse -0.0200" in finding
    assert (
        report.display_geometry_section(sweep.iloc[:0]) == []
        and report.display_geometry_finding(sweep.iloc[:0]) is None
    )
