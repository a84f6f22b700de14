"""Shared test fixtures and paths: the repository root, and a real image for the loss and metric tests.

Unit tests mirror ``src/psychovis`` under ``tests/unit/``; ``tests/stages/`` runs stage scripts and
``dvc repro`` as real subprocesses (``make test-fast`` leaves out the slowest, marked ``e2e``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (``dvc.yaml``, ``params.yaml``, ``stages/``)."""


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """A real photograph as a (1, 3, 64, 64) tensor in [0, 1] (a crop around the face)."""
    image = data.astronaut()[60:188:2, 150:278:2].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


BAD_IMAGE_PAIRS = [
    (torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32), r"x values span .* expected \[0, 1\]"),
    (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32) * 255, r"y values span"),
    (torch.rand(3, 32, 32), torch.rand(3, 32, 32), r"shape \(N, 3, H, W\)"),
    (torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), r"shape \(N, 3, H, W\)"),
    (torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32), "shapes differ"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating-point"),
    (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), "at least 16x16"),
    (torch.rand(0, 3, 32, 32), torch.rand(0, 3, 32, 32), "empty batch"),
    (np.zeros((1, 3, 32, 32)), torch.rand(1, 3, 32, 32), "torch.Tensor"),
    (torch.full((1, 3, 32, 32), float("nan")), torch.rand(1, 3, 32, 32), "NaN"),
]
"""Bad ``(x, y)`` inputs of an image metric and the message each must raise (LPIPS, DISTS)."""


# Headless Chromium, offline and quiet: the flags every browser check uses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
