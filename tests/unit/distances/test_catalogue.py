"""The distance catalogue: every name builds, and a k larger than a layer is refused, not clamped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psychovis.distances import build_distances
from psychovis.errors import ParamsError
from psychovis.names import DISTANCES

SCORES = {"relu3_2": np.random.default_rng(0).gamma(2.0, 3.0, 256)}


def test_every_distance_builds_and_scores_a_pair() -> None:
    distances = build_distances(SCORES, k=8, include=DISTANCES)
    assert list(distances) == list(DISTANCES)
    reference = torch.full((2, 3, 64, 64), 0.5)
    distorted = reference + 0.1 * torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for name, distance in distances.items():
        value = torch.as_tensor(distance(reference, distorted.clamp(0, 1))).reshape(-1)
        assert value.shape == (2,) and torch.isfinite(value).all() and (value > 0).all(), name


def test_k_larger_than_the_layer_names_the_parameter() -> None:
    with pytest.raises(ParamsError, match=r"psychophysics\.top_k must be .*256.*got 300"):
        build_distances(SCORES, k=300, include=["topk"], k_key="psychophysics.top_k")
