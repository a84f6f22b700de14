"""A stage logs to a real MLflow tracking server over HTTP, and the run reads back via the REST API.

Starts ``mlflow server`` from this virtualenv on a free local port with a SQLite store in a
temporary folder, runs the `stimuli` stage of a tiny project copy against it
(``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``), reads the run back with plain HTTP requests,
and stops the server's whole process group in a ``finally`` block.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from stagekit import check, copy_sources, request_json, run, stage_env


@pytest.mark.e2e
def test_stage_logs_to_a_tracking_server_and_the_run_reads_back(server: str, tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project")
    env = stage_env(project, MLFLOW_TRACKING_URI=server)
    check(run(project, env, "stimuli", timeout=300))
    rows = len(pd.read_parquet(project / "data/stimuli/stimuli.parquet"))

    query = urllib.parse.urlencode({"experiment_name": "psychovis"})
    experiment = request_json(f"{server}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]
    found = request_json(f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
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
