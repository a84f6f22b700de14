"""The tracking URI check: a read-only store, or one that cannot be created, is one line before any work (issue 23)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from common import read_only

from psychovis.errors import TrackingError
from psychovis.pipeline.tracking_uri import check_tracking_uri


def _store(folder: Path) -> Path:
    """A real (tiny) SQLite database where an MLflow store would be."""
    path = folder / "mlflow.db"
    with sqlite3.connect(path) as db:
        db.execute("create table t (x)")
    return path


def _refusal(uri: str) -> str:
    started = time.perf_counter()
    with pytest.raises(TrackingError) as refused:
        check_tracking_uri(uri)
    assert time.perf_counter() - started < 2
    line = str(refused.value)
    assert "\n" not in line and "damaged" not in line and "move it aside" not in line
    return line


def test_a_read_only_store_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with read_only(store):
        line = _refusal(f"sqlite:///{store}")
    assert f"the MLflow store {store} is read-only" in line
    assert "writable" in line and "sqlite:///path/mlflow.db" in line
    check_tracking_uri(f"sqlite:///{store}")  # writable again: accepted


def test_a_store_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    store = _store(folder)
    with read_only(folder):  # SQLite writes its journal beside the store
        existing = _refusal(f"sqlite:///{store}")
        new = _refusal(f"sqlite:///{folder / 'new.db'}")
    assert "is read-only" in existing and f"{folder} is not writable" in existing
    assert f"{folder / 'new.db'} cannot be created" in new


def test_a_store_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    line = _refusal(f"sqlite:///{tmp_path / 'notes.txt' / 'mlflow.db'}")
    assert f"{tmp_path / 'notes.txt'}, which is a file, not a folder" in line


@pytest.mark.parametrize("make", ["fifo", "device"])
def test_a_store_that_is_a_fifo_or_a_device_is_refused_without_blocking(make: str, tmp_path: Path) -> None:
    """MLflow backed off for minutes on a FIFO store; it is refused unopened."""
    path = Path("/dev/zero") if make == "device" else tmp_path / "mlflow.db"
    if make == "fifo":
        os.mkfifo(path)
    line = _refusal(f"sqlite:///{path}")
    assert (
        f"points at {path}, a {'FIFO (named pipe)' if make == 'fifo' else 'character device'}, not an SQLite file"
        in line
    )
