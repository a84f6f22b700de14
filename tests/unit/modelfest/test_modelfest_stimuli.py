"""The ModelFest renderer against hand-computed values."""

import math

import numpy as np
import pytest

from psychovis.errors import ParamsError
from psychovis.modelfest import stimuli as mf
from psychovis.names import MODELFEST_FAMILIES


def test_gabor_matches_hand_computed_values():
    p = mf.pattern(4)  # 4 cpd, sigma 0.5 deg, cosine phase, vertical bars, 120 px/deg
    assert p.shape == (256, 256)
    assert p[128, 128] == pytest.approx(1.0)
    # 15 px right of the centre: x = 0.125 deg -> cos(2 pi 4 0.125) = cos(pi) = -1
    assert p[128, 143] == pytest.approx(-math.exp(-(0.125**2) / (2 * 0.25)), abs=1e-12)
    # 30 px above: y = -0.25 deg -> envelope only
    assert p[98, 128] == pytest.approx(math.exp(-(0.25**2) / (2 * 0.25)), abs=1e-12)
    # 6 px right: x = 0.05 deg
    x = 6 / 120
    assert p[128, 134] == pytest.approx(math.cos(2 * math.pi * 4 * x) * math.exp(-(x**2) / 0.5), abs=1e-12)


def test_every_stimulus_renders_with_unit_peak_and_families_cover_all():
    unit = mf.patterns()
    assert unit.shape == (43, 256, 256)
    np.testing.assert_allclose(np.abs(unit).reshape(43, -1).max(axis=1), 1.0, atol=1e-6)
    assert list(mf.FAMILIES) == list(MODELFEST_FAMILIES)
    assert sorted(n for members in mf.FAMILIES.values() for n in members) == list(range(1, 44))
    images = mf.images(unit[:2], np.array([0.01, 1.0]))
    assert images.shape == (2, 2, 256, 256) and images.min() >= 0 and images.max() <= 1


def test_other_geometries_keep_the_field_in_degrees():
    assert mf.canvas_size(120) == 256 and mf.canvas_size(30) == 64 and mf.canvas_size(240) == 512
    small = mf.pattern(2, px_per_degree=30)  # 2 cpd: 15 px per cycle at 30 px/deg
    assert small.shape == (64, 64) and small[32, 32] == pytest.approx(1.0)
    assert small[32, 32 + 15] == pytest.approx(math.exp(-(0.5**2) / 0.5), abs=1e-12)


def test_bad_numbers_are_one_line_errors():
    with pytest.raises(ParamsError, match=r"1\.\.43"):
        mf.pattern(44)
    with pytest.raises(ParamsError, match="px_per_degree"):
        mf.pattern(1, px_per_degree=0.0, size=64)
