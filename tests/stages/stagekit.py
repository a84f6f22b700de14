"""Helpers for tests that run stage scripts as real subprocesses in tiny temporary project copies.

Not a test module (pytest does not collect it); imported by test_bad_inputs, test_faults and
test_mlflow_server. One tiny project with the upstream outputs (stimuli, features, vfss, weights)
is built once per session and cloned cheaply for every case that needs its own copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT

VENV_BIN = Path(sys.executable).parent
TINY: dict[str, dict[str, Any]] = {
    "base": {"device": "cpu"},
    "stimuli": {"size": 32, "frequency_step_cpd": 6.0},
    "features": {"layers": ["relu1_1", "relu3_2"], "batch_size": 8},
    "weights": {"layers": ["relu3_2"], "top_k": 8},
    "pretrain": {"iterations": 2},
    "train": {
        "layers": ["relu3_2"],
        "seeds": [0],
        "iterations": 2,
        "batch_size": 2,
        "crop_size": 32,
        "channels": 8,
        "residual_blocks": 1,
        "log_every": 2,
        "image_dir": None,
        "test_images": 3,
    },
    "evaluate": {"judges": ["psnr_y", "gmsd"], "max_size": 64, "figure_crop": 32, "frequency_bands": 4},
}
UPSTREAM = ("stimuli", "features", "vfss", "weights")
# Variables of the caller's shell that would change what a stage does.
_SCRUB = (
    "PSYCHOVIS_DEBUG",
    "PSYCHOVIS_RESUME",
    "PSYCHOVIS_WEIGHTS_DIR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
)


def tiny_params(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The repository's params.yaml with :data:`TINY` (and then ``overrides``) applied."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for layer in (TINY, overrides or {}):
        for section, values in layer.items():
            params.setdefault(section, {}).update(values)
    return params


def write_params(path: Path, params: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    return path


def copy_sources(dest: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """A fresh project at ``dest``: dvc.yaml, stages/, src/ and a tiny params.yaml (no outputs)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "stages", "src"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    write_params(dest / "params.yaml", tiny_params(overrides))
    return dest


def stage_env(project: Path, tracking_db: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a stage subprocess: this venv, the copy's src, its own MLflow store."""
    env = {key: value for key, value in os.environ.items() if key not in _SCRUB}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(project / "src"),
        MLFLOW_TRACKING_URI=f"sqlite:///{tracking_db or project.parent / 'mlflow.db'}",
        TQDM_DISABLE="1",
        # One thread: the tiny networks are fastest so, runs on a busy 2-core machine do not fight,
        # and results do not depend on the thread count.
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
    )
    env.update(extra)
    return env


def stage_command(stage: str, *args: str) -> list[str]:
    """``train@vgg-s1`` -> ``stages/train.py --loss vgg --seed 1``; ``atlas@vgg16`` -> ``--backbone vgg16``."""
    script, _, item = stage.partition("@")
    if script == "train":
        loss, _, seed = item.rpartition("-s")
        item_args = ["--loss", loss, "--seed", seed]
    else:
        item_args = ["--backbone", item] if item else []
    return [sys.executable, f"stages/{script}.py", *item_args, *args]


def run(
    project: Path, env: Mapping[str, str], stage: str, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``stages/<stage>.py`` (``train@pixel-s0`` -> ``train.py --loss pixel --seed 0``) in ``project``."""
    return subprocess.run(
        stage_command(stage, *args), cwd=project, env=dict(env), capture_output=True, text=True, timeout=timeout
    )


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result


def start(project: Path, env: Mapping[str, str], stage: str, *args: str) -> subprocess.Popen[bytes]:
    """Start a stage in its own process group (so it and anything it spawned can be killed)."""
    return subprocess.Popen(
        stage_command(stage, *args),
        cwd=project,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group led by ``process`` (ours: started with start_new_session) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def snapshot(project: Path) -> dict[str, bytes]:
    """Every file of the project except the copied code: relative path -> bytes."""
    files: dict[str, bytes] = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if relative.parts[0] in ("src", "stages") or "__pycache__" in relative.parts or not path.is_file():
            continue
        files[relative.as_posix()] = path.read_bytes()
    return files


@dataclass(frozen=True)
class Built:
    """A tiny project after the upstream stages ran, and how long each took (seconds)."""

    project: Path
    tracking_db: Path
    seconds: dict[str, float]

    def clone(self, dest: Path, with_tracking: bool = True) -> Path:
        """Copy the project (code, params and outputs) to ``dest/project`` and its MLflow store to ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        project = dest / "project"
        shutil.copytree(self.project, project, ignore=shutil.ignore_patterns("__pycache__", "mlruns"), symlinks=True)
        if with_tracking:
            shutil.copy2(self.tracking_db, dest / "mlflow.db")
        return project


_BUILT: dict[str, Built] = {}


def built_project(factory: Any) -> Built:
    """Build (once per session) a tiny project and run the upstream stages in it, in order."""
    if "upstream" not in _BUILT:
        base = factory.mktemp("upstream")
        project = copy_sources(base / "project")
        env = stage_env(project)
        seconds = {}
        for stage in UPSTREAM:
            started = time.perf_counter()
            check(run(project, env, stage))
            seconds[stage] = time.perf_counter() - started
        _BUILT["upstream"] = Built(project, base / "mlflow.db", seconds)
    return _BUILT["upstream"]


def server_healthy(url: str) -> bool:
    """Whether an ``mlflow server`` at ``url`` answers its health check (False while it starts)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{stderr[-3000:]}"
    return lines[0]


def temporaries(project: Path) -> list[str]:
    """Temporary files (``*.tmp``) anywhere in the project's outputs."""
    return sorted(
        path.relative_to(project).as_posix()
        for folder in (project / "data", project / "metrics")
        if folder.exists()
        for path in folder.rglob("*.tmp")
    )
