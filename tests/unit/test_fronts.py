"""Trade-off fronts: a weaker perceptual term lies on the baseline's front; a better weighting beyond it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from psychovis.errors import ParamsError
from psychovis.fronts import compare_fronts, interpolate_front, matched_difference


def _front(psnr: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """A convex PSNR-LPIPS trade-off: less PSNR buys a lower LPIPS."""
    return 0.3 - 0.02 * (30.0 - psnr) + 0.004 * (30.0 - psnr) ** 2 + shift


def test_interpolation_is_linear_in_fidelity_and_undefined_outside() -> None:
    values = interpolate_front(np.array([30.0, 28.0]), np.array([0.3, 0.2]), np.array([29.0, 31.0, 27.0]))
    assert values[0] == pytest.approx(0.25) and math.isnan(values[1]) and math.isnan(values[2])


def test_a_weaker_perceptual_term_lies_on_the_baseline_front() -> None:
    # the same curve sampled at other weights (other PSNRs) is no better and no worse
    baseline = np.array([30.0, 29.5, 29.0, 28.0, 27.0])
    weaker = np.array([30.0, 29.8, 29.4, 28.9])
    difference = matched_difference((weaker, _front(weaker)), (baseline, _front(baseline)), points=21)
    assert abs(difference) < 2e-4  # only the linear interpolation's chord error
    better = matched_difference((weaker, _front(weaker, -0.01)), (baseline, _front(baseline)))
    assert better == pytest.approx(0.01, abs=2e-4)
    # a higher-is-better judge: positive still means better than the baseline
    flipped = matched_difference((weaker, 0.01 - _front(weaker)), (baseline, -_front(baseline)), lower_is_better=False)
    assert flipped == pytest.approx(0.01, abs=2e-4)


def test_fronts_that_share_no_fidelity_range_are_not_compared() -> None:
    assert math.isnan(matched_difference((np.array([30.0, 29.0]), np.zeros(2)), (np.array([28.0, 27.0]), np.zeros(2))))


# (loss, LPIPS shift off the warm start, weights): "same" is the baseline's curve at other weights
LOSSES = (("vgg", 0.0, (0.03, 0.1, 0.3)), ("good", -0.01, (0.1, 0.3)), ("same", 0.0, (0.1, 0.3)))


def test_images_are_the_unit_of_inference() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for image in range(6):
        offset = rng.normal(0, 0.05)  # images differ a lot; the paired difference does not
        for loss, shift, weights in (
            ("vgg", 0.0, (0.03, 0.1, 0.3)),
            ("good", -0.01, (0.1, 0.3)),
            ("same", 0.0, (0.3,)),
        ):
            for weight, psnr in zip((0.0, *weights), (30.0, 29.5, 28.8, 28.0), strict=False):
                lpips = _front(np.array(psnr), 0.0 if weight == 0 else shift) + offset
                rows.append(
                    {"loss": loss, "weight": weight, "image": f"im{image}", "psnr_y": psnr, "lpips_alex": lpips}
                )
    result = compare_fronts(pd.DataFrame(rows), "vgg", resamples=500).set_index("loss")
    assert list(result.index) == ["good", "same"] and (result["images"] == 6).all()
    good, same = result.loc["good"], result.loc["same"]
    assert 0 < good["low"] <= good["difference"] <= good["high"] and good["p"] < 0.01
    assert abs(same["difference"]) < 1e-3
    with pytest.raises(ParamsError, match="baseline 'pixel'"):
        compare_fronts(pd.DataFrame(rows), "pixel")
    with pytest.raises(ParamsError, match="lacks columns"):
        compare_fronts(pd.DataFrame(rows).drop(columns="image"), "vgg")
