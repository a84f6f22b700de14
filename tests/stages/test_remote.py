"""Sharing results: a real DVC remote round trip, and two stages logging to one MLflow server at once.

Remote: a tiny pipeline (the real `pretrain` stage) is reproduced and pushed to a DVC remote in a local
folder (the same commands as an S3 or GCS bucket); a teammate's fresh ``git clone`` configures the
remote, pulls, and finds ``dvc status`` clean and ``dvc repro`` with nothing to run: nothing recomputed.

Server: ``mlflow server`` (the ``server`` fixture of conftest.py) receives two stages that run at the same
time from two project copies; both runs finish, each with its own params, metrics and artifacts.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from stagekit import command, commit, copy_sources, request_json, stage_command, stage_env, tiny_repo

OUTPUTS = (
    "data/models/pretrain-s0.pt",
    "data/curves/pretrain-s0.png",
    "data/curves/pretrain-s0.csv",
    "metrics/pretrain-s0.json",
)


@pytest.mark.e2e
def test_push_clone_pull_gives_a_clean_status_without_recomputing(tmp_path: Path) -> None:
    project, env = tiny_repo(tmp_path / "project", ["pretrain"])
    command(["dvc", "repro"], project, env)
    commit(project, env, "tiny results")
    remote = tmp_path / "remote"  # in a team: s3://bucket/psychovis or gs://bucket/psychovis
    command(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], project, env)
    pushed = command(["dvc", "push"], project, env)
    assert remote.is_dir() and any(path.is_file() for path in remote.rglob("*")), pushed.stdout

    clone = tmp_path / "teammate"
    command(["git", "clone", "-q", str(project), str(clone)], tmp_path, env)
    assert not (clone / "data/models/pretrain-s0.pt").exists()
    command(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], clone, env)
    command(["dvc", "pull"], clone, env)
    for name in OUTPUTS:
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name
    status = command(["dvc", "status", "--json"], clone, env)
    assert json.loads(status.stdout) == {}, status.stdout
    repro = command(["dvc", "repro"], clone, env)
    assert "Running stage" not in repro.stdout, repro.stdout
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # the one store of both checkouts
        trained = db.execute("select count(*) from runs where name = 'pretrain@s0'").fetchone()[0]
    assert trained == 1, "the clone trained again"


@pytest.mark.e2e
def test_two_stages_log_to_one_server_at_once(server: str, tmp_path: Path) -> None:
    processes = []
    for index in range(2):
        project = copy_sources(tmp_path / f"member{index}", {"train": {"seeds": [index]}})
        env = stage_env(project, MLFLOW_TRACKING_URI=server)
        log = (tmp_path / f"member{index}.log").open("w")
        processes.append((subprocess.Popen(stage_command("pretrain"), cwd=project, env=env, stderr=log), log))
    for process, log in processes:
        assert process.wait(timeout=600) == 0, (tmp_path / Path(log.name).name).read_text()[-3000:]
        log.close()

    query = urllib.parse.urlencode({"experiment_name": "psychovis"})
    experiment = request_json(f"{server}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]
    found = request_json(f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    runs = [
        run for run in found["runs"] if run["info"]["run_name"].startswith("pretrain@s")
    ]  # the stage runs, not parents
    assert len(runs) == 2 and len({run["info"]["run_id"] for run in runs}) == 2
    seeds = set()
    for run in runs:
        assert run["info"]["status"] == "FINISHED"
        metrics = {metric["key"] for metric in run["data"]["metrics"]}
        tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
        seeds.add(tags["seed"])
        assert {"train_loss", "train_pixel", "parameters"} <= metrics
        assert tags["stage"] == "pretrain" and tags["dvc.experiment"] == "workspace"
        history = request_json(
            f"{server}/api/2.0/mlflow/metrics/get-history?"
            + urllib.parse.urlencode({"run_id": run["info"]["run_id"], "metric_key": "train_loss"})
        )["metrics"]
        assert [point["step"] for point in history] == [2]  # TINY: 2 steps, logged every 2
    assert seeds == {"0", "1"}
