"""A stage logs to a real MLflow tracking server over HTTP, and the run reads back via the REST API.

Starts ``mlflow server`` from this virtualenv on a free local port with a SQLite store in a
temporary folder, runs the `stimuli` stage of a tiny project copy against it
(``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``), reads the run back with plain HTTP requests,
and stops the server's whole process group in a ``finally`` block.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from stagekit import VENV_BIN, check, copy_sources, free_port, run, server_healthy, stage_env

STARTUP_TIMEOUT_S = 90  # the server migrates a fresh SQLite store first; slow on a busy 2-core machine


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers: SIGTERM to its process group, SIGKILL after 15 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # workers may outlive the parent
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    mlflow = VENV_BIN / "mlflow"
    if not mlflow.exists():
        pytest.skip(f"mlflow is not installed in this virtualenv ({mlflow} missing)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(mlflow),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server_healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (tmp_path / "server.log").read_text(errors="replace")[-2000:]
                reason = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
                pytest.skip(f"mlflow server {reason} within {STARTUP_TIMEOUT_S} s on {url}; its log ends:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)
        log.close()


@pytest.mark.e2e
def test_stage_logs_to_a_tracking_server_and_the_run_reads_back(server: str, tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project")
    env = stage_env(project, MLFLOW_TRACKING_URI=server)
    check(run(project, env, "stimuli", timeout=300))
    rows = len(pd.read_parquet(project / "data/stimuli/stimuli.parquet"))

    query = urllib.parse.urlencode({"experiment_name": "psychovis"})
    experiment = _request(f"{server}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]
    found = _request(f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    kinds = [{tag["key"]: tag["value"] for tag in run["data"]["tags"]}["psychovis.run_kind"] for run in found["runs"]]
    assert sorted(kinds) == ["pipeline", "stage"], found  # the stage's run, nested under the execution's
    runs = [run for run, kind in zip(found["runs"], kinds, strict=True) if kind == "stage"]
    run_data = runs[0]
    assert run_data["info"]["status"] == "FINISHED"
    tags = {tag["key"]: tag["value"] for tag in run_data["data"].get("tags", [])}
    assert tags["stage"] == "stimuli"
    assert tags["git_commit"]  # "unknown" here: the temporary copy is not a git checkout
    assert len(tags["params_hash"]) == 16 and int(tags["params_hash"], 16) >= 0
    metrics = {metric["key"]: metric["value"] for metric in run_data["data"].get("metrics", [])}
    assert metrics["stimuli"] == rows
    assert metrics["frequencies"] > 1
    params = {param["key"]: param["value"] for param in run_data["data"].get("params", [])}
    assert params["stimuli.size"] == "32"
