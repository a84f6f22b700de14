"""Cheap checks first (issue 23): a stage refuses bad params before torch, MLflow or pandas is imported."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from common import read_only, weights_bytes
from conftest import ROOT

from psychovis.errors import PsychovisError
from psychovis.pipeline import preflight
from psychovis.pipeline.params import SCHEMA, STAGE_SECTIONS
from psychovis.validation import Choice, Number

HEAVY = ("torch", "mlflow", "pandas")


def _bad_key(stage: str) -> str:
    """A ``section.key`` the stage reads whose validator refuses a word (a number or a choice)."""
    for section in STAGE_SECTIONS[stage]:
        for key, validator in SCHEMA[section].items():
            if isinstance(validator, (Number, Choice)):
                return f"{section}.{key}"
    raise AssertionError(f"{stage} reads no number or choice")


def _params_with(tmp_path: Path, dotted: str, value: object) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section, key = dotted.split(".")
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


def _run(script: Path, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PSYCHOVIS_DEBUG", "MLFLOW_TRACKING_URI", "DVC_STAGE")}
    env.update(PYTHONPATH=str(ROOT / "src"), MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("stage", sorted(STAGE_SECTIONS))
def test_a_bad_param_is_refused_before_torch_is_imported(stage: str, tmp_path: Path) -> None:
    dotted = _bad_key(stage)
    project = _params_with(tmp_path, dotted, "not-a-valid-value")
    result = _run(ROOT / "stages" / f"{stage}.py", project)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")}
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"psychovis {stage}: error: params.yaml: {dotted} "), lines
    assert not set(HEAVY) & imported, f"{stage} imported {set(HEAVY) & imported} before refusing {dotted}"
    assert "numpy" in imported or "ruamel.yaml" in imported  # -X importtime did report the imports


@pytest.mark.parametrize("uri", ["file:mlruns", "file:///{tmp}/mlruns", "mlruns"])
def test_a_file_tracking_store_is_refused_before_the_imports(uri: str, tmp_path: Path) -> None:
    """MLflow 3 raises on its file store only once a run starts (after the work): refused up front instead."""
    project = _params_with(tmp_path, "base.seed", 0)
    result = _run(ROOT / "stages" / "vfss.py", project, MLFLOW_TRACKING_URI=uri.format(tmp=tmp_path))
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "file store" in lines[0], lines
    assert "sqlite:///path/mlflow.db" in lines[0] and "http(s)://host:port" in lines[0]
    assert not (tmp_path / "mlruns").exists()
    assert "torch" not in result.stderr


def test_a_read_only_store_is_refused_before_the_imports(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    with sqlite3.connect(store) as db:
        db.execute("create table t (x)")
    project = _params_with(tmp_path, "base.seed", 0)
    with read_only(store):
        started = time.perf_counter()
        result = _run(ROOT / "stages" / "vfss.py", project, MLFLOW_TRACKING_URI=f"sqlite:///{store}")
        seconds = time.perf_counter() - started
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert f"the MLflow store {store} is read-only" in lines[0] and "damaged" not in lines[0]
    assert "torch" not in result.stderr and seconds < 10


@pytest.mark.parametrize(
    ("scheme", "layers", "message"),
    [
        ("vfss", None, r"holds 'vfss' weights, not the 'topk' weights it was loaded for"),
        ("topk", [], r"holds no layers \(layers: \[\]\)"),
    ],
)
def test_a_wrong_weights_file_is_refused_before_torch_is_imported(
    scheme: str, layers: list[str] | None, message: str, tmp_path: Path
) -> None:
    """The training stage used to train a file of another scheme under the loss's name (or raise KeyError)."""
    project = _params_with(tmp_path, "base.seed", 0)
    (project / "data/weights").mkdir(parents=True)
    tensors = () if layers == [] else ("relu3_2",)
    (project / "data/weights/topk.safetensors").write_bytes(weights_bytes(scheme, layers, tensors))
    result = _run(ROOT / "stages" / "train.py", project, "--loss", "topk", "--seed", "0")
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("psychovis train: error: ") and "data/weights/topk.safetensors" in lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert "torch" not in result.stderr


def test_every_stage_script_has_its_sections_declared_once() -> None:
    scripts = {path.stem: path.read_text() for path in (ROOT / "stages").glob("*.py")}
    assert set(scripts) == set(STAGE_SECTIONS)
    for name, text in scripts.items():
        assert re.search(rf'run_stage\(\s*"{name}"', text), name
        assert "sections=" not in text, f"stages/{name}.py repeats its sections (params.STAGE_SECTIONS has them)"
        first = next(line for line in text.splitlines() if line.startswith(("import ", "from ")))
        assert first.startswith("from psychovis.pipeline import stage_start"), name


def test_a_script_that_is_no_stage_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no params.yaml here: a stage would be refused
    preflight.check_before_imports(["demo.py"])
    preflight.check_before_imports(["stages/weights.py", "--help"])
    preflight.check_before_imports(["stages/weights.py", "--params"])  # the stage's own parser says why


def test_the_refusal_names_the_params_file_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = (_params_with(tmp_path, "weights.top_k", 0) / "params.yaml").rename(tmp_path / "other.yaml")
    with pytest.raises(SystemExit) as exited:
        preflight.check_before_imports(["stages/weights.py", f"--params={other}"])
    assert exited.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line == f"psychovis weights: error: {other}: weights.top_k must be in [1, 4096], got 0"


def test_debug_raises_the_error_itself(tmp_path: Path) -> None:
    other = _params_with(tmp_path, "weights.top_k", 0) / "params.yaml"
    with pytest.raises(PsychovisError, match=r"weights\.top_k"):
        preflight.check_before_imports(["stages/weights.py", "--params", str(other), "--debug"])
