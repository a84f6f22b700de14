"""Tests of psychovis.pipeline.params: the params.yaml schema and its one-line errors."""

import copy
import hashlib
import json
import math

import pytest
import yaml
from conftest import ROOT

from psychovis.errors import ParamsError
from psychovis.pipeline import params

PARAMS_FILE = ROOT / "params.yaml"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(PARAMS_FILE.read_text())


@pytest.fixture
def present(raw):
    """A deep copy of the real params and the schema sections it holds."""
    return copy.deepcopy(raw), [section for section in params.SCHEMA if section in raw]


def _error(values, sections) -> str:
    with pytest.raises(ParamsError) as info:
        params.validate(values, sections)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_real_params_validate(raw, present):
    _, sections = present
    # Every section of the file is in the schema, and the analysis stages' sections are all there.
    assert set(raw) <= set(params.SCHEMA)
    assert {"base", "stimuli", "features", "tuning", "vfss", "weights"} <= set(sections)
    validated = params.load(PARAMS_FILE, sections)
    assert list(validated) == sections
    assert validated["vfss"]["csf"] == "mannos_sakrison_code"
    assert validated["stimuli"]["frequency_mapping"] == "paper"
    assert validated["stimuli"]["size"] == 227
    for section in sections:
        assert set(validated[section]) == set(params.SCHEMA[section])


def test_paper_preset_values(raw):
    stimuli = raw["stimuli"]
    assert (stimuli["frequency_start_cpd"], stimuli["frequency_stop_cpd"], stimuli["frequency_step_cpd"]) == (
        0.1,
        30.0,
        0.5,
    )
    assert (stimuli["viewing_distance_in"], stimuli["pixels_per_inch"]) == (103.35, 89.7)
    assert stimuli["kind"] == "concentric"
    assert raw["weights"]["layers"] == ["relu3_2"]


def test_values_are_coerced(present):
    values, sections = present
    values["stimuli"]["viewing_distance_in"] = 100  # an int where a float is expected
    validated = params.validate(values, sections)
    assert isinstance(validated["stimuli"]["viewing_distance_in"], float)
    assert isinstance(validated["base"]["seed"], int)


def test_unknown_key(present):
    values, sections = present
    values["vfss"]["csff"] = "mannos_sakrison"
    message = _error(values, sections)
    assert "vfss.csff" in message
    assert "csf" in message.split("allowed")[1]


def test_unknown_section(present):
    values, sections = present
    values["trian"] = {"iterations": 10}
    message = _error(values, sections)
    assert "trian" in message
    for section in params.SCHEMA:
        assert section in message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("features", "batch_size", "16", "must be an integer"),
        ("features", "batch_size", 16.5, "must be an integer"),
        ("base", "seed", True, "must be an integer"),
        ("stimuli", "viewing_distance_in", "far", "must be a number"),
        ("stimuli", "contrasts", 1.0, "must be a list"),
        ("weights", "layers", [], "must be a list"),
        ("weights", "layers", [""], "non-empty string"),
        ("features", "layers", 3, "must be a list"),
    ],
)
def test_wrong_type(present, section, key, value, expected):
    values, sections = present
    values[section][key] = value
    message = _error(values, sections)
    assert f"{section}.{key}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("stimuli", "size", 8, "[16, 1024]"),
        ("features", "batch_size", 0, "[1, 4096]"),
        ("stimuli", "pixels_per_inch", 0.5, "[1.0, 10000.0]"),
        ("tuning", "min_response", -1.0, "[0.0, inf]"),
    ],
)
def test_out_of_range(present, section, key, value, allowed):
    values, sections = present
    values[section][key] = value
    message = _error(values, sections)
    assert f"{section}.{key}" in message
    assert allowed in message


def test_out_of_range_list_item_names_the_index(present):
    values, sections = present
    values["stimuli"]["contrasts"] = [1.0, 1.5]
    message = _error(values, sections)
    assert "stimuli.contrasts[1]" in message
    assert "[0.0, 1.0]" in message


def test_non_finite_number(present):
    values, sections = present
    values["stimuli"]["viewing_distance_in"] = math.nan
    assert "stimuli.viewing_distance_in must be finite" in _error(values, sections)


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        (
            "vfss",
            "csf",
            "barten",
            ["barten_2003", "mannos_sakrison", "mannos_sakrison_code", "standard_spatial_observer"],
        ),
        ("base", "backbone", "resnet50", ["alexnet", "vgg16", "vgg16_random"]),
        ("base", "device", "gpu", ["auto", "cpu", "cuda"]),
        ("stimuli", "frequency_mapping", "retinal", ["paper", "physical"]),
        ("stimuli", "kind", "spiral", ["concentric", "linear"]),
    ],
)
def test_bad_choice(present, section, key, value, allowed):
    values, sections = present
    values[section][key] = value
    message = _error(values, sections)
    assert f"{section}.{key}" in message
    assert repr(value) in message
    assert str(sorted(allowed)) in message


def test_missing_key(present):
    values, sections = present
    del values["vfss"]["csf"]
    message = _error(values, sections)
    assert "vfss.csf" in message
    assert "missing" in message


def test_missing_section(present):
    values, sections = present
    del values["tuning"]
    message = _error(values, sections)
    assert "'tuning'" in message


def test_stop_must_exceed_start(present):
    values, sections = present
    values["stimuli"]["frequency_stop_cpd"] = values["stimuli"]["frequency_start_cpd"]
    message = _error(values, sections)
    assert "stimuli.frequency_stop_cpd" in message


def test_only_requested_sections_are_checked(present):
    values, _ = present
    values["weights"]["top_k"] = 0  # invalid, but the vfss stage does not read it
    assert params.validate(values, ["vfss"]) == {"vfss": values["vfss"]}
    with pytest.raises(ParamsError, match=r"weights\.top_k"):
        params.validate(values, ["weights"])


def test_not_a_mapping():
    with pytest.raises(ParamsError, match="mapping"):
        params.validate([1, 2], ["vfss"])


def test_load_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        params.load(tmp_path / "params.yaml")


def test_load_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("vfss:\n  csf: [unclosed\n")
    with pytest.raises(ParamsError) as info:
        params.load(path, ["vfss"])
    assert "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_load_reports_bad_value_from_file(tmp_path, raw):
    values = copy.deepcopy(raw)
    values["vfss"]["csf"] = "barten"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ParamsError, match=r"^params\.yaml: vfss\.csf must be one of"):
        params.load(path, ["vfss"])


def test_params_hash(present):
    values, sections = present
    validated = params.validate(values, sections)
    digest = params.params_hash(validated)
    assert len(digest) == 16
    int(digest, 16)
    assert params.params_hash(copy.deepcopy(validated)) == digest
    # Key order does not matter.
    reordered = {section: dict(reversed(list(validated[section].items()))) for section in reversed(list(validated))}
    assert params.params_hash(reordered) == digest
    changed = copy.deepcopy(validated)
    changed["vfss"]["csf"] = "mannos_sakrison"
    assert params.params_hash(changed) != digest
    nudged = copy.deepcopy(validated)
    nudged["stimuli"]["frequency_step_cpd"] += 1e-9
    assert params.params_hash(nudged) != digest


def test_params_hash_is_stable_across_runs():
    # A fixed input gives a fixed digest (sha256 of the sorted JSON), not one salted per process.
    expected = hashlib.sha256(json.dumps({"a": {"b": 1}}, sort_keys=True).encode()).hexdigest()[:16]
    assert params.params_hash({"a": {"b": 1}}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr: 1e-4", 1e-4),
        ("lr: 2E+3", 2000.0),
        ("lr: -3e-2", -0.03),
        ("lr: 1.0e-4", 1e-4),
        ("lr: .5", 0.5),
        ("lr: 7", 7),
        ("lr: '1e-4'", "1e-4"),  # quoted: still a string (the validator then says so)
    ],
)
def test_yaml_numbers_are_read_as_dvc_reads_them(text, expected):
    assert params.parse_yaml(text) == {"lr": expected}


@pytest.mark.parametrize(
    "text",
    ["a: 1\na: 2\n", "s:\n  k: 1\n  k: 2\n", "s:\n  k: 1\nt: {}\ns:\n  k: 3\n"],
)
def test_duplicate_keys_are_refused_with_both_lines(text):
    with pytest.raises(ParamsError, match=r"duplicate key '\w' at line \d+ \(first at line \d+\); keep one of them"):
        params.parse_yaml(text)


def test_a_quoted_number_gets_a_hint():
    with pytest.raises(ParamsError, match=r"got '1e-4' \(a quoted string: write the number without quotes\)"):
        params.validate({"pretrain": {"iterations": 2, "learning_rate": "1e-4"}}, ["pretrain"])


def test_the_geometry_aware_loss_can_be_left_out(present):
    values, sections = present
    values["train"]["geometry_losses"] = []
    assert params.validate(values, sections)["train"]["geometry_losses"] == []
    values["train"]["geometry_losses"] = ["vgg"]
    message = _error(values, sections)
    assert "train.geometry_losses" in message and "geometry_aware" in message
