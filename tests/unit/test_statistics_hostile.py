"""A perfect reconstruction against an imperfect one is a win, not a dropped pair (issue 23)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from psychovis import statistics as st

DIRECTIONS = {"psnr_y": True}


def _scores(method_values, baseline_values) -> pd.DataFrame:
    rows = []
    for method, values in (("vfss", method_values), ("vgg", baseline_values)):
        rows += [
            {"method": method, "seed": 0, "image": f"im{index}", "judge": "psnr_y", "value": value}
            for index, value in enumerate(values)
        ]
    return pd.DataFrame(rows)


def test_a_one_sided_infinity_counts_as_a_win_for_the_perfect_method():
    # The method is perfect (PSNR inf) on one image and a little worse elsewhere; dropping the perfect
    # pair would judge it on its imperfect pairs only.
    scores = _scores([np.inf, 29.0, 29.0], [30.0, 30.0, 30.0])
    row = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=200).iloc[0]
    assert row["n"] == 3
    assert row["win_share"] == 1 / 3
    assert row["mean"] == -1 / 3  # +1 (capped at the largest finite difference) - 1 - 1, over 3 pairs
    reverse = st.paired_differences(scores, "vfss", DIRECTIONS, resamples=200).iloc[0]
    assert reverse["n"] == 3 and reverse["win_share"] == 2 / 3


def test_infinity_on_both_sides_is_still_left_out():
    scores = _scores([np.inf, 31.0], [np.inf, 30.0])
    row = st.paired_differences(scores, "vgg", DIRECTIONS, resamples=50).iloc[0]
    assert row["n"] == 1 and row["mean"] == 1.0
