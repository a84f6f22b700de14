"""Signals end a stage as Ctrl-C does, across a real process boundary (issue 23, class "signals").

A tiny stage (two outputs replaced, then a loop that keeps writing a heartbeat) is run as its own
process: SIGTERM and SIGHUP put both outputs back with no stray temporary, a signal during the
imports is one line, and a stage whose launching ``dvc repro`` is killed stops writing at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

STAGE = """
from psychovis.pipeline import stage_start  # noqa: F401

# isort: split
import os
import sys
import time
from pathlib import Path

from psychovis import io
from psychovis.pipeline.runner import run_stage


def main(ctx):
    io.write_text("new a", "out/a.txt")
    io.write_text("new b", "out/b.txt")
    Path("ready").write_text(str(os.getpid()))
    while True:
        with open("heartbeat", "a") as beat:
            beat.write("x")
        time.sleep(0.02)


run_stage("demo", main, sections=[])
"""

SLOW_IMPORTS = """
from psychovis.pipeline import stage_start  # noqa: F401

# isort: split
import time
from pathlib import Path

Path("ready").write_text("importing")
time.sleep(30)  # a stage's heavy imports (torch, pandas, MLflow)
"""


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_STAGE", "PSYCHOVIS_DEBUG")}
    env.update(
        PYTHONPATH=str(SRC),
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        **extra,
    )
    return env


def _workspace(tmp_path: Path, script: str) -> Path:
    (tmp_path / "params.yaml").write_text("images:\n  max_pixels: 1000000\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old a")
    (tmp_path / "out" / "b.txt").write_text("old b")
    path = tmp_path / "stage.py"
    path.write_text(script)
    return path


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def _assert_rolled_back(tmp_path: Path) -> None:
    assert (tmp_path / "out" / "a.txt").read_text() == "old a"
    assert (tmp_path / "out" / "b.txt").read_text() == "old b"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "b.txt"]  # no stray .tmp


def _signalled(tmp_path: Path, script: str, signum: int) -> tuple[int, str, float]:
    """Run ``script`` in a workspace, send ``signum`` once it is ready: (exit code, stderr, seconds to exit)."""
    path = _workspace(tmp_path, script)
    process = subprocess.Popen(
        [sys.executable, str(path)], cwd=tmp_path, env=_environment(tmp_path), stderr=subprocess.PIPE, text=True
    )
    try:
        if _wait_for(tmp_path / "ready").isdigit():
            assert (tmp_path / "out" / "a.txt").read_text() == "new a"
        started = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, stderr, time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_rolls_the_stage_back_like_ctrl_c(tmp_path, signum):
    returncode, stderr, _ = _signalled(tmp_path, STAGE, signum)
    assert returncode == 128 + signum
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("psychovis demo: interrupted")
    assert "put back to their previous versions" in lines[0]
    if signum != signal.SIGINT:
        assert signal.Signals(signum).name in lines[0]
    _assert_rolled_back(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_imports_is_one_line(tmp_path, signum):
    returncode, stderr, seconds = _signalled(tmp_path, SLOW_IMPORTS, signum)
    assert seconds < 2
    assert returncode == 128 + signum
    assert stderr.strip().splitlines() == [
        f"psychovis stage: interrupted ({signal.Signals(signum).name}) before it started; nothing was written"
    ]


def test_a_stage_dies_with_the_dvc_repro_that_launched_it(tmp_path):
    """``dvc repro`` runs ``$SHELL -c cmd``; killing it must not leave the stage writing after it."""
    script = _workspace(tmp_path, STAGE)
    launcher = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen(['/bin/sh', '-c', {f'{sys.executable} {script} 2>stage.err'!r}])\n"
        "time.sleep(120)\n"
    )
    dvc = subprocess.Popen([sys.executable, "-c", launcher], cwd=tmp_path, env=_environment(tmp_path, DVC_STAGE="demo"))
    try:
        stage_pid = int(_wait_for(tmp_path / "ready"))
        dvc.send_signal(signal.SIGTERM)  # what CI cancellation or `timeout` does to `dvc repro`
        dvc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{stage_pid}").exists():
            if Path(f"/proc/{stage_pid}/stat").read_text().split(")")[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        else:
            assert not Path(f"/proc/{stage_pid}").exists(), "the stage kept running after its dvc repro was killed"
    finally:
        dvc.kill()
    beats = (tmp_path / "heartbeat").read_text()
    time.sleep(0.3)
    assert (tmp_path / "heartbeat").read_text() == beats  # nothing written after
    _assert_rolled_back(tmp_path)
    assert "interrupted (SIGTERM)" in (tmp_path / "stage.err").read_text()
