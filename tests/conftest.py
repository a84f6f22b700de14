"""Shared fixtures: real images and the real offline VGG-16, built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """A real photograph as a (1, 3, 64, 64) tensor in [0, 1] (a crop around the face)."""
    image = data.astronaut()[60:188:2, 150:278:2].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
