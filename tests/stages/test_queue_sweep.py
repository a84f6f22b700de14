"""A sweep on DVC's experiment queue: 4 experiments queued with ``-S``, run 2 at a time, compared.

The README's recipe on a tiny pipeline (the real `pretrain` stage): ``dvc exp run --queue -S ...`` for two
points that differ in ``pretrain.iterations`` and ``pretrain.learning_rate``, ``dvc queue start -j 2`` (both run at
once), then ``dvc exp show --json`` lists every experiment with its params and metrics, and each
experiment's MLflow run carries the experiment's name in the ``dvc.experiment`` tag (DVC sets
``DVC_EXP_NAME`` while it runs one).

Two experiments that commit one identical new file at the same moment can fail inside DVC (its reflink
attempt truncates the other's cache object; README, "Sweeps"). The training curve's title names the run's
settings, so these two write no identical file; on a failure the queue's log is in the assertion.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from stagekit import command, tiny_repo

GRID = ((2, 1e-3), (3, 5e-4))  # (pretrain.iterations, pretrain.learning_rate)
QUEUE_TIMEOUT_S = 600


def _experiments(shown: Any) -> Iterator[dict[str, Any]]:
    """Every experiment record of ``dvc exp show --json`` (a name and ``data`` with params and metrics)."""
    if isinstance(shown, dict):
        if shown.get("name") and isinstance(shown.get("data"), dict) and "params" in shown["data"]:
            yield shown
        for value in shown.values():
            yield from _experiments(value)
    elif isinstance(shown, list):
        for value in shown:
            yield from _experiments(value)


def _start_queue(project: Path, env: dict[str, str], log: Path) -> None:
    """``dvc queue start -j 2``, its output in ``log``.

    Not through a captured pipe: the queue's daemon and workers inherit the caller's stdout, so a pipe
    stays open while any of them lives, and one worker has been seen to outlive its finished queue.
    """
    with log.open("w") as out:
        started = subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    assert started.returncode == 0, log.read_text()[-3000:]


def _end_workers(project: Path) -> None:
    """SIGTERM the queue workers this test started that still run (by the PIDs DVC records for them).

    A PID is signalled only while DVC records no exit for it and it still runs a queue worker, so a
    reused PID is left alone.
    """
    for path in (project / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json"):
        with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
            record = json.loads(path.read_text())
            pid = int(record["pid"])
            if record.get("returncode") is None and b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)


def _wait_for_queue(project: Path, env: dict[str, str]) -> str:
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = command(["dvc", "queue", "status"], project, env).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"the queue did not finish in {QUEUE_TIMEOUT_S} s:\n{status}"
        time.sleep(2)


@pytest.mark.e2e
def test_a_queued_grid_runs_two_at_a_time_and_shows_with_params_metrics_and_mlflow_runs(tmp_path: Path) -> None:
    project, env = tiny_repo(tmp_path / "project", ["pretrain"])
    # The shared store exists before two experiments start at once: two processes creating a fresh
    # SQLite store together race on its tables (MLflow's migration is not safe to run concurrently).
    mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()
    grid = list(GRID)
    for steps, rate in grid:
        overrides = ["-S", f"pretrain.iterations={steps}", "-S", f"pretrain.learning_rate={rate}"]
        command(["dvc", "exp", "run", "--queue", *overrides], project, env)
    try:
        _start_queue(project, env, tmp_path / "queue.log")
        status = _wait_for_queue(project, env)
    finally:
        with contextlib.suppress(AssertionError):
            command(["dvc", "queue", "stop"], project, env, timeout=120)
        _end_workers(project)
    failed = [line.split()[1] for line in status.splitlines() if "Failed" in line]
    logs = [command(["dvc", "queue", "logs", name], project, env).stdout[-2000:] for name in failed]
    assert not failed, status + "\n".join(logs)

    shown = json.loads(command(["dvc", "exp", "show", "--json"], project, env).stdout)
    runs: dict[str, tuple[int, float, float]] = {}
    for record in _experiments(shown):
        params = record["data"]["params"]["params.yaml"]["data"]
        metrics = record["data"].get("metrics", {}).get("metrics/pretrain-s0.json", {}).get("data", {})
        if "loss" in metrics:
            runs[record["name"]] = (
                params["pretrain"]["iterations"],
                params["pretrain"]["learning_rate"],
                metrics["loss"],
            )
    assert sorted((steps, rate) for steps, rate, _ in runs.values()) == sorted(grid), runs
    assert all(loss > 0 for _, _, loss in runs.values())

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        rows = db.execute(
            "select t.value, p.key, p.value from runs r"
            " join tags t on t.run_uuid = r.run_uuid and t.key = 'dvc.experiment'"
            " join params p on p.run_uuid = r.run_uuid where r.status = 'FINISHED' and p.key in"
            " ('pretrain.iterations', 'pretrain.learning_rate')"
        ).fetchall()
    logged: dict[str, dict[str, str]] = {}
    for experiment, key, value in rows:
        logged.setdefault(experiment, {})[key] = value
    assert set(logged) == set(runs), "every experiment's MLflow run carries its name in dvc.experiment"
    for name, (steps, rate, _) in runs.items():
        assert logged[name] == {"pretrain.iterations": str(steps), "pretrain.learning_rate": str(rate)}, name
