"""The compare stage's image-level inference: primary judge, Holm, TOST, fragile flags and power in its summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from psychovis import statistics as st

ROOT = Path(__file__).resolve().parents[3]
DIRECTIONS = {"lpips_alex": False, "psnr_y": True, "dists": False}
PARAMS = {
    "baselines": ["vgg", "pixel"],
    "resamples": 300,
    "level": 0.95,
    "cluster": None,
    "primary_judge": "lpips_alex",
    "equivalence_margin": 0.005,
    "drift": 0.0009,
    "drift_halfwidths": 0.95,
    "drift_draws": 30,
}


def _stage():
    spec = importlib.util.spec_from_file_location("compare_stage", ROOT / "stages" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scores(images: int = 3, seeds: int = 3) -> pd.DataFrame:
    """Per-(seed, image) scores shaped like data/evaluate/per_image.parquet: image effects dominate, as measured."""
    rng = np.random.default_rng(5)
    offsets = {"pixel": 0.05, "vgg": 0.0, "vfss": 0.0005, "topk": -0.002}
    image_level = rng.normal(0.25, 0.05, images)
    rows = []
    for method, offset in offsets.items():
        image_effect = rng.normal(0, 0.002, images)
        for image in range(images):
            for seed in range(seeds):
                lpips = image_level[image] + offset + image_effect[image] + rng.normal(0, 0.0003)
                for judge, value in (("lpips_alex", lpips), ("psnr_y", 25 - 20 * lpips), ("dists", 0.5 * lpips)):
                    rows.append((method, seed, f"img{image}", judge, float(value)))
    return pd.DataFrame(rows, columns=list(st.SCORE_COLUMNS))


def test_inference_covers_every_baseline_method_and_judge() -> None:
    stage = _stage()
    table = stage.inference(_scores(), PARAMS, DIRECTIONS, seed=0)
    assert set(table["baseline"]) == {"vgg", "pixel"}
    assert len(table) == 2 * 3 * 3  # baselines x other methods x judges
    assert table.groupby("baseline")["primary"].sum().to_dict() == {"pixel": 3, "vgg": 3}
    assert (table["n_images"] == 3).all() and (table["n_pairs"] == 9).all()
    # with 3 images the t-test on image means has 2 df; Holm only ever raises p-values
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    assert set(table["verdict"]) <= {*st.VERDICTS, st.EQUIVALENT}


def test_primary_summary_names_unit_conditioning_power_and_fragility() -> None:
    stage = _stage()
    table = stage.inference(_scores(), PARAMS, DIRECTIONS, seed=0)
    summary = stage.primary_summary(table, PARAMS)
    json.dumps(summary)  # JSON-safe
    assert summary["unit"] == "held-out image" and summary["n_images"] == 3
    assert summary["min_sign_test_p"] == 0.25
    assert "warm start" in summary["conditions_on"]
    assert set(summary["comparisons"]) == {
        f"{m}_vs_{b}" for b in ("vgg", "pixel") for m in ("pixel", "vgg", "vfss", "topk") if m != b
    }
    assert all(isinstance(entry["fragile"], bool) for entry in summary["comparisons"].values())
    assert summary["power"]["median_sd_image"] is not None
    lines = stage.primary_lines(table, summary)
    assert "images as the unit" in lines and "power at margin" in lines and "vgg vs pixel" in lines


def test_report_names_the_unit_and_what_the_intervals_condition_on() -> None:
    from psychovis import report

    stage = _stage()
    table = stage.inference(_scores(), PARAMS, DIRECTIONS, seed=0)
    summary = stage.primary_summary(table, PARAMS)
    section = "\n".join(report.image_level_section(table, summary))
    assert "images as the unit" in section and "condition on the trained models" in section
    assert "p = 0.25" in section and "Power:" in section and "fragile" in section
    # each weighting's own power against vgg, beside the median over every comparison (bicubic's included)
    assert "Each loss vs vgg, at its own SD: vfss " in section and "; topk " in section
    sentence = report.image_level_sentence(table, "vgg", "pixel", "lpips_alex")
    assert "unit: the held-out image, n = 3" in sentence and "conditional on the trained models" in sentence
    pairs = st.paired_differences(_scores(), "vgg", DIRECTIONS, resamples=50)
    assert "(unit: the (seed, image) pair, n = 9; the intervals condition on" in report.unit_verdict_sentence(
        pairs, "vfss", "vgg"
    )


def test_one_image_gives_no_verdict_and_strict_json() -> None:
    stage = _stage()
    table = stage.inference(_scores(images=1, seeds=2), PARAMS, DIRECTIONS, seed=0)
    assert set(table["verdict"]) == {st.NO_DIFFERENCE}  # one image: no test, however many seeds
    summary = stage.primary_summary(table, PARAMS)
    json.dumps(summary, allow_nan=False)
    assert summary["min_sign_test_p"] == 1.0 and summary["power"]["median_images_for_80"] is None


def test_a_detectable_difference_inside_the_margin_says_both() -> None:
    from psychovis import report

    row = {"method": "vfss", "baseline": "vgg", "judge": "lpips_alex", "verdict": "better", "mean": 0.0037,
           "ci_low": 0.0027, "ci_high": 0.0046, "p_holm": 2e-6, "margin": 0.005, "tost_p": 0.0045, "level": 0.95,
           "fragile": False, "n_images": 24}  # fmt: skip
    sentence = report.image_level_sentence(pd.DataFrame([row]), "vfss", "vgg", "lpips_alex")
    assert (
        "better by less than the ±0.005 margin, +0.0037 [+0.0027, +0.0046]" in sentence and "TOST p=0.0045" in sentence
    )
    wide = report.image_level_sentence(pd.DataFrame([row | {"tost_p": 0.4}]), "vfss", "vgg", "lpips_alex")
    assert "better, +0.0037" in wide and "TOST" not in wide
