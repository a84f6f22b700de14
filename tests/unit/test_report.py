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
    params = params_module.load(ROOT / "params.yaml", ["base", "train", "pretrain", "evaluate", "compare"])
    results, summary = stage.pages(ROOT, params)
    assert (ROOT / "docs/results.md").read_text() == results, "docs/results.md is stale: run `dvc repro report`"
    readme = (ROOT / "README.md").read_text()
    assert stage.with_summary(readme, summary) == readme, "the README summary is stale: run `dvc repro report`"
