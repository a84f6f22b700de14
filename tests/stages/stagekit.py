"""THE kit of the stage tests: tiny projects, stage subprocesses (or in-process runs), dvc and git helpers,
and the reliability battery's machinery. Not a test module (pytest does not collect it).

- Tiny projects: :data:`TINY` params, :func:`copy_sources`, :func:`stage_env`, :func:`stage_command`,
  :func:`run`; :func:`built_project` builds the upstream outputs once per session and clones them.
- Git + DVC repositories: :func:`tiny_repo` (a few stages of dvc.yaml), :class:`Repo` (the session's
  full tiny repository, see ``conftest.py``: built by one ``dvc repro``, copied by the modules that change it).
- The battery (issue 14): a :class:`Case` spoils a clone of a tiny project and runs one stage; the
  validation cases run in-process through the runner (:func:`run_case_in_process`), the cases whose
  point is the process boundary as real subprocesses (:func:`run_case`). Each outcome is checked:

  - exit code 2 and exactly one line on stderr, ``psychovis <stage>: error: ...``, no traceback;
  - the line matches the case's regexes (the problem and the fix);
  - every file of the clone holds the same bytes as before, and no file appeared.

  :func:`classify` names what went wrong in the terms of issue 14 (``traceback``, ``silent`` = exit 0,
  ``unclear`` = one line that does not say what the case expects, ``half-updated`` = outputs changed),
  and with ``BATTERY_REPORT=<file>`` every outcome's class is appended there as a JSON line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import runpy
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from common import ROOT
from PIL import Image

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
        "geometry_losses": [],  # needs the modelfest geometry sweep: the session's repository turns both on
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


def copy_sources(
    dest: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    names: Sequence[str] = ("dvc.yaml", "stages", "src"),
) -> Path:
    """A fresh project at ``dest``: ``names`` (dvc.yaml, stages/, src/) and a tiny params.yaml (no outputs)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
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


def run_stages(project: Path, stages: Sequence[str]) -> Built:
    """Run ``stages`` in ``project``, in order (its MLflow store beside it), timing each."""
    env = stage_env(project)
    seconds = {}
    for stage in stages:
        started = time.perf_counter()
        check(run(project, env, stage))
        seconds[stage] = time.perf_counter() - started
    return Built(project, project.parent / "mlflow.db", seconds)


@contextlib.contextmanager
def session_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created), held by one pytest-xdist worker at a time."""
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def session_folder(factory: Any) -> Path:
    """A folder every worker of this pytest session shares (the basetemp's parent under pytest-xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_build(factory: Any, name: str, build: Callable[[Path], Built]) -> Built:
    """``build(folder)`` once per session, whichever pytest-xdist worker asks first; the others wait and read it.

    The builder runs under a lock in a folder every worker sees; its record (``<name>.json``) tells the
    others where it is. Every user clones it before changing anything.
    """
    if name not in _BUILT:
        shared = session_folder(factory)
        folder, record = shared / name, shared / f"{name}.json"
        with session_lock(shared / f"{name}.lock"):
            if record.exists():
                built = json.loads(record.read_text())
                _BUILT[name] = Built(Path(built["project"]), Path(built["tracking_db"]), built["seconds"])
            else:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                done = _BUILT[name] = build(folder)
                paths = {"project": str(done.project), "tracking_db": str(done.tracking_db)}
                record.write_text(json.dumps(paths | {"seconds": done.seconds}))
    return _BUILT[name]


def built_project(factory: Any) -> Built:
    """The tiny project after the upstream stages (:data:`UPSTREAM`), built once per session (:func:`shared_build`)."""
    return shared_build(factory, "upstream", lambda folder: run_stages(copy_sources(folder / "project"), UPSTREAM))


def server_healthy(url: str) -> bool:
    """Whether an ``mlflow server`` at ``url`` answers its health check (False while it starts)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


SERVER_STARTUP_S = 90  # the server migrates a fresh SQLite store first; slow on a busy 2-core machine


def request_json(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """GET ``url`` (POST ``body`` as JSON) and return the JSON answer (an MLflow REST call)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def stop_group(process: subprocess.Popen[Any]) -> None:
    """Stop a process started with its own session and its children: SIGTERM to the group, SIGKILL after 15 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # workers may outlive the parent
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)


@contextlib.contextmanager
def mlflow_server(folder: Path, store: Path, skip_if_down: bool = False) -> Iterator[str]:
    """``mlflow server`` of this virtualenv on a free port, on the SQLite ``store``; yields its URL.

    Its log and artifacts go to ``folder``; it is stopped with its process group. A server that does
    not answer within :data:`SERVER_STARTUP_S` fails the test (or skips it, ``skip_if_down``).
    """
    mlflow = VENV_BIN / "mlflow"
    if not mlflow.exists():
        pytest.skip(f"mlflow is not installed in this virtualenv ({mlflow} missing)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{store}", "--default-artifact-root", str(folder / "artifacts")]
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_STARTUP_S
        while not server_healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "server.log").read_text(errors="replace")[-2000:]
                reason = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
                message = f"mlflow server {reason} within {SERVER_STARTUP_S} s on {url}; its log ends:\n{tail}"
                if skip_if_down:
                    pytest.skip(message)
                pytest.fail(message)
            time.sleep(0.5)
        yield url
    finally:
        stop_group(process)


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


# ------------------------------------------------------------------------------- git + DVC repositories

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "psychovis tests",
    "GIT_AUTHOR_EMAIL": "tests@psychovis.invalid",
    "GIT_COMMITTER_NAME": "psychovis tests",
    "GIT_COMMITTER_EMAIL": "tests@psychovis.invalid",
}


def command(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command line (``dvc ...``, ``git ...``) and assert it succeeded."""
    result = subprocess.run(list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def tiny_repo(
    dest: Path, stages: Sequence[str], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Path, dict[str, str]]:
    """A git + DVC repository at ``dest`` with only ``stages`` of dvc.yaml; returns it and its environment.

    The environment points the stages at the repository's own ``src`` (relative, so a queued
    experiment's temporary copy runs its own copy) and at an MLflow store beside the repository.
    """
    project = copy_sources(dest, overrides)
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    pipeline["stages"] = {name: pipeline["stages"][name] for name in stages}
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (project / ".gitignore").write_text("mlruns/\n__pycache__/\n")
    env = {**stage_env(project), **GIT_IDENTITY, "PYTHONPATH": "src"}
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        command(args, project, env)
    commit(project, env, "tiny pipeline")
    return project, env


def commit(project: Path, env: Mapping[str, str], message: str) -> None:
    """``git add -A`` and commit everything (DVC-tracked outputs are ignored through DVC's .gitignore files)."""
    command(["git", "add", "-A"], project, env)
    command(["git", "commit", "-q", "-m", message], project, env)


# The session's full tiny repository (``conftest.py``): :data:`TINY` plus these overrides. Small enough for
# seconds per stage, but every stage family runs: the weighted losses include topk, so `weights.top_k` has
# dependents to rerun (and others that must not rerun); every judge family and DISTS are exercised.
REPO_OVERRIDES: dict[str, dict[str, Any]] = {
    "stimuli": {"size": 64, "frequency_step_cpd": 3.0},
    "features": {"layers": ["relu1_1", "relu2_1", "relu3_2"], "batch_size": 4},
    "train": {
        "baseline_losses": ["vgg"],
        "weighted_losses": ["vfss", "topk", "lpips_weighted"],
        "geometry_losses": ["geometry_aware"],
        "seeds": [0],
        "log_every": 1,
    },
    "evaluate": {"judges": ["psnr_y", "lpips_alex", "gmsd", "artefact_db"]},
    "compare": {"resamples": 200},
    "psychophysics": {
        "distances": ["pixel_mse", "vgg", "vfss", "topk", "bottomk", "randomk", "dists"],
        "size": 64,
        "frequencies": 4,  # at least 3 must be Nyquist-safe (psychophysics.nyquist_safe_cpp)
        "contrasts": 6,
        "phases": 1,
        "backgrounds": ["grey", "texture"],
        "top_k": 8,
        "subset_ks": [4, 8],
        "null_draws": 20,
        "criterion_contrasts": [0.01, 0.1],
        "reference_csfs": ["mannos_sakrison_code", "barten_2003"],
    },
    "modelfest": {
        "px_per_degree": 30.0,
        "distances": ["pixel_mse", "vgg"],
        "top_k": 8,
        "sweep_px_per_degree": [30.0],
        "deep_sweep_px_per_degree": [60.0],  # with sweep_distances: the geometry-aware observer (train_geometry)
        "sweep_distances": ["vgg"],
        "bootstrap": 20,
    },
    "atlas": {
        "backbones": ["vgg16"],
        "size": 32,
        "frequencies": 4,
        "orientations": 4,
        "phases": 2,
        "layers": ["relu1_2", "relu2_2", "relu3_3"],
        "sensitivity_pixels_per_degree": None,
        "top_k": 8,
        "example_maps": 2,
    },
}
# What the repository needs to run and render: the code, the pipeline, the plot templates, the docs the
# report stage rewrites (and .dvc/config, copied after `dvc init`: it names the offline plots page).
REPO_SOURCES = ("dvc.yaml", "stages", "src", "plots", "docs", "README.md")
# The experiment copy's baseline (:func:`experiment_baseline`): `dvc exp show --only-changed` is checked
# to fit 200 columns for a tiny config of two judges and two weighted losses (more would add columns).
EXPERIMENT_BASELINE: dict[str, dict[str, Any]] = {
    "train": {"weighted_losses": ["vfss", "topk"], "geometry_losses": []},
    "evaluate": {"judges": ["psnr_y", "gmsd"]},
    "compare": {"primary_judge": "gmsd"},  # the primary judge must be one of the judges scored
}
# (experiment name, -S overrides) that the session's experiment copy runs, in this order.
EXPERIMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("topk4", ("weights.top_k=4",)),
    ("perceptual", ("train.perceptual_weight=0.2",)),
)
_RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)


def stages_run(output: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran."""
    return set(_RAN.findall(output))


@dataclass
class Repo:
    """A git + DVC tiny repository beside its MLflow store (``mlflow.db``) and params traces folder."""

    path: Path
    env: dict[str, str]
    traces: Path
    reran: dict[str, set[str]] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.path.parent / "mlflow.db"

    @classmethod
    def at(cls, path: Path) -> Repo:
        """The repository at ``path`` (its store and traces beside it) with its stage environment."""
        env = {**stage_env(path, path.parent / "mlflow.db"), **GIT_IDENTITY, "PYTHONPATH": "src"}
        return cls(path, env, path.parent / "traces")

    def run(self, *args: str, timeout: float = 3600, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the repository (``env`` added to its environment)."""
        return subprocess.run(
            list(args), cwd=self.path, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout
        )

    def check(self, *args: str, timeout: float = 3600, **env: str) -> str:
        """:meth:`run`, failing with the command's output unless it succeeds; returns stdout."""
        result = self.run(*args, timeout=timeout, **env)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    def copy(self, dest: Path) -> Repo:
        """A copy at ``dest/project`` (git, DVC cache and outputs, so it is up to date) with its own store."""
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(self.path), str(dest / "project")], check=True)
        if self.db.exists():
            shutil.copy2(self.db, dest / "mlflow.db")
        return Repo.at(dest / "project")


def experiment_baseline(repo: Repo) -> Repo:
    """Apply :data:`EXPERIMENT_BASELINE` to a copy of the tiny repository, rerun what it changes, commit."""
    params = yaml.safe_load((repo.path / "params.yaml").read_text())
    for section, values in EXPERIMENT_BASELINE.items():
        params[section].update(values)
    write_params(repo.path / "params.yaml", params)
    repo.check("dvc", "repro")
    commit(repo.path, repo.env, "the experiments' baseline")
    return repo


def build_repo(dest: Path) -> Repo:
    """``dest/project``: the tiny repository after one ``dvc repro`` (params keys traced), committed."""
    path = copy_sources(dest / "project", REPO_OVERRIDES, REPO_SOURCES)
    (path / ".gitignore").write_text("mlruns/\n__pycache__/\n")
    repo = Repo.at(path)
    repo.check("git", "init", "-q")
    repo.check("dvc", "init", "-q")
    shutil.copy2(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    # The whole tiny pipeline, once per session: minutes on an idle 2-core machine, far more on a busy one.
    repo.check("dvc", "repro", timeout=3600, PSYCHOVIS_PARAMS_TRACE=str(repo.traces))
    commit(path, repo.env, "baseline")
    return repo


# ------------------------------------------------------------------------------------- the battery's cases

Setup = Callable[[Path, Path], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class Case:
    """One bad input: the stage it is given to, how the clone is spoiled, what the line must say."""

    name: str
    stage: str
    setup: Setup
    expect: tuple[str, ...]  # regexes (case-insensitive) the error line must all match: the problem and the fix
    args: tuple[str, ...] = ()
    # The process boundary is what is tested (exit status, signals, what reaches stderr): always a real
    # subprocess, even in a module whose cases otherwise run in-process.
    subprocess: bool = False


@dataclass
class Outcome:
    returncode: int
    stderr: str
    seconds: float
    before: dict[str, bytes]
    after: dict[str, bytes]
    case_dir: Path


# ---------------------------------------------------------------------------------------------- setups


DELETE = object()  # edit_params(section__key=DELETE) removes the key


def edit_params(**changes: Any) -> Setup:
    """Set ``section.key`` values (``section__key=value``; ``DELETE`` removes the key) in params.yaml."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        params = yaml.safe_load((project / "params.yaml").read_text())
        for dotted, value in changes.items():
            section, _, key = dotted.partition("__")
            if not key:
                params[section] = value
            elif value is DELETE:
                del params[section][key]
            else:
                params[section][key] = value
        write_params(project / "params.yaml", params)
        return [], {}

    return setup


def params_text(text: str | bytes) -> Setup:
    """params.yaml := ``text`` (bytes are written as they are: encodings, binary junk)."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        path = project / "params.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return [], {}

    return setup


def other_params_file(name: str, **changes: Any) -> Setup:
    """Pass ``--params <case_dir>/<name>`` (``missing=True``: a file that is not there)."""

    missing = changes.pop("missing", False)

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        path = case_dir / name
        if not missing:
            params = tiny_params()
            for dotted, value in changes.items():
                section, _, key = dotted.partition("__")
                params[section][key] = value
            write_params(path, params)
        return ["--params", str(path)], {}

    return setup


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def png16(path: Path, height: int, width: int) -> None:
    """A 16-bit-per-sample RGB PNG (PIL cannot write one; it silently truncates them on reading)."""
    samples = (np.random.default_rng(1).random((height, width, 3)) * 65535).astype(">u2")
    raw = b"".join(b"\x00" + samples[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def bad_16bit(path: Path) -> None:
    png16(path, 64, 64)


def bad_gray(path: Path) -> None:
    Image.fromarray(rgb(64, 64)[..., 0]).save(path)


def bad_rgba(path: Path) -> None:
    Image.fromarray(np.dstack([rgb(64, 64), np.full((64, 64), 128, np.uint8)])).save(path)


def bad_tiny(path: Path) -> None:
    Image.fromarray(rgb(8, 8)).save(path)


def bad_corrupt(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(200))


def bad_text(path: Path) -> None:
    path.write_text("these are not the pixels you are looking for\n")


def image_folder(bad_name: str | None, make_bad: Callable[[Path], None] | None, good: int = 2) -> Setup:
    """``train.image_dir`` -> a folder of ``good`` valid RGB PNGs plus one bad file (or none)."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        folder = case_dir / "images"
        folder.mkdir()
        for index in range(good):
            Image.fromarray(rgb(64, 64, seed=10 + index)).save(folder / f"good_{index}.png")
        if make_bad is not None and bad_name is not None:
            make_bad(folder / bad_name)
        return edit_params(train__image_dir=str(folder), train__test_images=1)(case_dir, project)

    return setup


def missing_image_folder(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    return edit_params(train__image_dir=str(case_dir / "no_such_folder"), train__test_images=1)(case_dir, project)


def _spoiled(built: Built, case: Case, case_dir: Path) -> tuple[Path, list[str], dict[str, str], dict[str, bytes]]:
    """The case's clone after its setup: (project, stage command, environment, snapshot of its files)."""
    project = built.clone(case_dir)
    args, extra_env = case.setup(case_dir, project)
    env = stage_env(project, case_dir / "mlflow.db", **extra_env)
    return project, stage_command(case.stage, *args, *case.args), env, snapshot(project)


def run_case(built: Built, case: Case, case_dir: Path) -> Outcome:
    """Spoil a clone of ``built`` as ``case`` says and run its stage as a real subprocess."""
    project, command_line, env, before = _spoiled(built, case, case_dir)
    started = time.perf_counter()
    try:
        result = subprocess.run(command_line, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        result = subprocess.CompletedProcess(exc.cmd, -9, "", f"timed out after {exc.timeout} s")
    return Outcome(result.returncode, result.stderr, time.perf_counter() - started, before, snapshot(project), case_dir)


def _in_process(project: Path, env: Mapping[str, str], argv: Sequence[str]) -> tuple[int, str]:
    """Run ``python <argv>`` inside this process: cwd, environment and ``sys.argv`` as a subprocess would have them.

    The stage script runs as ``__main__`` (so through :func:`psychovis.pipeline.runner.run_stage`, as on the
    command line), with stdout and stderr captured; returns (exit status, stderr). An exception that escapes
    the runner (``--debug``) is exit 1 with its traceback, as the interpreter would print it.
    """
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    stderr = io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(project)
    sys.argv = list(argv)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                runpy.run_path(str(project / argv[0]), run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return code, stderr.getvalue()


def run_case_in_process(built: Built, case: Case, case_dir: Path) -> Outcome:
    """:func:`run_case` without the subprocess: the stage's script runs in this process (no imports to pay)."""
    project, command_line, env, before = _spoiled(built, case, case_dir)
    started = time.perf_counter()
    code, stderr = _in_process(project, env, command_line[1:])
    return Outcome(code, stderr, time.perf_counter() - started, before, snapshot(project), case_dir)


WORKERS = 3  # each case is its own process, mostly importing: 3 at a time keep 2 cores busy


_PROGRESS_BAR = re.compile(r"\d+%\|")


def stderr_lines(stderr: str) -> list[str]:
    """The non-empty lines of a stage's stderr, less tqdm progress-bar frames.

    The stages' progress bars go to stderr; until tqdm honours ``TQDM_DISABLE`` (another change of
    issue 14) they are not what a failing stage says, so they are not counted as its lines.
    """
    return [line for line in stderr.splitlines() if line.strip() and not _PROGRESS_BAR.search(line)]


def stage_name(stage: str) -> str:
    return stage.partition("@")[0]


def changes(outcome: Outcome) -> tuple[list[str], list[str], list[str]]:
    """Files that appeared, were lost, or changed bytes in the case's clone."""
    appeared = sorted(outcome.after.keys() - outcome.before.keys())
    lost = sorted(outcome.before.keys() - outcome.after.keys())
    changed = sorted(
        path for path in outcome.before.keys() & outcome.after.keys() if outcome.before[path] != outcome.after[path]
    )
    return appeared, lost, changed


def classify(case: Case, outcome: Outcome) -> str:
    """``ok`` or the first of ``traceback``, ``silent``, ``crash``, ``half-updated``, ``unclear`` that applies.

    ``not-applicable``: the case's setup failed (measuring old code that lacks, e.g., ``images.max_pixels``).
    """
    lines = stderr_lines(outcome.stderr)
    if outcome.returncode == -1:
        return "not-applicable"
    if "Traceback" in outcome.stderr:
        return "traceback"
    if outcome.returncode == 0:
        return "silent"
    if outcome.returncode != 2 or len(lines) != 1:
        return "crash"
    if changes(outcome) != ([], [], []):
        return "half-updated"
    line = lines[0]
    if not line.startswith(f"psychovis {stage_name(case.stage)}: error: ") or not all(
        re.search(pattern, line, re.IGNORECASE) for pattern in case.expect
    ):
        return "unclear"
    return "ok"


def _report(module: str, results: Mapping[str, tuple[Case, Outcome]]) -> None:
    target = os.environ.get("BATTERY_REPORT")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as handle:
        for name, (case, outcome) in results.items():
            record = {
                "module": module,
                "case": name,
                "class": classify(case, outcome),
                "exit": outcome.returncode,
                "line": (stderr_lines(outcome.stderr) or [""])[-1][:300],
            }
            handle.write(json.dumps(record) + "\n")


def run_selected(
    request: pytest.FixtureRequest,
    factory: pytest.TempPathFactory,
    cases: Mapping[str, Case],
    built: Built,
    run_case: Callable[[Built, Case, Path], Outcome] = run_case,
    in_process: bool = False,
) -> dict[str, Outcome]:
    """Run the cases of this module that the session selected (``-k`` respected).

    ``in_process``: the module's cases are validation, run one after another in this process
    (:func:`run_case_in_process`), except those marked ``subprocess``; real subprocesses run a few at a time.
    """
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and "name" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    root = factory.mktemp(request.module.__name__.rpartition(".")[2])

    def guarded(runner: Callable[[Built, Case, Path], Outcome], case: Case, case_dir: Path) -> Outcome:
        try:
            return runner(built, case, case_dir)
        except Exception as exc:  # a setup that cannot apply (e.g. a params key the code does not know)
            return Outcome(-1, f"case setup failed: {type(exc).__name__}: {exc}", 0.0, {}, {}, case_dir)

    names = [name for name in dict.fromkeys(selected) if name in cases]
    here = [name for name in names if in_process and not cases[name].subprocess]
    # In-process runs change the working directory and the environment: one at a time, before the pool starts.
    results = {name: guarded(run_case_in_process, cases[name], root / name) for name in here}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {
            name: pool.submit(guarded, run_case, cases[name], root / name) for name in names if name not in results
        }
        results.update((name, future.result()) for name, future in futures.items())
    results = {name: results[name] for name in names}
    for name, outcome in results.items():  # shown with `pytest -s`
        print(f"{name:34s} exit {outcome.returncode} {outcome.seconds:5.1f} s | {outcome.stderr.strip()[-300:]}")
    _report(request.module.__name__, {name: (cases[name], outcome) for name, outcome in results.items()})
    return results


def assert_one_line_and_unchanged(case: Case, outcome: Outcome) -> str:
    """Exit 2, one ``psychovis <stage>: error:`` line matching ``case.expect``, every file unchanged."""
    assert outcome.returncode == 2, f"exit {outcome.returncode}, stderr:\n{outcome.stderr[-3000:]}"
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    lines = stderr_lines(outcome.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{outcome.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith(f"psychovis {stage_name(case.stage)}: error: "), line
    for pattern in case.expect:
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} not found in {line!r}"
    assert changes(outcome) == ([], [], []), f"outputs appeared, were lost or changed: {changes(outcome)}"
    return line


def by_name(cases: Sequence[Case], subprocess: Sequence[str] = ()) -> dict[str, Case]:
    """Cases keyed by name (names must be unique); those named in ``subprocess`` always run as real processes.

    A module whose cases run in-process keeps at least one real subprocess: the exit status and the one
    stderr line as a shell sees them, for its stage family.
    """
    named = {case.name: case for case in cases}
    assert len(named) == len(cases), "duplicate case names"
    assert set(subprocess) <= set(named), f"unknown cases {sorted(set(subprocess) - set(named))}"
    return {name: replace(case, subprocess=case.subprocess or name in subprocess) for name, case in named.items()}


TINY_ATLAS = {
    "backbones": ["vgg16"],
    "size": 32,
    "frequencies": 3,
    "orientations": 2,
    "phases": 1,
    "layers": ["relu1_1"],
    "batch_size": 8,
    "sensitivity_pixels_per_degree": None,
    "top_k": 4,
    "example_maps": 2,
}
PREPARED = ("tuning", "pretrain", "train@pixel-s0", "human_judgement", "atlas_features@vgg16")


def prepared_project(factory: pytest.TempPathFactory) -> Built:
    """The tiny upstream project plus the outputs of the other cheap stages (:data:`PREPARED`), once per session."""

    def build(folder: Path) -> Built:
        project = built_project(factory).clone(folder)
        edit_params(**{f"atlas__{key}": value for key, value in TINY_ATLAS.items()})(folder, project)
        return run_stages(project, PREPARED)

    return shared_build(factory, "prepared", build)
