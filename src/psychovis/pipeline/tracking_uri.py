"""Check ``MLFLOW_TRACKING_URI`` before a stage uses it: scheme, syntax, store file, server identity.

MLflow's own errors for a bad URI come late (after the stage's work) and span many lines: an
unknown scheme (``htp://``) is an ``UnsupportedModelRegistryStoreURIException``, a port that answers
another protocol a ``ConnectionError`` retried for minutes, an HTTP server that is not MLflow a JSON
decoding error, a damaged ``mlflow.db`` a SQLAlchemy ``DatabaseError``. :func:`check_tracking_uri`
turns each into one :class:`~psychovis.errors.TrackingError` line that says what is wrong and how
to fix it (fix the URI, start ``mlflow server``, or unset it to log to ``sqlite:///mlflow.db``).

A ``file:`` URI or a plain folder (MLflow's file store) is refused here: MLflow 3 keeps that store in
maintenance mode and raises on it unless ``MLFLOW_ALLOW_FILE_STORE=true``, and the pipeline's runs
(parents found by tag, artifact roots relocated in the database) live in a database store.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sqlite3
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from psychovis.errors import TrackingError
from psychovis.files import kind

SCHEMES: frozenset[str] = frozenset(
    {"", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc"}
)
"""URI schemes MLflow accepts as a tracking store (``postgresql+psycopg2`` counts as ``postgresql``)."""
PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"
"""The MLflow REST call used to tell an MLflow server from any other HTTP server."""
SQLITE_MAGIC = b"SQLite format 3\x00"
_FIX = "fix MLFLOW_TRACKING_URI, or unset it to log to sqlite:///mlflow.db"
USE_INSTEAD = "use sqlite:///path/mlflow.db or http(s)://host:port, or unset it to log to sqlite:///mlflow.db"
"""What the refusal of an unknown scheme or a file store recommends (the stores the pipeline runs on)."""


def _fail(uri: str, problem: str, fix: str = _FIX) -> TrackingError:
    return TrackingError(f"MLFLOW_TRACKING_URI {uri} {problem}; {fix}")


def _unreachable(uri: str, reason: str) -> TrackingError:
    return TrackingError(
        f"MLflow tracking server {uri} is unreachable ({reason}); start it (`mlflow server --host 127.0.0.1 "
        "--port <port>`), fix MLFLOW_TRACKING_URI, or unset it to log to sqlite:///mlflow.db"
    )


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Refuse a tracking URI that MLflow could not use, with one line saying why and what to do.

    Args:
        uri: the tracking URI (``$MLFLOW_TRACKING_URI`` or the default ``sqlite:///.../mlflow.db``).
        timeout_s: how long an HTTP server may take to answer the probe.

    Raises:
        TrackingError: an unknown scheme or malformed URI; an SQLite store that is not an SQLite
            file (or whose folder is missing); a ``file:`` URI or a plain path (the file store); an HTTP(S) address
            that is unreachable, answers another protocol, or is not an MLflow server.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise _fail(uri, f"is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if len(scheme) == 1:  # a Windows drive letter: a plain path, as MLflow reads it
        base = ""
    if base not in SCHEMES:
        raise _fail(
            uri,
            f"has an unknown scheme {scheme + '://'!r}",
            USE_INSTEAD,
        )
    if base == "sqlite":
        _check_sqlite(uri)
    elif base == "file" or (base == "" and uri not in ("", "databricks")):  # bare "databricks": its default profile
        raise _fail(
            uri,
            "is MLflow's file store, which MLflow 3 no longer accepts (and this pipeline's runs need a database)",
            f"{USE_INSTEAD} (`mlflow migrate-filestore` moves an existing ./mlruns into SQLite)",
        )
    elif base in ("http", "https"):
        _check_server(uri, parts, timeout_s)


def _check_sqlite(uri: str) -> None:
    """The store file, if present, must be an SQLite database; it and its folder must exist and be writable.

    SQLite writes a journal beside the store, so a writable file in a read-only folder fails as a
    read-only file does: MLflow then logs a traceback per attempt and fails only after the work.
    """
    if not uri.lower().startswith("sqlite:///"):
        if uri.lower().rstrip("/") in ("sqlite:", "sqlite:/", "sqlite://"):
            return  # in-memory
        raise _fail(uri, "is malformed", "write sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = Path(urllib.parse.unquote(uri[len("sqlite:///") :].split("?", 1)[0]))
    if path.parent.exists() and not path.parent.is_dir():
        raise _fail(uri, f"names a store in {path.parent}, which is a file, not a folder", "fix the path")
    if not path.parent.is_dir():
        raise _fail(uri, f"names a store in {path.parent}, which does not exist", "create the folder or fix the path")
    found = kind(path)
    if found not in (None, "a regular file"):  # a folder, or a FIFO or device MLflow would block on for minutes
        raise _fail(uri, f"points at {path}, {found}, not an SQLite file", "fix the path")
    _check_writable(path)
    if not path.exists() or path.stat().st_size == 0:
        return  # MLflow creates it
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise _fail(uri, f"cannot be read ({exc.strerror or exc})", "fix the file's permissions") from None
    problem = None if header == SQLITE_MAGIC else "is not an SQLite database (damaged or overwritten)"
    if problem is None:
        try:  # a valid header over damaged pages: what MLflow would fail on, read-only and quick
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            problem = f"is a damaged SQLite database ({exc})"
    if problem is not None:
        raise TrackingError(
            f"the MLflow store {path} {problem}; move it aside (`mv {path} {path}.broken`) so a new store "
            "is created, or point MLFLOW_TRACKING_URI elsewhere"
        )


def _check_writable(path: Path) -> None:
    """A read-only store (file or folder: a ``chmod``, an immutable file, a read-only mount) is one line now."""
    folder = path.parent
    read_only = [where for where in (path, folder) if where.exists() and not os.access(where, os.W_OK)]
    if read_only:
        what = "cannot be created" if not path.exists() else "is read-only"
        raise TrackingError(
            f"the MLflow store {path} {what}: {read_only[0]} is not writable; make {path.name} and its folder "
            f"writable (e.g. `chmod u+w {read_only[0]}`), or point MLFLOW_TRACKING_URI at a writable "
            "sqlite:///path/mlflow.db"
        )


def _check_server(uri: str, parts: urllib.parse.SplitResult, timeout_s: float) -> None:
    """The address must answer HTTP(S), and answer the MLflow REST probe as MLflow does."""
    try:
        port = parts.port
    except ValueError:
        raise _fail(uri, "has an invalid port") from None
    if not parts.hostname:
        raise _fail(uri, "names no host", "write it as http://host:port")
    del port
    url = uri.rstrip("/") + PROBE
    server = "start it (`mlflow server --host 127.0.0.1 --port <port>`), " + _FIX
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status, body, kind = response.status, response.read(65536), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, body, kind = exc.code, exc.read(65536) if exc.fp else b"", exc.headers.get_content_type()
    except (http.client.HTTPException, ConnectionResetError) as exc:
        raise _fail(
            uri, f"answers, but not with HTTP ({type(exc).__name__}): it looks like another service's port", server
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            problem = (
                f"failed the TLS handshake ({reason.reason or reason}): the server may speak http://, not https://"
            )
            raise _fail(uri, problem) from None
        if isinstance(reason, TimeoutError):
            raise _unreachable(uri, f"no answer within {timeout_s:g} s") from None
        raise _unreachable(uri, str(reason)) from None
    except TimeoutError:
        raise _unreachable(uri, f"no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise _unreachable(uri, str(exc.strerror or exc)) from None
    if status in (401, 403):
        return  # an MLflow server with authentication: the MLflow client sends the credentials
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not ({"experiments", "error_code"} & set(answer) or answer == {}):
        raise _fail(
            uri,
            f"answers HTTP {status} ({kind}) but is not an MLflow tracking server (GET {PROBE.split('?')[0]})",
            "point it at `mlflow server`, or unset it to log to sqlite:///mlflow.db",
        )
    if status >= 500:
        raise _fail(uri, f"is an MLflow server that answered HTTP {status}", "check the server's log")
