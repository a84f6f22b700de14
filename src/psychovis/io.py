"""Atomic file output, stage transactions and schema-checked Parquet input.

Every output goes through :func:`atomic_path`: it is written to a temporary file in the
destination folder and renamed into place, so a stage killed at any point leaves the previous
file or none, never a half-written one.

Inside :func:`stage_transaction` (the stage runner opens one around every stage) the whole stage
is one unit: before an output is first replaced, its previous version is kept as a hidden
hard link; when the stage fails, every output it wrote is put back byte for byte (or removed if
it did not exist), and when it succeeds the kept versions are deleted. Outputs are renamed into
place as they are written rather than at the end, so the stage can read back (and log to MLflow)
what it just wrote.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import json
import math
import numbers
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from psychovis.errors import DataError
from psychovis.files import require_regular_file

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


class StageTransaction:
    """The outputs a stage replaced so far, with their previous versions (see :func:`stage_transaction`)."""

    def __init__(self) -> None:
        # final path -> hidden hard link to its previous version, or None when it did not exist
        self.previous: dict[Path, Path | None] = {}

    def before_replace(self, final: Path) -> None:
        """Keep ``final``'s current version (once per stage) before it is replaced for the first time."""
        final = final.absolute()
        if final in self.previous:
            return
        if not (final.exists() or final.is_symlink()):
            self.previous[final] = None
            return
        fd, keep_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        keep = Path(keep_name)
        keep.unlink()
        try:
            os.link(final, keep, follow_symlinks=False)
        except OSError:  # a file system without hard links: a copy keeps the same bytes
            import shutil

            shutil.copy2(final, keep, follow_symlinks=False)
        self.previous[final] = keep

    def rollback(self) -> None:
        """Put every replaced output back as it was, remove outputs that did not exist before."""
        for final, keep in reversed(list(self.previous.items())):
            with contextlib.suppress(OSError):
                if keep is None:
                    final.unlink(missing_ok=True)
                else:
                    os.replace(keep, final)
        self.previous.clear()

    def commit(self) -> None:
        """Forget the previous versions: the stage succeeded."""
        for keep in self.previous.values():
            if keep is not None:
                with contextlib.suppress(OSError):
                    keep.unlink(missing_ok=True)
        self.previous.clear()

    @property
    def written(self) -> list[Path]:
        """The outputs replaced or created so far, in order."""
        return list(self.previous)


_TRANSACTION: contextvars.ContextVar[StageTransaction | None] = contextvars.ContextVar(
    "psychovis_stage_transaction", default=None
)


@contextlib.contextmanager
def stage_transaction() -> Iterator[StageTransaction]:
    """Make every :func:`atomic_path` write inside the block part of one all-or-nothing unit.

    When the block raises (any exception, KeyboardInterrupt included), every output written in it
    is restored to its previous bytes, or removed if it is new; when it ends normally, all stay.
    Hidden files (names starting with a dot, e.g. a training run's resumable
    ``.<name>.partial.pt``) are state, not outputs, and are left as written. A process killed
    with SIGKILL cannot roll back: each file is still whole (previous or new), and the kept
    versions are hidden ``.<name>.<pid>.*.tmp`` files that the next write of that output deletes.

    Yields:
        The transaction (its :attr:`StageTransaction.written` lists the outputs so far).
    """
    if _TRANSACTION.get() is not None:  # nested: the outer transaction decides
        yield _TRANSACTION.get()  # type: ignore[misc]
        return
    transaction = StageTransaction()
    token = _TRANSACTION.set(transaction)
    try:
        yield transaction
    except BaseException:
        transaction.rollback()
        raise
    else:
        transaction.commit()
    finally:
        _TRANSACTION.reset(token)


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
        transaction = _TRANSACTION.get()
        if transaction is not None and not final.name.startswith("."):
            transaction.before_replace(final)
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
    give byte-identical files, and with page checksums (CRC32) that :func:`read_parquet` verifies.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        # Page checksums: a flipped byte in the data is refused on reading, not read as another number.
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
    return Path(path)


def read_parquet(
    path: PathLike,
    columns: Sequence[str] | None = None,
    finite: Sequence[str] = (),
    nonnegative: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a Parquet table and check it has the expected columns (and finite numbers where asked).

    Args:
        path: the Parquet file, usually an earlier stage's output.
        columns: columns that must be present.
        finite: columns that must hold real numbers, none NaN or infinite (checked in float64).
        nonnegative: columns (among ``finite``) that must also be >= 0.

    Raises:
        DataError: the file is missing, unreadable, lacks a required column, or a ``finite``
            column holds text, NaN or infinity; the one-line message names the file and column.
    """
    path = require_regular_file(path, "Parquet file", "run the stage that writes it (`dvc repro`)")
    try:
        frame = pq.read_table(path, page_checksum_verification=True).to_pandas()
    except MemoryError:
        raise DataError(f"{path} is too large to read into memory; check it is the file the stage wrote") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"{path} is not a readable Parquet file ({detail}); delete it and run `dvc repro`") from exc
    if columns is not None:
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise DataError(
                f"{path} lacks column(s) {missing} (has {list(frame.columns)}); it was written "
                "by another version: delete it and run `dvc repro`"
            )
    for column in finite:
        check_finite_column(frame, column, path, nonnegative=column in nonnegative)
    return frame


def check_finite_column(frame: pd.DataFrame, column: str, source: PathLike, nonnegative: bool = False) -> None:
    """Refuse a column that is not all real, finite numbers (and >= 0 if ``nonnegative``).

    Raises:
        DataError: naming ``source``, the column, the first bad row and the fix.
    """
    values = frame[column]
    fix = "it is corrupt or was written by another tool: delete it and run `dvc repro`"
    if values.dtype.kind not in "iuf":  # text, bool, objects: not what a stage wrote
        kind = (
            "true/false" if values.dtype.kind == "b" else "text" if values.dtype.kind in "OSUT" else str(values.dtype)
        )
        sample = next((value for value in values if not isinstance(value, int | float)), None)
        example = f" (e.g. {sample!r})" if sample is not None else ""
        raise DataError(f"{source}: column {column!r} holds {kind} values{example}, not numbers; {fix}")
    numbers = values.to_numpy(dtype="float64")
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column {column!r} holds {int(bad.sum())} non-finite value(s) (row {row}: {numbers[row]}); {fix}"
        )
    if nonnegative and (numbers < 0).any():
        row = int(np.flatnonzero(numbers < 0)[0])
        raise DataError(f"{source}: column {column!r} holds negative value(s) (row {row}: {numbers[row]}); {fix}")


def write_json(data: Any, path: PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically (for `dvc metrics` and small artifacts)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


MAX_JSON_BYTES = 256 << 20
"""The largest JSON input read (the stages' summaries are a few kB)."""


def read_json(path: PathLike) -> Any:
    """Read an upstream stage's JSON file: a regular file, complete JSON, or one line naming the problem.

    Raises:
        DataError: missing, not a regular file (a folder, a device, a FIFO), too large, not UTF-8, or
            not complete JSON (a truncated file is named as such, with where it ends).
    """
    path = require_regular_file(path, "JSON file", "run the stage that writes it (`dvc repro`)", MAX_JSON_BYTES)
    text = path.read_bytes()
    try:
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}); delete it and run `dvc repro`") from None
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        what = "is truncated (the JSON ends early" if truncated else "is not valid JSON ("
        raise DataError(
            f"{path} {what}{': ' if truncated else ''}{exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "delete it and run `dvc repro`"
        ) from None


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
