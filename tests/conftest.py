"""Shared test fixtures and paths: the repository root, and a real image for the loss and metric tests.

Unit tests mirror ``src/psychovis`` under ``tests/unit/``; ``tests/stages/`` runs stage scripts and
``dvc repro`` as real subprocesses (``make test-fast`` leaves out the slowest, marked ``e2e``).
"""

from __future__ import annotations

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


SHARED_REPOSITORY_FIXTURES = {"tiny_repo_built", "experiment_repo"}
"""Session fixtures that build a tiny DVC repository (minutes): their tests share one xdist worker."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (``make test``): keep each module on one worker (its module
    fixtures are built once) and every test of the session's tiny repository on one worker (it is built
    once), scheduled first, so the other workers run everything else meanwhile."""
    for item in items:
        shared = SHARED_REPOSITORY_FIXTURES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.xdist_group("tiny_repository" if shared else item.nodeid.split("::")[0]))
    items.sort(key=lambda item: not SHARED_REPOSITORY_FIXTURES & set(getattr(item, "fixturenames", ())))
