"""Concurrent writers of one MLflow store: the lock, the retry and the relocation of a copied store."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from psychovis.errors import TrackingError
from psychovis.pipeline import tracking


def test_retrying_repeats_a_conflict_until_it_clears() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id")
        return "done"

    assert tracking.retrying(flaky, first_wait_s=0.001) == "done"
    assert len(calls) == 3


def test_retrying_raises_other_errors_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        tracking.retrying(broken, first_wait_s=0.001)
    assert len(calls) == 1


def test_a_conflict_that_persists_is_one_line_that_does_not_call_the_store_damaged() -> None:
    def locked() -> None:
        raise RuntimeError("(sqlite3.OperationalError) database is locked\n[SQL: INSERT ...]")

    with pytest.raises(TrackingError) as caught:
        tracking.retrying(locked, attempts=2, first_wait_s=0.001)
    message = str(caught.value)
    assert "\n" not in message and "busy with other writers" in message and "damaged" not in message


def _hold(lock_uri: str, started: multiprocessing.synchronize.Event, seconds: float) -> None:
    with tracking.store_lock(lock_uri):
        started.set()
        time.sleep(seconds)


def _seconds_waited_while_another_process_holds(uri: str) -> float:
    """Take the lock (twice, re-entered) while a forked process holds it for a second; the time it waited."""
    context = multiprocessing.get_context("fork")
    started = context.Event()
    holder = context.Process(target=_hold, args=(uri, started, 1.0))
    holder.start()
    assert started.wait(30)
    begun = time.monotonic()
    with tracking.store_lock(uri), tracking.store_lock(uri):  # the second is re-entered, not waited on
        waited = time.monotonic() - begun
    holder.join(30)
    return waited


def test_the_store_lock_serialises_processes_and_is_reentrant(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    waited = _seconds_waited_while_another_process_holds(uri)
    assert waited > 0.3, "the lock did not wait for the other process"
    assert (tmp_path / "mlflow.db.lock").exists()


def test_a_server_store_is_locked_per_machine_too(tmp_path: Path) -> None:
    # Parent runs are "look, then insert" on a server as well: two processes of this machine creating
    # them at once must take turns (else one deletes the parent the other already uses).
    uri = f"http://127.0.0.1:9/{tmp_path.name}"  # a lock per URI; nothing is contacted
    waited = _seconds_waited_while_another_process_holds(uri)
    assert waited > 0.3, "the lock did not wait for the other process"


def test_an_unwritable_folder_takes_no_lock(tmp_path: Path) -> None:
    with tracking.store_lock(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}"):
        pass  # the store check reports a missing folder; the lock does not fail first


def _log_once(root: Path) -> str:
    with tracking.stage_run("probe", {"probe": {"value": 1}}, root=root) as run:
        figure = root / "note.txt"
        figure.write_text("artifact")
        run.log_artifact(figure, "notes")
        return run.run_id


@pytest.mark.slow
def test_a_copied_checkout_logs_into_its_own_mlruns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    original = tmp_path / "original"
    original.mkdir()
    first = _log_once(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = sorted(path.relative_to(original) for path in (original / "mlruns").rglob("*"))

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exported the original's
    second = _log_once(copy)

    assert sorted(path.relative_to(original) for path in (original / "mlruns").rglob("*")) == before
    assert list((copy / "mlruns").rglob(f"{second}/**/note.txt")) or list((copy / "mlruns").rglob("note.txt"))
    with sqlite3.connect(copy / "mlflow.db") as db:
        locations = [row[0] for row in db.execute("SELECT artifact_location FROM experiments WHERE name = 'psychovis'")]
        uris = dict(db.execute("SELECT run_uuid, artifact_uri FROM runs").fetchall())
    assert locations == [(copy / "mlruns").resolve().as_uri()]
    assert uris[first].startswith((copy / "mlruns").resolve().as_uri()), "the copied run still points at the original"
    assert uris[second].startswith((copy / "mlruns").resolve().as_uri())
    with sqlite3.connect(original / "mlflow.db") as db:
        (location,) = db.execute("SELECT artifact_location FROM experiments WHERE name = 'psychovis'").fetchone()
    assert location == (original / "mlruns").resolve().as_uri()


def test_relocation_rewrites_only_the_old_prefix(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE experiments (artifact_location TEXT)")
        db.execute("CREATE TABLE runs (artifact_uri TEXT)")
        db.executemany(
            "INSERT INTO runs VALUES (?)",
            [("file:///a/mlruns/1/r1/artifacts",), ("file:///a/mlruns-other/1",), ("s3://bucket/a/mlruns",)],
        )
        db.execute("INSERT INTO experiments VALUES ('file:///a/mlruns')")
    assert tracking.relocate_artifacts(store, "file:///a/mlruns", "file:///b/mlruns") == 2
    with sqlite3.connect(store) as db:
        runs = [row[0] for row in db.execute("SELECT artifact_uri FROM runs")]
        (experiment,) = db.execute("SELECT artifact_location FROM experiments").fetchone()
    assert runs == ["file:///b/mlruns/1/r1/artifacts", "file:///a/mlruns-other/1", "s3://bucket/a/mlruns"]
    assert experiment == "file:///b/mlruns"


def _store_error(message: str) -> Exception:
    error = type("OperationalError", (Exception,), {"__module__": "sqlalchemy.exc"})
    return error(message)


@pytest.mark.parametrize(
    ("message", "advice"),
    [
        ("(sqlite3.OperationalError) attempt to write a readonly database", "read-only"),
        ("(sqlite3.OperationalError) database is locked", "another process is writing"),
        ("(sqlite3.IntegrityError) UNIQUE constraint failed: experiment_tags.key", "another process is writing"),
        ("(sqlite3.OperationalError) database or disk is full", "disk holding the store is full"),
        ("(sqlite3.OperationalError) disk I/O error (Background on this error at: https://sqlalche.me/e)", "writable"),
    ],
)
def test_a_healthy_store_that_is_busy_or_read_only_is_not_called_damaged(message: str, advice: str) -> None:
    from psychovis.pipeline.runner import describe_failure

    line = describe_failure(_store_error(message), "report", ["report"])
    assert advice in line and "damaged" not in line and "move" not in line
