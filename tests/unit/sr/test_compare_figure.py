"""Tests of psychovis.sr.figures.forest_plot: the paired-difference forest plot of the `compare` stage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from psychovis.sr.figures import VERDICT_COLOURS, forest_plot
from psychovis.statistics import VERDICTS

JUDGES = {"psnr_y": True, "ssim_y": True, "lpips_vgg": False}


def _table(baselines: tuple[str, ...] = ("vgg",), methods: tuple[str, ...] = ("pixel", "vfss", "topk")) -> pd.DataFrame:
    """A :func:`psychovis.statistics.paired_differences`-shaped table with every verdict present."""
    rows, rng = [], np.random.default_rng(0)
    for baseline in baselines:
        for position, method in enumerate(m for m in dict.fromkeys((*methods, *baselines)) if m != baseline):
            for judge, higher in JUDGES.items():
                scale = 1.0 if judge == "psnr_y" else 0.01  # judges on very different scales
                mean = scale * (position - 1) + scale * rng.normal(0, 0.05)
                low, high = mean - 0.4 * scale, mean + 0.4 * scale
                verdict = VERDICTS[0] if low > 0 else VERDICTS[1] if high < 0 else VERDICTS[2]
                rows.append(
                    {
                        "method": method,
                        "baseline": baseline,
                        "judge": judge,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "win_share": 0.5,
                        "n": 24,
                        "higher_is_better": higher,
                        "verdict": verdict,
                        "level": 0.95,
                        "resamples": 2000,
                        "resample_unit": "pair",
                    }
                )
    return pd.DataFrame(rows)


def _points(axis: plt.Axes) -> int:
    """Plotted rows of one panel: the points of its error bars."""
    return sum(len(container.lines[0].get_xdata()) for container in axis.containers)


@pytest.mark.parametrize("baselines", [("vgg",), ("vgg", "pixel")])
def test_forest_plot_has_one_row_per_comparison_and_judge_and_a_zero_line(baselines: tuple[str, ...]) -> None:
    table = _table(baselines)
    figure = forest_plot(table)
    try:
        assert isinstance(figure, Figure)
        panels = [axis for axis in figure.axes if axis.get_visible()]
        assert [axis.get_title().split("\n")[0] for axis in panels] == list(JUDGES)  # one panel per judge
        assert "sign flipped" in panels[2].get_title() and "sign flipped" not in panels[0].get_title()
        comparisons = len(table) // len(JUDGES)
        for axis in panels:
            assert _points(axis) == comparisons
            zero = [line for line in axis.get_lines() if line.get_gid() == "zero"]
            assert len(zero) == 1 and set(zero[0].get_xdata()) == {0.0}
        assert sum(_points(axis) for axis in panels) == len(table)
        labels = [label.get_text() for label in panels[0].get_yticklabels()]
        assert len(labels) == comparisons
        assert labels[0] == ("pixel" if len(baselines) == 1 else "pixel vs vgg")
        versus = "vgg" if len(baselines) == 1 else "baseline"
        assert figure.get_supxlabel() == f"difference vs {versus} (positive = better)"
        assert "95 % percentile bootstrap" in figure.get_suptitle() and "n = 24" in figure.get_suptitle()
        colours = {tuple(container.lines[0].get_color()) for axis in panels for container in axis.containers}
        assert len(colours) >= 2  # coloured by verdict
        assert {handle.get_label() for handle in figure.legends[0].legend_handles} == set(VERDICT_COLOURS)
    finally:
        plt.close(figure)


def test_forest_plot_skips_undefined_rows_and_wraps_many_judges() -> None:
    table = _table()
    table.loc[0, ["mean", "ci_low", "ci_high"]] = np.nan  # no finite pair: nothing to draw, no crash
    many = pd.concat([table.assign(judge=table["judge"] + f"_{copy}") for copy in range(4)], ignore_index=True)
    figure = forest_plot(many.drop(columns=["level", "resamples", "resample_unit"]))
    try:
        panels = [axis for axis in figure.axes if axis.get_visible()]
        assert len(panels) == 12 and len(figure.axes) == 15  # 5 columns, 3 rows, 3 empty slots hidden
        assert "percentile bootstrap" in figure.get_suptitle()
    finally:
        plt.close(figure)
