"""The stage tests' session fixtures: ONE tiny git + DVC repository, built by one ``dvc repro``.

Modules that only read it take :func:`tiny_repo_built`; modules that change it (rerun stages, run
experiments, write files) take a copy (:meth:`stagekit.Repo.copy`: ``cp -a`` of the built tree, its
DVC cache included, so the copy is up to date and reruns nothing). :func:`experiment_repo` is one such
copy, after the :data:`stagekit.EXPERIMENTS` ran in it.

pytest imports this file as ``conftest`` too (it replaces ``tests/conftest.py`` in ``sys.modules``), so
it re-exports the shared constants: ``from conftest import ROOT`` works from any test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from common import BAD_IMAGE_PAIRS, CHROMIUM_FLAGS, ROOT
from stagekit import EXPERIMENTS, Repo, build_repo, experiment_baseline, mlflow_server, stages_run

__all__ = ["BAD_IMAGE_PAIRS", "CHROMIUM_FLAGS", "ROOT", "experiment_repo", "server", "tiny_repo_built"]


@pytest.fixture(scope="session")
def tiny_repo_built(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The session's tiny repository after ``dvc repro`` (committed; params traces beside it). Read only."""
    return build_repo(tmp_path_factory.mktemp("tiny_repo"))


@pytest.fixture(scope="session")
def experiment_repo(tiny_repo_built: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A copy of :func:`tiny_repo_built` (on :data:`stagekit.EXPERIMENT_BASELINE`) after ``dvc exp run`` of each
    of :data:`EXPERIMENTS`; ``reran`` per name."""
    repo = experiment_baseline(tiny_repo_built.copy(tmp_path_factory.mktemp("experiments")))
    for name, overrides in EXPERIMENTS:
        flags = [item for override in overrides for item in ("-S", override)]
        repo.reran[name] = stages_run(repo.check("dvc", "exp", "run", "-n", name, *flags))
    return repo


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A fresh ``mlflow server`` (its own SQLite store in ``tmp_path``); skips the test if it cannot start."""
    with mlflow_server(tmp_path, tmp_path / "server.db", skip_if_down=True) as url:
        yield url
