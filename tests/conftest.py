"""Shared test fixtures and paths: the repository root, and a real image for the loss and metric tests.

Unit tests mirror ``src/psychovis`` under ``tests/unit/``; ``tests/stages/`` runs stage scripts and
``dvc repro`` as real subprocesses (``make test-fast`` leaves out the slowest, marked ``e2e``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from common import BAD_IMAGE_PAIRS, CHROMIUM_FLAGS, ROOT
from skimage import data

__all__ = ["BAD_IMAGE_PAIRS", "CHROMIUM_FLAGS", "ROOT", "astronaut"]


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """A real photograph as a (1, 3, 64, 64) tensor in [0, 1] (a crop around the face)."""
    image = data.astronaut()[60:188:2, 150:278:2].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


SHARED_REPOSITORY_FIXTURES = ("tiny_repo_built", "experiment_repo")
"""Session fixtures that build a tiny DVC repository (minutes): their modules share one xdist worker."""

TESTS = Path(__file__).resolve().parent
SHARED_REPOSITORY_MODULES = frozenset(
    path.relative_to(TESTS.parent).as_posix()
    for path in sorted((TESTS / "stages").glob("test_*.py"))
    if any(name in path.read_text(encoding="utf-8") for name in SHARED_REPOSITORY_FIXTURES)
)
"""Test modules that use the session's tiny repository (read from their source, so the controller knows too)."""


def _scope(nodeid: str) -> str:
    """A test's unit of scheduling: its module, or one unit for every module of the tiny repository."""
    module = nodeid.split("::")[0]
    return "tiny_repository" if module in SHARED_REPOSITORY_MODULES else module


@pytest.hookimpl(optionalhook=True)  # only with pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N`` (``make test``): whole modules per worker (their module fixtures are built
    once), and every module of the tiny repository on one worker (the repository is built once).

    (pytest-xdist's own ``--dist loadgroup`` relies on a node-id rewrite that pytest 9 ignores.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class TinyRepositoryScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    # xdist hands out scopes by their number of tests (the tiny repository's, ~35 tests, comes about 15th of
    # 89). Keeping the collection order instead (tiny first: `config.option.loadscopereorder = False`) made no
    # detectable difference on 2 cores: 14 min 15 s, against 13 min 27 s and 15 min 30 s with xdist's order
    # (2026-12-02; the machine's noise is larger than the effect).
    return TinyRepositoryScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiny repository's tests first (a run without xdist's reordering builds it before anything else)."""
    items.sort(key=lambda item: _scope(item.nodeid) != "tiny_repository")
