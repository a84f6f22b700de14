"""Stages killed with SIGKILL at random moments never leave a partial output, and reruns converge.

`features` and `train` run as real subprocesses in tiny project clones and are killed (their
whole process group, SIGKILL: no handler runs) at seeded random points in time. After each kill
every output path holds the previous complete file (same bytes) or a complete new one, or is
absent when there was none before; the only other files allowed are the training stage's
resumable ``.partial.pt`` checkpoint and the hidden temporaries of the writer that was killed
(``.<output>.<pid>.*.tmp``, never an output's name, removed by the next run). A rerun then gives
exactly what an uninterrupted run gives: byte-identical Parquet, equal model weights (also
when training resumes from its partial checkpoint with ``PSYCHOVIS_RESUME=1``).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from stagekit import Built, built_project, check, copy_sources, kill_group, run, stage_env, start

from psychovis.io import write_parquet

SEED = 20181201
KILLS = 3
FEATURES = "data/features/features.parquet"
# The `pretrain` stage: the L1 training run every fine-tune shares its code with (pipeline.training).
TRAIN_OUTPUTS = (
    "data/models/pretrain-s0.pt",
    "data/curves/pretrain-s0.csv",
    "data/curves/pretrain-s0.png",
    "metrics/pretrain-s0.json",
)
PARTIAL = "data/models/.pretrain-s0.partial.pt"
TRAIN_OVERRIDES = {"log_every": 2}
PRETRAIN_OVERRIDES = {"iterations": 30}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return built_project(tmp_path_factory)


def _files(project: Path) -> dict[str, bytes]:
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for folder in ("data", "metrics")
        if (project / folder).exists()
        for path in sorted((project / folder).rglob("*"))
        if path.is_file()
    }


def _kill_at(project: Path, env: dict[str, str], stage: str, delay: float) -> tuple[int, bool]:
    """Start ``stage``, SIGKILL its process group after ``delay`` s; returns (pid, whether it was killed)."""
    process = start(project, env, stage)
    try:
        process.wait(timeout=delay)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    kill_group(process)
    return process.pid, not finished


def _kill_when_temporary_appears(project: Path, env: dict[str, str], stage: str, folder: Path) -> tuple[int, bool]:
    """Start ``stage`` and SIGKILL it as soon as a ``*.tmp`` file appears in ``folder`` (or when it ends)."""
    process = start(project, env, stage)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        with os.scandir(folder) as entries:
            if any(entry.name.endswith(".tmp") for entry in entries):
                break
        time.sleep(0.001)
    killed = process.poll() is None
    kill_group(process)
    return process.pid, killed


def _leftovers(before: dict[str, bytes], after: dict[str, bytes], outputs: set[str], pid: int) -> list[str]:
    """New files that are neither outputs nor the killed writer's hidden temporaries (or the partial checkpoint)."""
    strays = []
    for path in sorted(after.keys() - before.keys() - outputs - {PARTIAL}):
        name = path.rsplit("/", 1)[-1]
        owner = re.fullmatch(r"\.(.+)\.(\d+)\.[^.]+\.tmp", name)
        if owner is None or int(owner.group(2)) != pid:
            strays.append(path)
        else:  # a temporary of the killed writer: never an output's own name
            assert path.rsplit("/", 1)[0] + "/" + owner.group(1) in outputs | {PARTIAL}, path
    return strays


def _temporaries(project: Path) -> list[str]:
    return sorted(path.as_posix() for folder in ("data", "metrics") for path in (project / folder).rglob("*.tmp"))


@pytest.mark.e2e
def test_features_killed_at_random_points_leaves_previous_or_complete_output(built: Built, tmp_path: Path) -> None:
    project = built.clone(tmp_path)
    env = stage_env(project)
    complete = (built.project / FEATURES).read_bytes()  # an uninterrupted run with the same params
    previous_frame = pd.DataFrame({"layer": ["relu1_1"], "channel": [0], "stimulus_id": [0], "response": [0.5]})
    rng = random.Random(SEED)
    outcomes = []
    for attempt in range(KILLS):
        target = project / FEATURES
        if attempt == 0:
            target.unlink()
            previous = None
        else:  # a different, complete previous file: the kill must leave exactly it, or the new complete one
            write_parquet(previous_frame.assign(response=[float(attempt)]), target)
            previous = target.read_bytes()
        before = _files(project)
        delay = rng.uniform(0.3, 1.0) * built.seconds["features"]
        pid, killed = _kill_at(project, env, "features", delay)
        after = _files(project)
        state = after.get(FEATURES)
        assert state in (previous, complete), f"attempt {attempt}: {FEATURES} is partial ({len(state or b'')} bytes)"
        if state is None:
            assert previous is None
        assert {path: data for path, data in after.items() if path != FEATURES and path in before} == {
            path: data for path, data in before.items() if path != FEATURES
        }, "another output changed"
        assert _leftovers(before, after, {FEATURES}, pid) == []
        outcomes.append((round(delay, 2), killed, "previous" if state == previous else "complete"))
    # One more, aimed at the write itself: kill the moment the writer's temporary file shows up.
    write_parquet(previous_frame, project / FEATURES)
    previous = (project / FEATURES).read_bytes()
    before = _files(project)
    pid, killed = _kill_when_temporary_appears(project, env, "features", project / "data/features")
    after = _files(project)
    assert after.get(FEATURES) in (previous, complete), "killed while writing: the output is partial"
    assert _leftovers(before, after, {FEATURES}, pid) == []
    outcomes.append(("at the write", killed, "previous" if after[FEATURES] == previous else "complete"))
    print("features kills (delay s, killed, state):", outcomes)
    check(run(project, env, "features"))
    assert (project / FEATURES).read_bytes() == complete
    assert _temporaries(project) == [], "the rerun left (or did not clean) temporaries"


def _model_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


def _complete_train_output(path: Path, reference: dict[str, torch.Tensor]) -> bool:
    """Whether ``path`` is a whole output of a finished 30-step run (a killed run may have renamed one in)."""
    if path.suffix == ".pt":
        _assert_same_weights(_model_state(path), reference)
    elif path.suffix == ".csv":
        curve = pd.read_csv(path)
        assert curve["step"].tolist() == list(range(2, 31, 2))
    elif path.suffix == ".json":
        assert "loss" in json.loads(path.read_text())
    elif path.suffix == ".png":
        Image.open(io.BytesIO(path.read_bytes())).verify()
    return True


@pytest.mark.e2e
def test_train_killed_at_random_points_then_resumed_ends_identical(built: Built, tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project", {"train": TRAIN_OVERRIDES, "pretrain": PRETRAIN_OVERRIDES})
    shutil.copy2(built.tracking_db, tmp_path / "mlflow.db")
    env = stage_env(project)
    started = time.perf_counter()
    check(run(project, env, "pretrain"))
    duration = time.perf_counter() - started
    reference = _model_state(project / TRAIN_OUTPUTS[0])
    assert not (project / PARTIAL).exists(), "a finished run must remove its partial checkpoint"
    outputs = set(TRAIN_OUTPUTS)
    rng = random.Random(SEED + 1)
    outcomes = []
    for attempt in range(KILLS):
        before = _files(project)
        delay = rng.uniform(0.3, 1.0) * duration
        pid, killed = _kill_at(project, env, "pretrain", delay)
        after = _files(project)
        for output in TRAIN_OUTPUTS:
            assert output in after, f"attempt {attempt}: {output} was lost"
            if after[output] != before[output]:
                assert _complete_train_output(project / output, reference), output
        if PARTIAL in after:  # written atomically as well: always a whole, loadable checkpoint
            assert torch.load(project / PARTIAL, map_location="cpu", weights_only=True)["step"] % 2 == 0
        assert _leftovers(before, after, outputs, pid) == []
        outcomes.append((round(delay, 2), killed, PARTIAL in after))
    print("train kills (delay s, killed, partial checkpoint left):", outcomes)

    # Make sure there is a checkpoint to resume from: kill once more as soon as one appears.
    for _ in range(3):
        if (project / PARTIAL).exists():
            break
        process = start(project, env, "pretrain")
        deadline = time.perf_counter() + 3 * duration
        while not (project / PARTIAL).exists() and process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        kill_group(process)
    partial = torch.load(project / PARTIAL, map_location="cpu", weights_only=True)
    assert 2 <= partial["step"] < PRETRAIN_OVERRIDES["iterations"]

    resumed = check(run(project, {**env, "PSYCHOVIS_RESUME": "1"}, "pretrain"))
    assert f"resumed from step {partial['step']}" in resumed.stderr, "it did not resume"
    _assert_same_weights(_model_state(project / TRAIN_OUTPUTS[0]), reference)
    curve = pd.read_csv(project / "data/curves/pretrain-s0.csv")
    assert curve["step"].tolist() == list(range(2, 31, 2))
    assert "seconds" not in curve  # wall-clock time goes to MLflow only: the tracked curve is reproducible
    assert not (project / PARTIAL).exists()
    assert _temporaries(project) == []


@pytest.mark.e2e
def test_stimuli_and_features_are_byte_identical_across_clean_copies(built: Built, tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project")
    shutil.copy2(built.project / "params.yaml", project / "params.yaml")
    shutil.copy2(built.tracking_db, tmp_path / "mlflow.db")
    env = stage_env(project)
    for stage in ("stimuli", "features"):
        check(run(project, env, stage))
    for output in ("data/stimuli/stimuli.parquet", FEATURES):
        assert (project / output).read_bytes() == (built.project / output).read_bytes(), output
