"""Battery (issue 14): bad ``params.yaml`` files and values stop a direct stage run with one line, exit 2.

Each case runs ``python stages/<stage>.py`` (a direct run, not DVC) in a clone of the tiny
prepared project: duplicate keys (which PyYAML alone would accept), non-finite or quoted numbers,
wrong types, broken files, and sizes that pass validation but need more memory than exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stagekit import (
    DELETE,
    Case,
    Outcome,
    assert_one_line_and_unchanged,
    built_project,
    by_name,
    edit_params,
    params_text,
    run_selected,
    tiny_params,
    write_params,
)


def _tiny_text() -> str:
    import yaml

    return yaml.safe_dump(tiny_params(), sort_keys=False)


def text_edit(transform) -> object:
    """params.yaml := ``transform(tiny params as YAML text)`` (for what a mapping cannot express)."""
    return params_text(transform(_tiny_text()))


def params_is_a_folder(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    folder = case_dir / "params_folder.yaml"
    folder.mkdir()
    return ["--params", str(folder)], {}


def duplicate_section(text: str) -> str:
    return text + "vfss:\n  csf: mannos_sakrison\n"


def duplicate_key(text: str) -> str:
    return text.replace("vfss:\n", "vfss:\n  csf: mannos_sakrison\n", 1)


def latin1(text: str) -> bytes:
    return text.encode("utf-8") + "# caf\xe9\n".encode("latin-1")


def huge_stimuli(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    # 30,000 frequencies x 1024^2 px: valid one key at a time, ~1.5 PB to render
    return edit_params(stimuli__size=1024, stimuli__frequency_step_cpd=0.001)(case_dir, project)


CASES = by_name(
    [
        Case("duplicate_section", "vfss", text_edit(duplicate_section), (r"duplicate key 'vfss'", r"keep one")),
        Case("duplicate_key", "vfss", text_edit(duplicate_key), (r"duplicate key 'csf'", r"line \d+", r"keep one")),
        Case(
            "duplicate_key_other_file",
            "weights",
            text_edit(lambda t: t.replace("weights:\n", "weights:\n  top_k: 4\n", 1)),
            (r"duplicate key 'top_k'",),
        ),
        Case(
            "quoted_number",  # '1e-4' in quotes stays a string: the line says so
            "pretrain",
            text_edit(lambda t: re.sub(r"(pretrain:\n(?:  .*\n)*?  learning_rate: )\S+", r"\g<1>'1e-4'", t, count=1)),
            (r"pretrain\.learning_rate must be a number, got '1e-4'", r"quoted string", r"without quotes"),
        ),
        Case(
            "scientific_read_as_a_number",  # 1e-9 is a number (out of range), not the string '1e-9'
            "pretrain",
            text_edit(lambda t: re.sub(r"(pretrain:\n(?:  .*\n)*?  learning_rate: )\S+", r"\g<1>1e-9", t, count=1)),
            (r"pretrain\.learning_rate must be in \[1e-07, 1\.0\], got 1e-09",),
        ),
        Case("size_inf", "stimuli", edit_params(stimuli__size=float("inf")), (r"stimuli\.size", r"integer|finite")),
        Case(
            "step_nan",
            "stimuli",
            edit_params(stimuli__frequency_step_cpd=float("nan")),
            (r"frequency_step_cpd", r"finite"),
        ),
        Case(
            "step_inf",
            "stimuli",
            edit_params(stimuli__frequency_step_cpd=float("inf")),
            (r"frequency_step_cpd", r"finite"),
        ),
        Case(
            "size_string", "stimuli", edit_params(stimuli__size="32"), (r"stimuli\.size must be an integer", r"quoted")
        ),
        Case("size_bool", "stimuli", edit_params(stimuli__size=True), (r"stimuli\.size must be an integer", r"True")),
        Case("size_float", "stimuli", edit_params(stimuli__size=32.5), (r"stimuli\.size must be an integer",)),
        Case("size_too_large", "stimuli", edit_params(stimuli__size=4096), (r"stimuli\.size must be in",)),
        Case(
            "size_overflow",
            "stimuli",
            text_edit(lambda t: t.replace("size: 32", "size: 1e400", 1)),
            (r"stimuli\.size",),
        ),
        Case("seed_negative", "features", edit_params(base__seed=-1), (r"base\.seed must be in",)),
        Case("device_unknown", "features", edit_params(base__device="gpu"), (r"base\.device must be one of",)),
        Case("list_not_list", "stimuli", edit_params(stimuli__contrasts=1.0), (r"stimuli\.contrasts must be a list",)),
        Case("list_empty", "stimuli", edit_params(stimuli__contrasts=[]), (r"stimuli\.contrasts must be a list",)),
        Case(
            "list_item_nan", "stimuli", edit_params(stimuli__contrasts=[float("nan")]), (r"contrasts\[0\]", r"finite")
        ),
        Case("section_null", "vfss", edit_params(vfss=None), (r"section 'vfss' is missing or not a mapping",)),
        Case("file_empty", "vfss", params_text(""), (r"section '\w+' is missing or not a mapping",)),
        Case("file_a_list", "vfss", params_text("- 1\n- 2\n"), (r"must be a mapping of sections",)),
        Case("file_a_scalar", "vfss", params_text("just text\n"), (r"must be a mapping of sections",)),
        Case(
            "file_latin1",
            "vfss",
            params_text(latin1("vfss:\n  csf: mannos_sakrison\n")),
            (r"params\.yaml is not UTF-8 text \(byte 0xe9 on line 3\)", r"save it as UTF-8"),
        ),
        Case("file_binary", "vfss", params_text(bytes(range(256)) * 4), (r"params\.yaml", r"UTF-8|not valid YAML")),
        Case("file_tab_indent", "vfss", params_text("vfss:\n\tcsf: mannos_sakrison\n"), (r"not valid YAML", r"line 2")),
        Case("file_is_folder", "vfss", params_is_a_folder, (r"params_folder\.yaml", r"cannot be read|not found")),
        Case("max_pixels_zero", "vfss", edit_params(images__max_pixels=0), (r"images\.max_pixels must be in",)),
        Case("max_pixels_missing", "vfss", edit_params(images__max_pixels=DELETE), (r"images\.max_pixels is missing",)),
        Case(
            "stimuli_need_petabytes",
            "stimuli",
            huge_stimuli,
            (
                r"rendering [\d,]+ gratings of 1024x1024 px needs about [\d.]+ [GMPT]B",
                r"available",
                r"reduce stimuli\.size",
            ),
        ),
        Case(
            "stop_before_start",
            "stimuli",
            edit_params(stimuli__frequency_start_cpd=10.0, stimuli__frequency_stop_cpd=5.0),
            (r"frequency_stop_cpd must be greater",),
        ),
        Case(
            "unknown_key_typo", "weights", edit_params(weights__topk=8), (r"unknown key weights\.topk", r"allowed keys")
        ),
    ],
    subprocess=["duplicate_section"],
)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_bad_params_stop_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_one_line_and_unchanged(CASES[name], outcomes[name])


def test_yaml_1_1_numbers_and_duplicates_in_a_direct_load(tmp_path: Path) -> None:
    """``1e-4`` is a number (as DVC reads it); a duplicate key is an error naming both lines."""
    from psychovis.errors import ParamsError
    from psychovis.pipeline import params

    values = tiny_params()
    path = write_params(tmp_path / "params.yaml", values)
    text = re.sub(r"(pretrain:\n(?:  .*\n)*?  learning_rate: )\S+", r"\g<1>2e-4", path.read_text(), count=1)
    assert "2e-4" in text
    path.write_text(text)
    loaded = params.load(path, ["pretrain", "train"])
    assert loaded["pretrain"]["learning_rate"] == pytest.approx(2e-4)
    path.write_text(text + "train:\n  seeds: [1]\n")
    with pytest.raises(ParamsError, match=r"duplicate key 'train' at line \d+ \(first at line \d+\)"):
        params.load(path, ["train"])
