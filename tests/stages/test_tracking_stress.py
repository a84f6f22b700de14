"""Four stage processes logging to one MLflow store at once, three times over: SQLite and a real server.

What ``dvc queue start -j N`` does: every process creates (or finds) the store, the ``psychovis``
experiment and its kind tag, the execution's parent run, then logs params, metrics, an artifact and
the same input table as a dataset. Before the store lock and the retries, two processes failed on
``UNIQUE constraint failed`` (datasets, experiment tags) or, on a new SQLite store, on ``duplicate
column name`` during MLflow's schema migration.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import pytest
from stagekit import request_json, stage_env

PROCESSES = 4
REPEATS = 3
STAGE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from psychovis.pipeline import tracking

    root = Path.cwd()
    index = sys.argv[1]
    with tracking.stage_run("stress", {"stress": {"index": index}}, root=root, run_name=f"stress-{index}") as run:
        run.log_table_input(root / "shared.csv", name="shared.csv")  # the same dataset in every process
        run.log_metrics({"value": float(index)}, step=1)
        note = root / f"note-{index}.txt"
        note.write_text(index)
        run.log_artifact(note, "notes")
    """
)


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stage.py").write_text(STAGE)
    (folder / "shared.csv").write_text("image,value\na,1\nb,2\n")
    return folder


def _run_at_once(project: Path, uri: str, repeat: int) -> None:
    env = stage_env(project, MLFLOW_TRACKING_URI=uri)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    processes = [
        subprocess.Popen(
            [sys.executable, "stage.py", f"{repeat}{index}"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        if process.returncode != 0:
            failures.append(stderr[-1500:])
    assert not failures, "\n---\n".join(failures)


@pytest.mark.e2e
def test_four_stages_at_once_on_new_sqlite_stores(tmp_path: Path) -> None:
    for repeat in range(REPEATS):
        project = _project(tmp_path / f"repeat{repeat}")
        store = project / "mlflow.db"  # a new store each time: its creation is part of the race
        _run_at_once(project, f"sqlite:///{store}", repeat)
        with sqlite3.connect(store) as db:
            stages = db.execute("SELECT count(*) FROM runs WHERE name LIKE 'stress-%' AND status = 'FINISHED'")
            parents = db.execute("SELECT count(*) FROM runs WHERE name = 'workspace' AND lifecycle_stage = 'active'")
            datasets = db.execute("SELECT count(*) FROM datasets WHERE name = 'shared.csv'")
            assert stages.fetchone()[0] == PROCESSES
            assert parents.fetchone()[0] == 1, "the four stages of one execution share one parent run"
            assert datasets.fetchone()[0] == 1, "the shared table is one dataset, logged as input by each run"
        assert len(list((project / "mlruns").rglob("note-*.txt"))) == PROCESSES


@pytest.mark.e2e
def test_four_stages_at_once_on_one_server(server: str, tmp_path: Path) -> None:
    for repeat in range(REPEATS):
        _run_at_once(_project(tmp_path / f"repeat{repeat}"), server, repeat)
    query = urllib.parse.urlencode({"experiment_name": "psychovis"})
    experiment = request_json(f"{server}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]
    found = request_json(
        f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100}
    )["runs"]
    stages = [run for run in found if run["info"]["run_name"].startswith("stress-")]
    assert len(stages) == PROCESSES * REPEATS
    assert all(run["info"]["status"] == "FINISHED" for run in stages)
    assert all(run["inputs"]["dataset_inputs"] for run in stages), "every run logged the shared table"
