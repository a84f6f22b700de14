"""Atomic file output and schema-checked Parquet input.

Every output goes through :func:`atomic_path`: it is written to a temporary file in the
destination folder and renamed into place, so a stage killed at any point leaves the previous
file or none, never a half-written one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import numbers
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from psychovis.errors import DataError

PathLike = str | os.PathLike[str]


def _file_mode() -> int:
    """The mode a plainly created file gets (``0o666`` less the umask); mkstemp's own is ``0o600``."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing ancestor of ``folder`` (itself included) that is not a folder, if any."""
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to someone else
        return True
    return True


def _remove_stale_temporaries(final: Path) -> None:
    """Delete temporaries of ``final`` left by writers that were killed (``.<name>.<pid>.*.tmp``, pid gone)."""
    prefix = f".{final.name}."
    for candidate in final.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = candidate.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            candidate.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    Args:
        path: the final destination. Its folder is created if missing.

    Yields:
        A temporary path in the same folder (same file system, so the rename is atomic), named
        ``.<name>.<pid>.<random>.tmp``; the next write of ``path`` deletes those a killed writer left.

    Raises:
        DataError: the folder cannot be created (e.g. a file is in the way) or the write fails.
    """
    final = Path(path)
    blocker = _file_in_the_way(final.parent)
    if blocker is not None:
        raise DataError(
            f"cannot write {final}: {blocker} is a file, not a folder; move or delete {blocker} and run again"
        )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(final)
        # The writer's pid in the name lets a later run tell a killed writer's leftovers from a live one's.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise DataError(
            f"cannot write {final}: {exc.strerror or exc}; check the folder exists, is writable and the disk has space"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {final}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write ``frame`` to ``path`` atomically, without the pandas index.

    Written with a fixed writer configuration (no creation timestamps) so that equal frames
    give byte-identical files.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def read_parquet(path: PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table and check it has the expected columns.

    Args:
        path: the Parquet file, usually an earlier stage's output.
        columns: columns that must be present.

    Raises:
        DataError: the file is missing, unreadable, or lacks a required column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; run the stage that writes it (`dvc repro`)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path} is not a readable Parquet file ({exc}); delete it and run `dvc repro`") from exc
    if columns is not None:
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise DataError(
                f"{path} lacks column(s) {missing} (has {list(frame.columns)}); it was written "
                "by another version: delete it and run `dvc repro`"
            )
    return frame


def write_json(data: Any, path: PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically (for `dvc metrics` and small artifacts)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


def write_csv(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write ``frame`` as CSV without index, atomically (for `dvc plots`)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)


def save_figure(figure: Any, path: PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def json_number(value: float, digits: int = 5) -> float | None:
    """``value`` rounded to ``digits`` decimals for a metrics file; None (JSON null) if not finite."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def write_text(text: str, path: PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (generated pages such as docs/results.md)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


HEADLINE_LIMIT = 16  # numbers per headline file: `dvc exp show` keeps every stage's file on one screen


def write_headline(values: Mapping[str, Any], path: PathLike, digits: int = 4, limit: int = HEADLINE_LIMIT) -> Path:
    """Write a stage's headline metrics (the few numbers `dvc exp show` columns show), atomically.

    The detail (per layer, per judge, ...) belongs in a plain output next to the stage's data;
    this file is the one declared under ``metrics:`` in dvc.yaml. Numbers are rounded to
    ``digits`` decimals (NaN/inf become null); one level of nesting is allowed (``{judge: {method:
    value}}`` shows as ``judge.method`` columns).

    Args:
        values: name -> number (or a mapping name -> number).
        path: where to write, e.g. ``metrics/tuning.json``.
        digits: decimals kept.
        limit: most numbers allowed.

    Returns:
        The path written.

    Raises:
        ValueError: more than ``limit`` numbers, or nesting deeper than one level.
    """

    def number(name: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            raise ValueError(f"headline metric {name} is nested more than one level; move it to a detail file")
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, numbers.Integral):
            return int(value)
        return json_number(value, digits)

    headline: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            headline[key] = {inner: number(f"{key}.{inner}", v) for inner, v in value.items()}
        else:
            headline[key] = number(key, value)
    count = sum(len(v) if isinstance(v, dict) else 1 for v in headline.values())
    if count > limit:
        raise ValueError(f"{path}: {count} headline metrics, more than {limit}; move the detail to a data/ file")
    return write_json(headline, path)
