"""The human-judgement scores figure shows the differences between distances, not bars from 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from psychovis.human_judgement.figures import fitted_limits, scores_figure

# Scores as they come: a few hundredths apart at 0.6-0.9, with intervals narrower than the gaps.
VALUES = {"psnr": 0.62, "ssim": 0.66, "lpips": 0.71, "vfss": 0.73}


def _scores(metric: str, values: dict[str, float], half_width: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "tid2013",
            "distance": list(values),
            "metric": metric,
            "value": list(values.values()),
            "ci_low": [value - half_width for value in values.values()],
            "ci_high": [value + half_width for value in values.values()],
            "n": 100,
        }
    )


@pytest.mark.parametrize(("metric", "values"), [("srcc", VALUES), ("2afc", {"l2": 0.66, "lpips": 0.69, "vfss": 0.7})])
def test_the_axis_spans_the_intervals_so_the_differences_show(metric: str, values: dict[str, float]) -> None:
    figure = scores_figure(_scores(metric, values))
    axis = figure.axes[0]
    bottom, top = axis.get_ylim()
    data_low, data_high = min(values.values()) - 0.01, max(values.values()) + 0.01
    assert bottom <= data_low and top >= data_high  # every interval is visible
    assert top - bottom <= 2 * (data_high - data_low), (bottom, top)  # and not flattened against 0
    assert bottom > 0.5  # neither 0 nor a forced chance line
    # Points (no bar lengths against a cut axis), at the scores.
    assert not axis.patches
    drawn = sorted(float(line.get_ydata()[0]) for line in axis.lines if line.get_marker() == "o")
    np.testing.assert_allclose(drawn, sorted(values.values()))
    plt.close(figure)


def test_the_reference_line_is_drawn_only_inside_the_axis() -> None:
    near_zero = {"a": -0.05, "b": 0.04}
    figure = scores_figure(_scores("srcc", near_zero))
    zero_lines = [line for line in figure.axes[0].lines if line.get_linestyle() == ":"]
    assert len(zero_lines) == 1 and float(zero_lines[0].get_ydata()[0]) == 0.0
    plt.close(figure)


def test_fitted_limits_pad_the_span_and_ignore_nan() -> None:
    assert fitted_limits(np.array([0.6, np.nan]), np.array([0.8, np.nan])) == pytest.approx((0.57, 0.83))
    assert fitted_limits(np.array([np.nan]), np.array([np.nan])) is None
    bottom, top = fitted_limits(np.array([0.7]), np.array([0.7]))  # one point: a small window around it
    assert bottom < 0.7 < top
