"""Hostile params files (issue 23): read as DVC reads them, refused in one bounded line, quickly."""

from __future__ import annotations

import copy
import os
import time

import pytest
import yaml
from conftest import ROOT

from psychovis.errors import ParamsError
from psychovis.pipeline import params

PARAMS_FILE = ROOT / "params.yaml"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(PARAMS_FILE.read_text())


def _refusal(text: str) -> str:
    with pytest.raises(ParamsError) as info:
        params.parse_yaml(text)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "yaml12", "yaml11"),
    [
        ("top_k: 0100", "100", "64"),
        ("duration: 1:30", "'1:30'", "90"),
        ("autocast: on", "'on'", "True"),
        ("autocast: off", "'off'", "False"),
        ("flag: yes", "'yes'", "True"),
        ("flags: [1, no]", "'no'", "False"),
        ("on: 1", "'on'", "True"),  # a key, too
    ],
)
def test_a_value_read_differently_by_yaml_11_and_12_is_refused_with_both_readings(text, yaml12, yaml11):
    message = _refusal(text)
    assert f"reads as {yaml12} under YAML 1.2" in message
    assert f"as {yaml11} under YAML 1.1" in message


def test_values_read_as_dvc_reads_them():
    from dvc.utils.serialize import parse_yaml

    text = "a: 1e-4\nb: 0x1F\nc: '0100'\nd: .inf\ne: ~\nf: 1_000\ng: [true, false]\nh: !!str 5\n"
    assert params.parse_yaml(text) == parse_yaml(text, "params.yaml")


def test_merge_keys_are_applied_as_dvc_applies_them():
    from dvc.utils.serialize import parse_yaml

    text = "base: &base {x: 1, y: 2}\nother:\n  <<: *base\n  y: 3\n"
    assert (
        params.parse_yaml(text)
        == parse_yaml(text, "params.yaml")
        == {
            "base": {"x": 1, "y": 2},
            "other": {"x": 1, "y": 3},
        }
    )


def test_an_alias_bomb_is_refused_quickly_without_formatting_it():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    started = time.monotonic()
    message = _refusal("\n".join(lines))
    assert time.monotonic() - started < 2
    assert "expands to more than" in message and len(message) < 300


@pytest.mark.parametrize(
    "text",
    ["a: " + "[" * 5000 + "]" * 5000, "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400))],
)
def test_deep_nesting_is_one_line_quickly(text):
    started = time.monotonic()
    message = _refusal(text)
    assert time.monotonic() - started < 2
    assert f"nests deeper than {params.MAX_DEPTH} levels" in message and len(message) < 300


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: "/dev/zero", "is a character device, not a readable params file"),
        (lambda tmp: (os.mkfifo(tmp / "fifo.yaml"), tmp / "fifo.yaml")[1], r"is a FIFO \(named pipe\)"),
        (lambda tmp: tmp, "is a folder, not a readable params file"),
        (
            lambda tmp: (
                (tmp / "big.yaml").write_bytes(b"# " + b"x" * params.MAX_BYTES + b"\n"),
                tmp / "big.yaml",
            )[1],
            "more than the 1,000,000 a params file may have",
        ),
    ],
)
def test_a_params_file_that_is_not_a_small_regular_file_is_refused_unread(tmp_path, make, expected):
    path = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(ParamsError, match=expected):
        params.load(path, ["vfss"])
    assert time.monotonic() - started < 1


def test_a_look_alike_unicode_key_is_named(raw):
    values = copy.deepcopy(raw)
    values["vfѕs"] = values.pop("vfss")  # a Cyrillic dze for the s
    with pytest.raises(ParamsError, match=r"CYRILLIC SMALL LETTER DZE \(U\+0455\); did you mean 'vfss'\?"):
        params.validate(values)
    values = copy.deepcopy(raw)
    values["vfss"]["csf\u00a0"] = values["vfss"].pop("csf")
    with pytest.raises(ParamsError, match=r"NO-BREAK SPACE .*did you mean 'csf'\?"):
        params.validate(values, ["vfss"])


@pytest.mark.parametrize("key", [1, None, True])
def test_a_key_that_is_not_text_is_named(raw, key):
    values = copy.deepcopy(raw)
    values[key] = {}
    with pytest.raises(ParamsError, match=r"section name .* not a name; every section and key is text"):
        params.validate(values)


@pytest.mark.parametrize(
    "make",
    [
        lambda: list(range(1_000_000)),
        lambda: "x" * 100_000,
        lambda: 10**5000,
        lambda: [[[[[[["deep"]]]]]]],
        lambda: {str(i): i for i in range(10**5)},
    ],
    ids=["long-list", "long-text", "huge-int", "nested", "big-mapping"],
)
def test_an_error_quotes_at_most_about_200_characters_of_the_value(raw, make):
    values = copy.deepcopy(raw)
    values["vfss"]["csf"] = make()
    with pytest.raises(ParamsError) as info:
        params.validate(values, ["vfss"])
    assert len(str(info.value)) < 400


def test_a_self_referencing_value_is_quoted_bounded():
    from psychovis.errors import quote

    loop: list = []
    loop.append(loop)
    assert len(quote(loop)) <= 200
    assert len(quote("x" * 10_000)) <= 200


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("stimuli", "contrasts", [0.0], r"stimuli\.contrasts\[0\] is 0: a grating of zero contrast is a blank"),
        ("compare", "baselines", ["vgg", "pixel", "vgg"], r"compare\.baselines names \['vgg'\] more than once"),
        ("compare", "resamples", 1, r"compare\.resamples \(1\) is too few for a 0\.95 interval"),
        ("train", "processes", 3, r"train\.batch_size \(\d+\) must be a multiple of train\.processes \(3\)"),
        ("train", "processes", 128, r"train\.processes must be in \[1, 64\]"),
    ],
)
def test_settings_that_fail_late_or_silently_are_refused_at_load(raw, section, key, value, expected):
    values = copy.deepcopy(raw)
    values[section][key] = value
    if key == "processes" and value == 3:
        values["train"]["batch_size"] = 8
    with pytest.raises(ParamsError, match=expected):
        params.validate(values)
