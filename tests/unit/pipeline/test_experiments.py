"""`make exp`: the experiments table keeps to the terminal width and shows what changed, headline first.

On `dvc exp show --json` records; the real repository after two experiments, in a 120-column pty, is
tests/stages/test_exp_show.py.
"""

from __future__ import annotations

import pytest

from psychovis.pipeline.experiments import HEADLINE, Experiment, experiments_from_json, render, table_rows

LOSSES = ("pixel", "vfss", "topk", "vfss_normalised", "lpips_weighted", "pretrain", "bicubic")


def _columns(count: int) -> list[Experiment]:
    columns = []
    for index in range(count):
        headline = {
            f"{HEADLINE}: lpips_alex_vs_vgg.{loss}": round(0.001 * (index - i), 4) for i, loss in enumerate(LOSSES)
        }
        columns.append(
            Experiment(
                name="main" if index == 0 else f"experiment-number-{index}",
                params={"weights.top_k": 64 - index, "train.perceptual_weight": 0.1, "train.seeds": [0, 1, 2]},
                metrics={**headline, "metrics/tuning.json: maps": 4224},
            )
        )
    return columns


@pytest.mark.parametrize("width", [40, 80, 120, 200])
@pytest.mark.parametrize("count", [2, 3, 12])
def test_no_line_is_wider_than_the_terminal(width: int, count: int) -> None:
    text = render(_columns(count), width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    for column in _columns(count):
        assert column.name[:7] in text and column.name[-7:] in text  # every experiment has its column


def test_only_what_differs_is_shown_and_the_headline_comes_first() -> None:
    rows = table_rows(_columns(3))
    names = [name for name, _ in rows]
    assert "weights.top_k" in names and "train.perceptual_weight" not in names and "maps" not in names
    headline_at = next(i for i, name in enumerate(names) if name.startswith(HEADLINE))
    assert names.index("lpips_alex_vs_vgg.vfss") > headline_at > names.index("weights.top_k")
    every = [name for name, _ in table_rows(_columns(3), only_changed=False)]
    assert "train.perceptual_weight" in every and "maps" in every and "train.seeds" in every


def test_values_read_plainly() -> None:
    text = render(_columns(2), 120, only_changed=False)
    assert "[0,1,2]" in text and "4224" in text and "-0.006" in text


def test_one_line_when_nothing_differs() -> None:
    assert "no param or metric differs" in render(_columns(1), 120)
    assert "dvc exp run" in render([], 120)


def test_the_workspace_is_a_column_only_when_it_differs() -> None:
    def record(rev: str, top_k: int, name: str | None = None) -> dict:
        data = {"params": {"params.yaml": {"data": {"weights": {"top_k": top_k}}}}, "metrics": {}}
        return {"rev": rev, "name": name, "data": data}

    baseline = {**record("abc1234def", 64, "main"), "experiments": [{"revs": [record("fff0000", 32, "topk32")]}]}
    same = experiments_from_json([record("workspace", 64), baseline])
    assert [column.name for column in same] == ["main", "topk32"]
    changed = experiments_from_json([record("workspace", 16), baseline])
    assert [column.name for column in changed] == ["main", "workspace", "topk32"]
    assert changed[1].params == {"weights.top_k": 16}
