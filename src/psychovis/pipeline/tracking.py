"""MLflow logging that mirrors DVC: one parent run per pipeline execution, one nested run per stage.

The store is ``$MLFLOW_TRACKING_URI`` when set (a team server), else ``sqlite:///mlflow.db`` at
the repository root (``$DVC_ROOT`` when DVC runs the stage, so queued experiments running in a
temporary copy log to the repository's store) with artifacts under ``mlruns/``. Browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``.

Layout of the ``psychovis`` experiment (tagged ``mlflow.experimentKind = custom_model_development``
for the UIs that open an experiment by its kind; MLflow 3.17's UI keeps a GenAI/model-training
switch per browser instead, so the README links the experiment with ``?workflowType=machine_learning``):

- a **parent run per pipeline execution**, named after the DVC experiment (``$DVC_EXP_NAME``, which
  ``dvc exp run`` exports to every stage) or ``workspace`` for ``dvc repro`` and stages run by hand.
  Stages run in separate processes, so each finds its parent by the tag ``psychovis.execution``: a
  hash of the experiment name, the baseline commit and the contents of ``params.yaml``. Two queued
  experiments (``dvc queue start -j 2``) differ in name, so they never share a parent; a
  ``dvc repro`` in the workspace shares one with every ``dvc repro`` at the same commit and params.
  The parent holds the execution's whole ``params.yaml``, so parents compare like ``dvc exp show``.
- a **stage run** nested under it (``mlflow.parentRunId``), named after the stage (``train@vfss-s0``),
  logging the sections the stage reads plus the params of every stage upstream of it (its
  ``dvc.yaml`` deps, transitively; ``weights.top_k`` on the ``topk`` training runs) and the md5 of
  its data inputs (``md5.data/weights/topk.safetensors``: DVC's own hash when DVC has hashed the file
  since it last changed, so an 8 GB input is not read again); tables it reads are logged as datasets.
- runs nested under a stage run where the stage produces one result per item (``evaluate``: one
  run per method, the judges as metrics).

Tags on every run: ``dvc.experiment`` (name or ``workspace``), ``dvc.baseline_rev``
(``$DVC_EXP_BASELINE_REV`` or the git HEAD), ``git_commit`` (HEAD, clean) and ``git.dirty``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shlex
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from psychovis.errors import TrackingError
from psychovis.pipeline.params import params_hash
from psychovis.pipeline.tracking_uri import check_tracking_uri

EXPERIMENT = "psychovis"
EXPERIMENT_KIND = "custom_model_development"
"""``mlflow.experimentKind`` of classic model training in MLflow 3 (the runs table, not the GenAI traces page)."""
WORKSPACE = "workspace"
"""The parent run's name (and ``dvc.experiment``) outside ``dvc exp run``."""
TAG_EXPERIMENT = "dvc.experiment"
TAG_BASELINE = "dvc.baseline_rev"
TAG_STAGE = "dvc.stage"
TAG_COMMIT = "git_commit"
TAG_DIRTY = "git.dirty"
TAG_EXECUTION = "psychovis.execution"
TAG_KIND = "psychovis.run_kind"
"""``pipeline`` (parent), ``stage`` or ``item`` (a method of ``evaluate``)."""
MAX_HASHED_INPUTS = 200
"""At most this many input files get an ``md5.<path>`` param (a folder of thousands would flood the run)."""
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def repository_root(root: str | Path = ".") -> Path:
    """``$DVC_ROOT`` (set by DVC: the repository, also for a queued experiment's temporary copy) or ``root``."""
    return Path(os.environ.get("DVC_ROOT") or root).resolve()


def tracking_uri(root: str | Path = ".") -> str:
    """``$MLFLOW_TRACKING_URI`` or the repository's ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root(root) / 'mlflow.db'}"


def _git(root: str | Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit(root: str | Path = ".") -> str:
    """The HEAD commit (``unknown`` outside git); whether the tree has changes is :func:`git_dirty`."""
    return _git(root, "rev-parse", "HEAD") or "unknown"


def git_dirty(root: str | Path = ".") -> bool | None:
    """Whether tracked files differ from HEAD (None outside git)."""
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before heavy work, when an HTTP tracking server does not answer."""
    check_tracking_uri(uri, timeout_s)  # scheme, store file, server identity: one line each
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({getattr(exc, 'reason', exc)}); start it, "
            "fix MLFLOW_TRACKING_URI, or unset it to log to sqlite:///mlflow.db"
        ) from None


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def file_md5(path: str | Path) -> str:
    """The md5 of a file's bytes (what DVC records for it in ``dvc.lock``)."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Execution:
    """One pipeline execution: what its parent run is found by and the tags every run of it carries.

    Attributes:
        experiment: ``$DVC_EXP_NAME`` or :data:`WORKSPACE`.
        baseline_rev: ``$DVC_EXP_BASELINE_REV`` (the commit the experiment started from) or the HEAD.
        commit: the HEAD commit (``unknown`` outside git).
        dirty: whether tracked files differ from HEAD (None outside git).
        params: the execution's whole ``params.yaml``.
    """

    experiment: str
    baseline_rev: str
    commit: str
    dirty: bool | None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The parent run's identity: experiment name, baseline and params (a hash: safe in filters)."""
        return params_hash({"experiment": self.experiment, "baseline": self.baseline_rev, "params": self.params})

    @property
    def tags(self) -> dict[str, str]:
        """The tags of every run of this execution."""
        return {
            TAG_EXPERIMENT: self.experiment,
            TAG_BASELINE: self.baseline_rev,
            TAG_COMMIT: self.commit,
            TAG_DIRTY: "unknown" if self.dirty is None else str(self.dirty).lower(),
            TAG_EXECUTION: self.key,
        }


def current_execution(root: str | Path = ".", params_file: str | Path = "params.yaml") -> Execution:
    """The pipeline execution this process belongs to, from DVC's environment and git."""
    commit = git_commit(root)
    path = Path(root) / params_file
    try:
        params = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    except (OSError, yaml.YAMLError):
        params = {}  # the stage validated its params already; a parent without them still groups runs
    return Execution(
        experiment=os.environ.get("DVC_EXP_NAME") or WORKSPACE,
        baseline_rev=os.environ.get("DVC_EXP_BASELINE_REV") or commit,
        commit=commit,
        dirty=git_dirty(root),
        params=params if isinstance(params, Mapping) else {},
    )


@dataclass(frozen=True)
class Lineage:
    """Where a stage sits in ``dvc.yaml``: what shaped its inputs.

    Attributes:
        stage: the stage's name in ``dvc.yaml`` (``train_weighted@vfss-0``), or None when not found.
        upstream: the stages its deps come from, transitively, in ``dvc.yaml`` order.
        params: the params of the stage and of every upstream stage, flattened (``weights.top_k``).
        inputs: the data files among its deps (outputs of upstream stages), relative to the root.
        hashes: the md5 DVC already knows of some ``inputs`` (:func:`dvc_md5s`), by path.
        problem: why the lineage is unknown (no ``dvc.yaml``, DVC cannot read it), else None.
    """

    stage: str | None = None
    upstream: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    hashes: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def _command_matches(cmd: str | Sequence[str], argv: Sequence[str], root: Path) -> bool:
    """Whether ``argv`` (this process's ``sys.argv``) starts with the stage's command after ``python``."""
    commands = [cmd] if isinstance(cmd, str) else list(cmd)
    if len(commands) != 1:
        return False
    words = shlex.split(commands[0])
    if words and Path(words[0]).name.startswith("python"):
        words = words[1:]
    if not words or not argv:
        return False
    script = Path(argv[0])
    script_rel = script.resolve().relative_to(root) if script.is_absolute() and script.is_relative_to(root) else script
    # How many processes run a stage does not say which stage it is (torchrun relaunches drop it too).
    wanted, given = _without_launch_options(words[1:]), _without_launch_options(list(argv[1:]))
    return Path(words[0]).as_posix() == script_rel.as_posix() and wanted == given[: len(wanted)]


LAUNCH_OPTIONS = ("--processes",)
"""Stage options (with one value) that choose how a stage runs, not which stage it is."""


def _without_launch_options(words: Sequence[str]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in LAUNCH_OPTIONS:
            skip = True
        elif not word.startswith(tuple(f"{option}=" for option in LAUNCH_OPTIONS)):
            kept.append(word)
    return kept


def _data_files(path: Path, root: Path) -> list[str]:
    """``path`` itself if a file, or the files under a folder (skipping hidden ones, e.g. partial checkpoints)."""
    if path.is_file():
        return [path.relative_to(root).as_posix()]
    if not path.is_dir():
        return []
    return [
        file.relative_to(root).as_posix()
        for file in sorted(path.rglob("*"))
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    ]


LINEAGE_CACHE = Path(".dvc/tmp/psychovis-lineage")
"""Per repository: the stage table of :func:`stage_tables`, one file per (dvc.yaml, params.yaml) content."""


def stage_tables(root: Path) -> dict[str, dict[str, Any]]:
    """Every command stage of ``root/dvc.yaml`` as DVC resolves it: command, upstream stages, params, data deps.

    DVC parses the 1,000-line ``dvc.yaml`` and its matrices in about 1.4 s; every stage of a run would
    pay it again, so the table is kept under ``.dvc/tmp`` keyed by the content of ``dvc.yaml`` and
    ``params.yaml`` (all it depends on) and rebuilt when either changes.
    """
    digest = hashlib.sha256()
    for name in ("dvc.yaml", "params.yaml"):
        path = root / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    cached = root / LINEAGE_CACHE / f"{digest.hexdigest()[:32]}.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(cached.read_text())
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root), uninitialized=True) as repo:
        stages = [stage for stage in repo.index.stages if getattr(stage, "cmd", None)]
        table: dict[str, dict[str, Any]] = {}
        files: dict[str, dict[str, str]] = {}  # each params file parsed once (DVC's read_params parses per dep)
        for current in stages:
            upstream = nx.descendants(repo.index.graph, current)  # edges point from a stage to its deps
            ordered = [stage for stage in stages if stage in upstream]
            params: dict[str, str] = {}
            for stage in [*ordered, current]:
                for dep in stage.deps:
                    if hasattr(dep, "read_params"):
                        params.update(_selected_params(dep, files))
            produced = [Path(out.fs_path) for stage in ordered for out in stage.outs]
            data = [
                Path(dep.fs_path).relative_to(root).as_posix()
                for dep in current.deps
                if not hasattr(dep, "read_params")
                and any(
                    Path(dep.fs_path) == out or out in Path(dep.fs_path).parents or Path(dep.fs_path) in out.parents
                    for out in produced
                )
            ]  # code and params are not data another stage wrote
            table[current.name] = {
                "cmd": current.cmd,
                "upstream": [stage.name for stage in ordered],
                "params": params,
                "data": data,
            }
    if not (root / ".dvc").is_dir():  # not a DVC repository: no .dvc folder is made for a cache
        return table
    with contextlib.suppress(OSError):  # a cache: a read-only checkout just parses again next time
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}")
        partial.write_text(json.dumps(table))
        os.replace(partial, cached)
    return table


def _selected_params(dep: Any, files: dict[str, dict[str, str]]) -> dict[str, str]:
    """The flattened params a DVC params dep reads (all of its file when it names no keys)."""
    path = str(dep.fs_path)
    if path not in files:
        files[path] = _flatten(_read_yaml(path))
    flat = files[path]
    if not dep.params:
        return dict(flat)
    sections = tuple(f"{key}." for key in dep.params)
    return {name: value for name, value in flat.items() if name in dep.params or name.startswith(sections)}


def _read_yaml(path: str) -> dict[str, Any]:
    from dvc.utils.serialize import load_yaml

    return dict(load_yaml(path) or {})


def stage_lineage(root: str | Path = ".", argv: Sequence[str] | None = None) -> Lineage:
    """The running stage's place in ``dvc.yaml``, resolved by DVC itself (matrix, ``${...}``).

    The stage is ``$DVC_STAGE`` (set by DVC for every command) or, for a stage script run by hand,
    the stage whose command ``sys.argv`` starts with. Upstream stages are those whose outputs the
    stage's deps are (or contain), transitively, as in DVC's own graph.

    Args:
        root: the repository root holding ``dvc.yaml``.
        argv: the command line to match (default: ``sys.argv``).
    """
    root = Path(root).resolve()
    if not (root / "dvc.yaml").exists():
        return Lineage(problem="no dvc.yaml")
    try:
        table = stage_tables(root)
        # DVC_STAGE is the address relative to where dvc ran: ``[path/dvc.yaml:]name``.
        address = os.environ.get("DVC_STAGE", "").rpartition(":")[2]
        if address not in table:
            argv = list(sys.argv if argv is None else argv)
            address = next((name for name, entry in table.items() if _command_matches(entry["cmd"], argv, root)), "")
        if address not in table:
            return Lineage(problem="this command is not a stage of dvc.yaml")
        entry = table[address]
        inputs = [file for path in entry["data"] for file in _data_files(root / path, root)]
        hashes: dict[str, str] = {}
        if inputs:  # DVC's state database needs a Repo (0.5 s to import): not for stages without data inputs
            from dvc.repo import Repo

            with Repo(str(root), uninitialized=True) as repo:
                hashes = dvc_md5s(repo, root, inputs[:MAX_HASHED_INPUTS])
        return Lineage(address, tuple(entry["upstream"]), dict(entry["params"]), tuple(inputs), hashes)
    except Exception as exc:  # lineage is context for the run; never fail a stage over it
        return Lineage(problem=f"dvc.yaml could not be resolved: {type(exc).__name__}: {exc}")


def dvc_md5s(repo: Any, root: Path, paths: Sequence[str]) -> dict[str, str]:
    """The md5 DVC recorded for each of ``paths`` (relative to ``root``) that is unchanged since DVC hashed it.

    DVC keeps the hash of every file it hashed (``dvc repro`` hashes each output it commits) in its
    state database, keyed by the file's inode, mtime and size: a file changed since then has no
    entry. That md5 is the one ``dvc.lock`` records, so logging it costs no read of the file (an 8 GB
    input took 90 s to hash again); a file DVC does not know is left out (:func:`input_md5s` hashes it).
    """
    known: dict[str, str] = {}
    for path in paths:
        try:
            _, info = repo.state.get(str(root / path), repo.fs)
        except Exception:  # the state is a cache: a missing or locked database means "not known"
            return known
        if info is not None and info.name == "md5" and info.value and not info.isdir:
            known[path] = info.value
    return known


def input_md5s(lineage: Lineage, root: str | Path = ".") -> dict[str, str]:
    """``md5.<path>`` of each data input (at most :data:`MAX_HASHED_INPUTS`): DVC's hash, else the file's."""
    return {
        f"md5.{path}": lineage.hashes.get(path) or file_md5(Path(root) / path)
        for path in lineage.inputs[:MAX_HASHED_INPUTS]
    }


def sqlite_path(uri: str) -> Path | None:
    """The store file of an ``sqlite:///`` URI (None for a server, an in-memory or another store)."""
    if not uri.lower().startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri[len("sqlite:///") :].split("?", 1)[0]))


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock for a store while it is created or written to.

    MLflow creates a new SQLite store by migrating its schema, and creates experiments, tags,
    datasets and our parent runs by "look, then insert": two stage processes doing either at once
    (``dvc queue start -j 2``) fail on ``duplicate column name`` or ``UNIQUE constraint failed``, or
    create two parents of which one is then deleted under the other's feet. The lock (an advisory
    ``flock``) serialises those steps across the processes of this machine: ``<store>.lock`` beside an
    SQLite store, a file named after the URI in the temporary folder for a server (whose writes are
    also retried, :func:`retrying`). Where no lock file can be made (read-only), it goes without one.
    """
    path = sqlite_path(uri)
    if path is not None:
        lock = path.with_name(path.name + ".lock")
    else:
        import hashlib
        import tempfile

        lock = Path(tempfile.gettempdir()) / f"psychovis-mlflow-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"
    if lock in _HELD:  # re-entered: this process holds it already
        yield
        return
    try:
        handle = open(lock, "a")  # noqa: SIM115 (held across the yield)
    except OSError:
        yield
        return
    import fcntl

    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _HELD.add(lock)
        try:
            yield
        finally:
            _HELD.discard(lock)
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD: set[Path] = set()
"""The lock files this process holds (``flock`` would wait on itself if taken twice)."""


_CONFLICTS = ("unique constraint failed", "integrityerror", "database is locked", "duplicate column name")
"""Errors of one store written by several processes at once: the write did not happen, so it can be repeated."""
_Result = TypeVar("_Result")


def _is_conflict(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(conflict in text for conflict in _CONFLICTS)


def retrying(call: Callable[[], _Result], attempts: int = 8, first_wait_s: float = 0.05) -> _Result:
    """``call()``, repeated with a growing random wait while it fails on a concurrent-write conflict.

    A conflict (a duplicate insert by another process, a locked SQLite file) leaves the store as it
    was, and the writes made here are "create if missing", so repeating one is safe: the second
    attempt finds what the other process created. Other errors are raised at once.

    Raises:
        TrackingError: the conflict persisted over ``attempts`` tries (another process holds the store).
    """
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not _is_conflict(exc):
                raise
            if attempt == attempts - 1:
                raise TrackingError(
                    f"the MLflow store stayed busy with other writers over {attempts} tries ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:200]}); the store itself is fine: run the stage again when the "
                    "other stages have finished, or give concurrent runs a tracking server"
                ) from None
            time.sleep(first_wait_s * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


class StageRun:
    """Thin wrapper over an active MLflow run (keeps mlflow imports in one place)."""

    def __init__(
        self,
        mlflow: Any,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        uri: str = "",
    ):
        self._mlflow = mlflow
        self._params = dict(params or {})
        self._tags = dict(tags or {})
        self._uri = uri

    def write(self, call: Callable[[], _Result]) -> _Result:
        """``call()`` (a write to the store), safe against other processes writing the same store.

        Under :func:`store_lock` for SQLite, repeated on a concurrent-write conflict (:func:`retrying`):
        two stages logging the same dataset at once, the case that made ``dvc queue start -j 2`` fail.
        """
        with store_lock(self._uri):
            return retrying(call)

    @property
    def run_id(self) -> str:
        """The MLflow run's id."""
        return self._mlflow.active_run().info.run_id

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """Log metrics; None and NaN values (undefined results) are left out."""
        clean = {key: float(value) for key, value in metrics.items() if value is not None and value == value}  # no NaN
        self.write(lambda: self._mlflow.log_metrics(clean, step=step))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Log a file under the run's artifact folder ``folder``."""
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_figure(self, figure: Any, path: str | Path, folder: str = "figures") -> Path:
        """Save a matplotlib figure atomically to ``path`` (see :func:`psychovis.io.save_figure`) and log it.

        Returns:
            The saved file.
        """
        from psychovis import io

        saved = Path(io.save_figure(figure, path))
        self.log_artifact(saved, folder)
        return saved

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags on the run."""
        self.write(lambda: self._mlflow.set_tags(dict(tags)))

    def log_table_input(
        self, path: str | Path, name: str | None = None, context: str = "input", md5: str | None = None
    ) -> None:
        """Log a parquet/CSV table the stage read as an MLflow dataset (``mlflow.log_input``).

        Args:
            path: the table.
            name: the dataset's name (default: ``path``), e.g. its path in the repository.
            context: the dataset's role in the run.
            md5: the file's md5 when already known (the run's ``md5.<input>`` param); else it is read.
        """
        import mlflow.data
        import pandas as pd
        from mlflow.models import infer_signature

        path = Path(path)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        with _quiet("mlflow.data"), _no_warnings():  # MLflow warns that it guessed the source's type
            # The file's md5 as the digest, and the schema from a few rows: MLflow would hash the rows and
            # visit every element of the array columns (seconds for the feature tables) to find the same.
            dataset = mlflow.data.from_pandas(
                frame, source=path.resolve().as_uri(), name=name or path.as_posix(), digest=(md5 or file_md5(path))[:8]
            )
            dataset.__dict__["schema"] = infer_signature(frame.head(8)).inputs  # fills its cached_property
            self.write(lambda: self._mlflow.log_input(dataset, context=context))

    def log_image_dataset(
        self, images: Sequence[Any], name: str = "train_images", source: str | None = None, context: str = "training"
    ) -> None:
        """Log an image set (HxWx3 arrays) as an MLflow dataset: one row per image, its size and md5 (rank 0 only).

        Args:
            images: the images, in the order they were used.
            name: the dataset's name in MLflow.
            source: where the images came from; default the run's ``train.image_dir`` param, or
                ``bundled`` (the images shipped with psychovis) when it is unset.
            context: the dataset's role in the run.
        """
        if not _rank_zero():
            return
        if source is None:
            image_dir = self._params.get("train.image_dir", "None")
            source = "bundled" if image_dir == "None" else image_dir
        import mlflow.data
        import numpy as np
        import pandas as pd

        rows = [
            {
                "index": index,
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "md5": hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest(),
            }
            for index, image in enumerate(images)
        ]
        with _quiet("mlflow.data"), _no_warnings():  # MLflow warns that it guessed the source's type
            dataset = mlflow.data.from_pandas(pd.DataFrame(rows), source=source, name=name)
            self.write(lambda: self._mlflow.log_input(dataset, context=context))

    def log_model(self, model: Any, name: str = "model") -> None:
        """Log a trained torch model with ``mlflow.pytorch.log_model`` (rank 0 only under DDP).

        A ``DistributedDataParallel`` wrapper is unwrapped. The model is pickled: loading it needs
        ``psychovis`` importable (``mlflow.pytorch.load_model("models:/<model id>")``).
        """
        if not _rank_zero():
            return
        import mlflow.pytorch
        import torch

        module = getattr(model, "module", model)
        with _quiet("mlflow.pytorch"):  # its warning about pickles is about loading untrusted files
            mlflow.pytorch.log_model(
                module,
                name=name,
                serialization_format="pickle",
                # Listing requirements ourselves skips MLflow's slow import-tracing inference.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )

    def log_parent_metrics(self, metrics: Mapping[str, float | None]) -> None:
        """Log metrics on this run's parent (the pipeline execution), e.g. the run's headline numbers.

        The runs table then shows each execution's headline on its parent row, as ``dvc exp show``
        does; None and NaN values are left out.
        """
        run = self._mlflow.active_run()
        parent = run.data.tags.get("mlflow.parentRunId") if run is not None else None
        if parent is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        clean = [
            Metric(key, float(value), now, 0) for key, value in metrics.items() if value is not None and value == value
        ]
        client = self._mlflow.MlflowClient()
        for start in range(0, len(clean), 1000):  # the REST API takes at most 1000 metrics a request
            batch = clean[start : start + 1000]
            self.write(lambda batch=batch: client.log_batch(parent, metrics=batch))

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[StageRun]:
        """A run nested under this one for one item of the stage (e.g. one evaluated method).

        It carries this run's params and execution tags, so it compares with other runs on its own.
        """
        child_tags = {**self._tags, TAG_KIND: "item", **(tags or {})}
        with store_lock(self._uri):
            active = retrying(lambda: self._mlflow.start_run(run_name=name, nested=True, tags=child_tags))
        with active:
            run = StageRun(self._mlflow, self._params, child_tags, self._uri)
            run.write(lambda: self._mlflow.log_params(self._params))
            yield run


def _rank_zero() -> bool:
    """False only in a ``torch.distributed`` process of rank > 0 (DDP: one process logs)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


STORE_LOGGER = "mlflow.store.db.utils"
"""MLflow's logger that prints a full traceback for every failed store write, before raising it."""


@contextlib.contextmanager
def _quiet(logger: str, level: int = logging.ERROR) -> Iterator[None]:
    """Only messages of at least ``level`` from ``logger`` while inside (``logging.CRITICAL + 1``: none)."""
    log = logging.getLogger(logger)
    previous = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(previous)


@contextlib.contextmanager
def _no_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


ARTIFACT_COLUMNS = {"experiments": "artifact_location", "runs": "artifact_uri", "logged_models": "artifact_location"}
"""The columns of MLflow's SQLite schema that hold absolute artifact locations."""


def relocate_artifacts(store: Path, old: str, new: str) -> int:
    """Point every artifact location in ``store`` that starts with ``old`` at ``new`` instead.

    MLflow stores local artifact locations as absolute ``file://`` URIs (a relative one is resolved
    when the experiment is created), so a copied or moved checkout whose ``mlflow.db`` came along
    would log into the original's ``mlruns/``. The copy's ``mlruns/`` holds the same files, so
    rewriting the prefix makes the copy self-contained.

    Returns:
        The number of rows rewritten.
    """
    old, new = old.rstrip("/"), new.rstrip("/")
    changed = 0
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as db, db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in ARTIFACT_COLUMNS.items():
            if table not in tables:
                continue
            cursor = db.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                (new, len(old) + 1, old, len(old) + 1, old + "/"),
            )
            changed += cursor.rowcount
    return changed


def _experiment_id(mlflow: Any, uri: str, root: Path) -> str:
    """The ``psychovis`` experiment's id, created (and marked for model training) when missing.

    Under the default store (``sqlite:///<root>/mlflow.db``) the experiment's artifacts live in
    ``<root>/mlruns``; a store copied or moved from another checkout is re-pointed there first.
    """
    client = mlflow.MlflowClient()
    experiment = retrying(lambda: client.get_experiment_by_name(EXPERIMENT))
    local = sqlite_path(uri)
    artifacts = None if local is None else (repository_root(root) / "mlruns").as_uri()
    if experiment is None:

        def create() -> None:
            try:
                client.create_experiment(
                    EXPERIMENT, artifact_location=artifacts, tags={"mlflow.experimentKind": EXPERIMENT_KIND}
                )
            except Exception as exc:
                if "already exists" not in str(exc).lower():  # else: a concurrent stage created it
                    raise

        retrying(create)
        experiment = retrying(lambda: client.get_experiment_by_name(EXPERIMENT))
    elif (
        artifacts is not None
        and local is not None
        and local.resolve() == (repository_root(root) / "mlflow.db").resolve()
        and experiment.artifact_location.startswith("file:")
        and experiment.artifact_location.rstrip("/") != artifacts
    ):
        relocate_artifacts(local, experiment.artifact_location, artifacts)
        experiment = retrying(lambda: client.get_experiment_by_name(EXPERIMENT))
    if experiment.tags.get("mlflow.experimentKind") is None:  # a kind chosen in the UI stays
        retrying(lambda: client.set_experiment_tag(experiment.experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND))
    return experiment.experiment_id


def _parents(client: Any, experiment_id: str, key: str) -> list[Any]:
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{TAG_EXECUTION}` = '{key}' and tags.`{TAG_KIND}` = 'pipeline'",
        max_results=100,
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def parent_run(client: Any, experiment_id: str, execution: Execution) -> str:
    """The id of ``execution``'s parent run, created on first use.

    Stages run in separate processes (and queued experiments in parallel), so the parent is found
    by its :attr:`Execution.key` tag. Two stages creating it at once each search again after
    creating, keep the earliest and delete their own if it lost.
    """
    found = retrying(lambda: _parents(client, experiment_id, execution.key))
    if found:
        return found[0].info.run_id
    tags = {**execution.tags, TAG_KIND: "pipeline"}
    created = retrying(lambda: client.create_run(experiment_id, run_name=execution.experiment, tags=tags))
    from mlflow.entities import Param

    flat = _flatten(execution.params)
    names = sorted(flat)
    for start in range(0, len(names), 100):  # the REST API takes at most 100 params a request
        batch = [Param(key, flat[key][:6000]) for key in names[start : start + 100]]
        retrying(lambda batch=batch: client.log_batch(created.info.run_id, params=batch))
    found = retrying(lambda: _parents(client, experiment_id, execution.key))
    winner = found[0].info.run_id if found else created.info.run_id
    if winner != created.info.run_id:
        retrying(lambda: client.delete_run(created.info.run_id))
    return winner


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    root: str | Path = ".",
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for a stage, nested under the execution's parent run.

    Logs ``params`` flattened (``section.key``), the params of every upstream stage, the md5 of
    each data input (``md5.<path>``) and its tables as datasets. A store write that fails (a
    read-only or full store) raises as usual, without MLflow's logged traceback per attempt
    (:data:`STORE_LOGGER`): the stage's one line says what failed.

    Args:
        stage: the stage script's name (tag ``stage``).
        params: the params sections the stage reads.
        root: the repository root (for the default store, ``dvc.yaml`` and the git commit).
        run_name: the run's name (default: the stage name).
        extra_tags: more tags, e.g. the loss of a training run.
    """
    with _quiet(STORE_LOGGER, logging.CRITICAL + 1):
        yield from _stage_run(stage, params, root, run_name, extra_tags)


def _stage_run(
    stage: str,
    params: Mapping[str, Any],
    root: str | Path,
    run_name: str | None,
    extra_tags: Mapping[str, str] | None,
) -> Iterator[StageRun]:
    """:func:`stage_run`'s body (a generator: the run is open while it is suspended at its ``yield``)."""
    uri = tracking_uri(root)
    check_reachable(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    execution = current_execution(root)
    lineage = stage_lineage(root)
    with store_lock(uri):  # a new SQLite store, the experiment and the parent: created by one process at a time
        experiment_id = _experiment_id(mlflow, uri, Path(root))
        retrying(lambda: mlflow.set_experiment(experiment_id=experiment_id))
        client = mlflow.MlflowClient()
        parent = parent_run(client, experiment_id, execution)
        # The parent spans the execution: running while any of its stages runs, ended by the latest.
        retrying(lambda: client.update_run(parent, status="RUNNING"))
    tags = {
        "stage": stage,
        "params_hash": params_hash(params),
        **execution.tags,
        TAG_KIND: "stage",
        **({TAG_STAGE: lineage.stage} if lineage.stage else {}),
        **({"dvc.upstream": ",".join(lineage.upstream)} if lineage.upstream else {}),
        **({"psychovis.lineage_problem": lineage.problem} if lineage.problem else {}),
        **(extra_tags or {}),
    }
    inputs = lineage.inputs[:MAX_HASHED_INPUTS]
    logged = {
        **lineage.params,
        **_flatten(params),  # the validated sections (defaults filled in) win over the raw file
        **input_md5s(lineage, root),
    }
    status = "FAILED"
    try:
        with store_lock(uri):
            active = retrying(
                lambda: mlflow.start_run(
                    experiment_id=experiment_id, run_name=run_name or stage, parent_run_id=parent, tags=tags
                )
            )
        with active:
            run = StageRun(mlflow, logged, tags, uri)
            run.write(lambda: mlflow.log_params(logged))
            for path in inputs:
                if path.endswith((".parquet", ".csv")):
                    run.log_table_input(Path(root) / path, name=path, md5=logged[f"md5.{path}"])
            yield run
        status = "FINISHED"
    finally:
        with contextlib.suppress(Exception), store_lock(uri):
            retrying(lambda: client.set_terminated(parent, status))
