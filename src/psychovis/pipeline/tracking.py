"""MLflow logging for stages: one run per stage, tagged with the stage, git commit and params hash.

The store is ``$MLFLOW_TRACKING_URI`` when set (a team server), else ``sqlite:///mlflow.db`` at
the repository root with artifacts under ``mlruns/``. Browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from psychovis.errors import TrackingError
from psychovis.pipeline.params import params_hash

EXPERIMENT = "psychovis"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def tracking_uri(root: str | Path = ".") -> str:
    """``$MLFLOW_TRACKING_URI`` or the repository's ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def git_commit(root: str | Path = ".") -> str:
    """The current commit (``unknown`` outside git), marked ``-dirty`` when the tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before heavy work, when an HTTP tracking server does not answer."""
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


class StageRun:
    """Thin wrapper over an active MLflow run (keeps mlflow imports in one place)."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {key: float(value) for key, value in metrics.items() if value == value}  # drop NaN
        self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    root: str | Path = ".",
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for a stage; params are logged flattened (``section.key``).

    Args:
        stage: the DVC stage name (tag ``stage``).
        params: the params sections the stage reads.
        root: the repository root (for the default store and the git commit).
        run_name: the run's name (default: the stage name).
        extra_tags: more tags, e.g. the loss of a training run.
    """
    uri = tracking_uri(root)
    check_reachable(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = None if uri.startswith(("http://", "https://")) else (Path(root).resolve() / "mlruns").as_uri()
        with contextlib.suppress(Exception):  # a concurrent stage may have created it
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)
    tags = {
        "stage": stage,
        "git_commit": git_commit(root),
        "params_hash": params_hash(params),
        "dvc.experiment": os.environ.get("DVC_EXP_NAME") or "workspace",  # set by `dvc exp run`
        **(extra_tags or {}),
    }
    with mlflow.start_run(run_name=run_name or stage, tags=tags):
        mlflow.log_params(_flatten(params))
        yield StageRun(mlflow)
