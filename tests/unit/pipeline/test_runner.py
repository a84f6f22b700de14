"""Tests of the stage runner: device resolution, the last-resort handler, the stage transaction."""

import errno
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT

from psychovis import io
from psychovis.errors import ParamsError
from psychovis.pipeline.runner import describe_failure, resolve_device, run_stage


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParamsError, match=r"base\.device.*auto.*cpu.*cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParamsError, match="no CUDA device"):
            resolve_device("cuda")


def test_plateau_change_is_zero_on_a_flat_curve_and_positive_while_falling() -> None:
    from psychovis.pipeline.training import plateau_change

    assert plateau_change(np.ones(100)) == 0.0
    assert plateau_change(np.linspace(2.0, 1.0, 100)) > 0.0
    assert np.isnan(plateau_change(np.ones(1)))  # too short to have two windows


# ------------------------------------------------------------------------------ last-resort handler


class _FakeSqlalchemyError(Exception):
    """An exception that says it comes from sqlalchemy (as the MLflow store's errors do)."""


_FakeSqlalchemyError.__module__ = "sqlalchemy.exc"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), r"out of memory .*reduce stimuli\.size or the number of frequencies"),
        (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried 2 TB"), r"out of memory"),
        (
            UnicodeDecodeError("utf-8", b"caf\xe9", 3, 4, "invalid continuation byte"),
            r"not UTF-8 .*byte 3.*save the input files of stage stimuli as UTF-8",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "data/x.parquet"), r"the disk is full \(data/x\.parquet\)"),
        (PermissionError(errno.EACCES, "Permission denied", "data/y"), r"Permission denied \(data/y\); check"),
        (_FakeSqlalchemyError("file is not a database\n[SQL: PRAGMA]"), r"MLflow tracking store failed .*mlflow\.db"),
        (KeyError("config"), r"unexpected KeyError: 'config'; check params\.yaml: stimuli .*--debug"),
        (ValueError("line one\nline two\n" + "x" * 2000), r"unexpected ValueError: line one line two x+"),
    ],
)
def test_describe_failure_is_one_line_that_says_what_to_check(exc, expected):
    line = describe_failure(exc, "stimuli", ["stimuli"])
    assert "\n" not in line and len(line) <= 500
    assert re.search(expected, line), line


def _params_file(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (ZeroDivisionError("division by zero"), 2, r"^psychovis demo: error: unexpected ZeroDivisionError"),
        (MemoryError(), 2, r"^psychovis demo: error: out of memory"),
        (KeyboardInterrupt(), 130, r"^psychovis demo: interrupted; the outputs .* previous versions$"),
    ],
)
def test_run_stage_turns_any_failure_into_one_line_and_rolls_back(tmp_path, monkeypatch, capsys, raised, code, line):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PSYCHOVIS_DEBUG", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = _params_file(tmp_path)
    output = io.write_json({"run": "previous"}, tmp_path / "data" / "out.json")
    before = output.read_bytes()

    def main(ctx):
        io.write_json({"run": "new"}, "data/out.json")
        io.write_json({"run": "new"}, "data/second.json")
        raise raised

    with pytest.raises(SystemExit) as info:
        run_stage("demo", main, ["vfss"], argv=["--params", str(params)])
    assert info.value.code == code
    lines = [text for text in capsys.readouterr().err.splitlines() if text.strip()]
    assert len(lines) == 1 and re.search(line, lines[0]), lines
    assert output.read_bytes() == before
    assert not (tmp_path / "data" / "second.json").exists()


def test_run_stage_debug_shows_the_original_exception(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = _params_file(tmp_path)

    def main(ctx):
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        run_stage("demo", main, ["vfss"], argv=["--params", str(params), "--debug"])
    monkeypatch.setenv("PSYCHOVIS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_stage("demo", main, ["vfss"], argv=["--params", str(params)])


def test_run_stage_hands_the_pixel_cap_to_the_image_reader(tmp_path, monkeypatch):
    from psychovis import images

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["images"]["max_pixels"] = 123_456
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    seen = []
    run_stage("demo", lambda ctx: seen.append((images.max_pixels_default(), sorted(ctx.params))), ["vfss"], argv=[])
    assert seen == [(123_456, ["vfss"])]  # and the cap is not one of the stage's logged params
    assert json.dumps(seen)
