"""Hostile input files and silently wrong results (issue 23): named as what they are, refused early."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from psychovis import io, report, vfss
from psychovis.errors import DataError, ParamsError
from psychovis.pipeline import inputs


def _make(tmp_path, kind):
    if kind == "folder":
        path = tmp_path / "table"
        path.mkdir()
        return path, "a folder"
    if kind == "fifo":
        path = tmp_path / "table"
        os.mkfifo(path)
        return path, r"a FIFO \(named pipe\)"
    return "/dev/zero", "a character device"


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("reader", [io.read_parquet, io.read_json])
def test_a_non_regular_input_is_named_as_such_not_as_missing(tmp_path, kind, reader):
    path, expected = _make(tmp_path, kind)
    with pytest.raises(DataError, match=rf"is {expected}, not a readable"):
        reader(path)


def test_a_missing_input_is_still_named_missing(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; run the stage that writes it"):
        io.read_json(tmp_path / "summary.json")


def test_a_truncated_json_is_named(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"gain": {"relu3_2": {"spearman_range": 0.9}}}, indent=2)[:-9])
    with pytest.raises(DataError, match=r"summary\.json is truncated \(the JSON ends early: .* at line \d+"):
        io.read_json(path)
    path.write_text('{"a": 1,, "b": 2}')
    with pytest.raises(DataError, match=r"is not valid JSON \(Expecting"):
        io.read_json(path)


def _features(layer: str, maps: int) -> pd.DataFrame:
    return pd.DataFrame({"layer": layer, "channel": np.arange(maps), "stimulus_id": 0, "response": 1.0})


def test_a_probe_table_with_a_layer_no_backbone_has_is_refused():
    with pytest.raises(DataError, match=r"holds layer 'relu9_9', which no backbone has"):
        inputs.check_layers(_features("relu9_9", 4), "features.parquet")
    with pytest.raises(DataError, match=r"layer relu1_1 has channel 99, but that layer has 64 maps"):
        inputs.check_layers(_features("relu1_1", 100), "features.parquet")
    inputs.check_layers(_features("relu1_1", 64), "features.parquet")


def test_a_sensitivity_top_k_above_a_layers_map_count_is_refused():
    scores = np.arange(8.0)
    layers = np.array(["relu1_1"] * 4 + ["relu3_2"] * 4)
    with pytest.raises(ParamsError, match=r"sensitivity_top_k \(5\) is above the 4 maps of layer relu1_1"):
        vfss.ranking_agreement(scores, scores[::-1], layers, top_k=5)
    assert len(vfss.ranking_agreement(scores, scores[::-1], layers, top_k=4)) == 2


def test_compare_reads_per_image_scores_with_the_input_checks(tmp_path):
    path = tmp_path / "per_image.parquet"
    row = {"method": "vgg", "seed": 0, "image": "im0", "judge": "psnr_y", "value": math.inf}
    io.write_parquet(pd.DataFrame([row, row]), path)
    with pytest.raises(DataError, match=r"repeats 1 row\(s\) of \(method, seed, image, judge\)"):
        inputs.read_input(path, ["method", "seed", "image", "judge", "value"])
    io.write_parquet(pd.DataFrame([row]), path)  # inf is a valid PSNR: kept
    assert inputs.read_input(path, ["method", "seed", "image", "judge", "value"])["value"].iloc[0] == math.inf


def test_a_claim_whose_numbers_are_null_is_dropped():
    psychophysics = {"null_draws": 500, "subsets_k64": {"main": {"topk_percentile": None, "bottomk_percentile": 9}}}
    gain = {
        "relu3_2": {"spearman_range": None, "spearman_mean": 0.9},
        "relu1_2": {"spearman_range": 0.5, "spearman_mean": 0.4},
    }
    atlas = {"layers": {"relu1_2": {"lpips_spearman_vfss": float("nan")}}}
    findings = report.analysis_findings(psychophysics, {"gain": gain}, 64, ["relu3_2", "relu1_2"], None, atlas)
    assert findings == [
        "VFSS at relu1_2 ranks maps by gain: Spearman 0.50 with the response range, 0.40 with the mean response."
    ]
