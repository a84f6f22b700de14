"""`dvc exp show --only-changed` fits a 200-column terminal with the headline results readable."""

from __future__ import annotations

import csv
import io

import pytest
from stagekit import EXPERIMENTS, Repo


@pytest.mark.e2e
def test_only_changed_fits_in_200_columns(experiment_repo: Repo) -> None:
    repo = experiment_repo
    shown = repo.check("dvc", "exp", "show", "--only-changed", "--no-pager", COLUMNS="200")
    lines = shown.splitlines()
    widest = max(len(line) for line in lines)
    assert widest <= 200, f"widest line {widest} columns:\n{shown}"
    # What does not fit is folded into one last "…" column (the changed deps' hashes, which come after
    # the metrics and params); no header or value before it may be cut.
    for line in lines:
        assert "…" not in line.rstrip().rstrip("…"), f"a column is cut short:\n{shown}"
    for name, _ in EXPERIMENTS:
        assert name in shown, shown
    # the headline results that the experiments changed are columns: the topk model's scores, and the
    # verdict counts when the experiments changed them (at this tiny size they may not)
    table = list(csv.reader(io.StringIO(repo.check("dvc", "exp", "show", "--csv", "--no-pager"))))
    verdicts = [i for i, name in enumerate(table[0]) if name.startswith("vs_vgg.")]
    changed = [table[0][i] for i in verdicts if len({row[i] for row in table[1:] if row[i]}) > 1]
    header = " ".join(lines[:6])
    for column in ("psnr_y.topk", "weights.top_k", "train.perceptual_weight", *(["vs_vgg"] if changed else [])):
        assert column in header, f"{column} not among the columns:\n{shown}"
