"""Tests of psychovis.pipeline.inputs: upstream tables are checked before a stage uses them."""

import numpy as np
import pandas as pd
import pytest

from psychovis import io
from psychovis.errors import DataError, ParamsError
from psychovis.pipeline import inputs


def _tables(tmp_path):
    stimuli = pd.DataFrame(
        {
            "stimulus_id": np.arange(3),
            "frequency_cpd": [1.0, 2.0, 4.0],
            "frequency_cpp": [0.01, 0.02, 0.04],
            "contrast": [1.0, 1.0, 1.0],
        }
    )
    features = pd.DataFrame(
        {
            "layer": ["relu1_1"] * 6,
            "channel": [0, 0, 0, 1, 1, 1],
            "stimulus_id": [0, 1, 2, 0, 1, 2],
            "response": [0.1, 0.5, 0.2, 0.0, 0.3, 0.9],
        }
    )
    return stimuli, features


def _read(tmp_path, stimuli, features):
    s = io.write_parquet(stimuli, tmp_path / "stimuli.parquet")
    f = io.write_parquet(features, tmp_path / "features.parquet")
    features = inputs.read_input(f, ["layer", "channel", "stimulus_id", "response"])
    stimuli = inputs.read_input(s, ["stimulus_id", "frequency_cpd", "frequency_cpp", "contrast"])
    inputs.check_responses_cover(features, stimuli, f, s)


def test_clean_tables_pass(tmp_path):
    _read(tmp_path, *_tables(tmp_path))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda s, f: f.assign(response=f["response"].where(f.index != 2, np.nan)), r"'response' holds 1 non-finite"),
        (lambda s, f: f.assign(response=-f["response"] - 1), r"'response' holds negative"),
        (lambda s, f: f.assign(response=f["response"].astype(str)), r"'response' holds text values"),
        (lambda s, f: s.assign(frequency_cpd=[1.0, np.inf, 4.0]), r"'frequency_cpd' holds 1 non-finite"),
        (lambda s, f: pd.concat([f, f.iloc[[0]]]), r"features\.parquet repeats 1 row\(s\) of \(layer, channel"),
        (lambda s, f: f.iloc[:-1], r"holds 5 responses, but its 2 maps x 3 stimuli need 6"),
        (lambda s, f: f[f["stimulus_id"] != 2], r"disagree on the stimuli .*only: \[2\]"),
        (lambda s, f: f.iloc[:0], r"features\.parquet holds no rows"),
    ],
)
def test_spoiled_tables_are_refused_naming_file_and_column(tmp_path, spoil, message):
    stimuli, features = _tables(tmp_path)
    result = spoil(stimuli, features)
    if "frequency_cpd" in result.columns:
        stimuli = result
    else:
        features = result
    with pytest.raises(DataError, match=message) as info:
        _read(tmp_path, stimuli, features)
    assert "\n" not in str(info.value)


def _reference(tmp_path, monkeypatch, **record):
    monkeypatch.chdir(tmp_path)
    base = {"observer": "geometry_aware_vgg", "reference_px_per_degree": 30.0, "layers": ["relu3_2"],
            "backbone": "vgg16", "fit_families": ["gabor_csf"]}  # fmt: skip
    io.write_json(base | record, inputs.REFERENCE_GEOMETRY)


def test_the_reference_geometry_is_read_for_its_layers(tmp_path, monkeypatch):
    _reference(tmp_path, monkeypatch)
    assert inputs.read_reference_geometry(["relu3_2"]) == 30.0
    monkeypatch.chdir(tmp_path.parent)  # another checkout's file (the fronts benchmark reads the study's)
    assert inputs.read_reference_geometry(["relu3_2"], root=tmp_path) == 30.0
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=r"train\.layers \['relu2_2'\].*modelfest\.layers \['relu3_2'\]"):
        inputs.read_reference_geometry(["relu2_2"])


def test_a_missing_or_unfitted_reference_geometry_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="dvc repro"):
        inputs.read_reference_geometry(["relu3_2"])
    _reference(tmp_path, monkeypatch, reference_px_per_degree=None, why="no geometry_aware_vgg observer was fitted")
    with pytest.raises(ParamsError, match=r"no geometry_aware_vgg observer.*train\.geometry_losses: \[\]"):
        inputs.read_reference_geometry(["relu3_2"])
    _reference(tmp_path, monkeypatch, reference_px_per_degree=-1)
    with pytest.raises(DataError, match="not a positive number"):
        inputs.read_reference_geometry(["relu3_2"])
