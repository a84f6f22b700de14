"""Helpers for tests that drive the real ``dvc`` and ``git`` command lines on a tiny pipeline.

Not a test module; imported by test_queue_sweep and test_remote. The tiny repository holds the
project's code, a tiny params.yaml and the project's own dvc.yaml cut down to a few stages (their
commands, deps, params and outputs unchanged), committed to git with DVC initialised.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from stagekit import copy_sources, stage_env

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "psychovis tests",
    "GIT_AUTHOR_EMAIL": "tests@psychovis.invalid",
    "GIT_COMMITTER_NAME": "psychovis tests",
    "GIT_COMMITTER_EMAIL": "tests@psychovis.invalid",
}


def command(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command line (``dvc ...``, ``git ...``) and assert it succeeded."""
    result = subprocess.run(list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def tiny_repo(
    dest: Path, stages: Sequence[str], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Path, dict[str, str]]:
    """A git + DVC repository at ``dest`` with only ``stages`` of dvc.yaml; returns it and its environment.

    The environment points the stages at the repository's own ``src`` (relative, so a queued
    experiment's temporary copy runs its own copy) and at an MLflow store beside the repository.
    """
    project = copy_sources(dest, overrides)
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    pipeline["stages"] = {name: pipeline["stages"][name] for name in stages}
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (project / ".gitignore").write_text("mlruns/\n__pycache__/\n")
    env = {**stage_env(project), **GIT_IDENTITY, "PYTHONPATH": "src"}
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        command(args, project, env)
    commit(project, env, "tiny pipeline")
    return project, env


def commit(project: Path, env: Mapping[str, str], message: str) -> None:
    """``git add -A`` and commit everything (DVC-tracked outputs are ignored through DVC's .gitignore files)."""
    command(["git", "add", "-A"], project, env)
    command(["git", "commit", "-q", "-m", message], project, env)
