"""Battery (issue 14): a bad ``MLFLOW_TRACKING_URI`` or store stops a stage with one line, exit 2, before work.

Real servers on local ports stand in for what a user may point the URI at: a port that answers
another protocol (an SSH-like banner), one that accepts and never answers, an HTTP server that is
not MLflow (HTML 404, a JSON API), and a plain HTTP server reached with ``https://``. Stores: a
garbage ``mlflow.db``, one with a valid SQLite header but garbage pages, a folder, a missing folder.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from stagekit import Case, Outcome, assert_one_line_and_unchanged, built_project, by_name, free_port, run_selected

from psychovis.errors import TrackingError
from psychovis.pipeline.tracking_uri import check_tracking_uri

PORTS: dict[str, int] = {}  # role -> port of the servers started by the module fixture


def _banner_server(sock: socket.socket, stop: threading.Event) -> None:
    """Answer every connection with a non-HTTP banner, then close (what an SSH or SMTP port does)."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            connection, _ = sock.accept()
        except OSError:
            continue
        with connection:
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def _silent_server(sock: socket.socket, stop: threading.Event) -> None:
    """Accept connections and never answer."""
    sock.settimeout(0.2)
    held = []
    while not stop.is_set():
        try:
            connection, _ = sock.accept()
            held.append(connection)
        except OSError:
            continue
    for connection in held:
        connection.close()


class _Html404(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _JsonApi(_Html404):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    stop = threading.Event()
    threads, closers = [], []
    for role, target in (("banner", _banner_server), ("silent", _silent_server)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        PORTS[role] = sock.getsockname()[1]
        threads.append(threading.Thread(target=target, args=(sock, stop), daemon=True))
        closers.append(sock.close)
    for role, handler in (("html", _Html404), ("json", _JsonApi)):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        PORTS[role] = server.server_address[1]
        threads.append(threading.Thread(target=server.serve_forever, daemon=True))
        closers.extend([server.shutdown, server.server_close])
    for thread in threads:
        thread.start()
    yield PORTS
    stop.set()
    for close in closers:
        close()


def uri(template: str) -> object:
    """``MLFLOW_TRACKING_URI`` := ``template`` with ``{banner}``, ``{silent}``, ``{html}``, ``{json}``,
    ``{free}`` (ports) and ``{case}`` (the case folder) filled in."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        value = template.format(**PORTS, free=free_port(), case=case_dir, project=project)
        return [], {"MLFLOW_TRACKING_URI": value}

    return setup


def store(content: bytes | None, name: str = "store.db") -> object:
    """``sqlite:///<case>/<name>`` holding ``content`` (None: a folder of that name)."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        path = case_dir / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        return [], {"MLFLOW_TRACKING_URI": f"sqlite:///{path}"}

    return setup


_GARBAGE = np.random.default_rng(14).bytes(8192)
FIX = r"unset it|MLFLOW_TRACKING_URI|mlflow server|move it aside"
CASES = by_name(
    [
        Case("scheme_typo_htp", "vfss", uri("htp://127.0.0.1:{free}"), (r"unknown scheme 'htp://'", r"http\(s\)")),
        Case("scheme_ftp", "vfss", uri("ftp://127.0.0.1/mlruns"), (r"unknown scheme 'ftp://'", r"unset it")),
        Case("scheme_s3", "vfss", uri("s3://bucket/mlruns"), (r"unknown scheme 's3://'",)),
        Case("scheme_typo_sqllite", "vfss", uri("sqllite:///{case}/x.db"), (r"unknown scheme 'sqllite://'",)),
        Case("http_no_host", "vfss", uri("http://"), (r"no host", r"http://host:port|fix MLFLOW_TRACKING_URI")),
        Case("http_bad_port", "vfss", uri("http://127.0.0.1:99999"), (r"invalid port", FIX)),
        Case("http_port_not_a_number", "vfss", uri("http://127.0.0.1:mlflow"), (r"invalid port",)),
        Case("http_bad_ipv6", "vfss", uri("http://[::1"), (r"malformed", FIX)),
        Case("http_refused", "vfss", uri("http://127.0.0.1:{free}"), (r"unreachable", r"start it")),
        Case(
            "http_other_protocol",
            "vfss",
            uri("http://127.0.0.1:{banner}"),
            (r"not with HTTP", r"another service's port"),
        ),
        Case(
            "http_never_answers",
            "vfss",
            uri("http://127.0.0.1:{silent}"),
            (r"unreachable", r"no answer within|timed out"),
        ),
        Case(
            "http_not_mlflow_html",
            "vfss",
            uri("http://127.0.0.1:{html}"),
            (r"HTTP 404 \(text/html\)", r"not an MLflow"),
        ),
        Case("http_not_mlflow_json", "vfss", uri("http://127.0.0.1:{json}"), (r"HTTP 200", r"not an MLflow")),
        Case(
            "https_on_plain_http",
            "vfss",
            uri("https://127.0.0.1:{html}"),
            (r"TLS handshake", r"may speak http://, not https://"),
        ),
        Case("sqlite_garbage", "vfss", store(_GARBAGE), (r"not an SQLite database", r"move it aside")),
        Case("sqlite_text_file", "vfss", store(b"name,value\nlr,0.1\n"), (r"not an SQLite database",)),
        Case(
            "sqlite_header_then_garbage",
            "vfss",
            store(b"SQLite format 3\x00" + _GARBAGE),
            (r"is a damaged SQLite database \(file is not a database\)", r"move it aside"),
        ),
        Case("sqlite_folder", "vfss", store(None), (r"a folder, not an SQLite file",)),
        Case("sqlite_missing_folder", "vfss", uri("sqlite:///{case}/no/such/folder/mlflow.db"), (r"does not exist",)),
        Case("sqlite_two_slashes", "vfss", uri("sqlite://relative.db"), (r"malformed", r"sqlite:///")),
        Case("file_store_is_a_file", "vfss", uri("file://{project}/params.yaml"), (r"file store", r"sqlite:///")),
        Case("plain_path_is_a_file", "vfss", uri("{project}/params.yaml"), (r"file store", r"sqlite:///")),
        Case("file_store_folder", "vfss", uri("file://{case}/mlruns"), (r"file store", r"sqlite:///", r"http")),
        Case("file_store_relative", "vfss", uri("file:mlruns"), (r"file store", r"sqlite:///", r"http")),
    ],
    subprocess=["scheme_typo_htp"],
)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, servers: dict[str, int]
) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_bad_tracking_uri_stops_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    assert_one_line_and_unchanged(CASES[name], outcome)
    assert outcome.seconds < 60, f"took {outcome.seconds:.0f} s to report a bad tracking URI"


@pytest.mark.parametrize(
    "value",
    ["sqlite:///mlflow.db", "sqlite://", "databricks", "postgresql+psycopg2://u@h/db", ""],
)
def test_usable_uris_pass_without_a_network(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_tracking_uri(value)


@pytest.mark.parametrize(
    "value", ["file:///tmp/mlruns", "file:mlruns", "file:./mlruns", "mlruns", "/tmp/mlruns", "C:/mlruns"]
)
def test_file_stores_are_refused_with_what_to_use(value: str) -> None:
    """MLflow 3 raises on its file store only when a run starts; the check refuses it, recommending no file URI."""
    with pytest.raises(TrackingError) as refused:
        check_tracking_uri(value)
    line = str(refused.value)
    assert "file store" in line and "sqlite:///path/mlflow.db" in line and "http(s)://host:port" in line
    assert "file:///" not in line.replace(value, "") and "\n" not in line


def test_an_unknown_scheme_recommends_no_file_store() -> None:
    with pytest.raises(TrackingError, match=r"unknown scheme") as refused:
        check_tracking_uri("s3://bucket/mlruns")
    assert "file:" not in str(refused.value)


def test_a_real_sqlite_store_passes(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table t (x)")
    check_tracking_uri(f"sqlite:///{path}")
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(TrackingError, match="not an SQLite database"):
        check_tracking_uri(f"sqlite:///{path}")
