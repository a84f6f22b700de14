"""PsychovisualLoss(px_per_degree=...): the network sees the images at its reference geometry (off by default)."""

import pytest
import torch

from psychovis.distances.loss import PsychovisualLoss
from psychovis.distances.plan import SharedPlan
from psychovis.errors import ParamsError


def test_geometry_aware_loss_equals_the_plain_loss_on_resampled_images():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    plain = PsychovisualLoss(layers=["relu1_2"], reduction="none")
    aware = PsychovisualLoss(layers=["relu1_2"], reduction="none", px_per_degree=120, reference_px_per_degree=60)
    half = torch.nn.functional.interpolate
    expected = plain(
        half(x, size=(32, 32), mode="bilinear", antialias=True), half(y, size=(32, 32), mode="bilinear", antialias=True)
    )
    torch.testing.assert_close(aware(x, y), expected)
    same = PsychovisualLoss(layers=["relu1_2"], reduction="none", px_per_degree=60, reference_px_per_degree=60)
    torch.testing.assert_close(same(x, y), plain(x, y))
    assert plain.px_per_degree is None  # off by default
    assert set(SharedPlan.of({"plain": plain, "aware": aware}).generic) == {"aware"}


def test_geometry_arguments_go_together_and_are_checked():
    with pytest.raises(ParamsError, match="go together"):
        PsychovisualLoss(px_per_degree=120)
    with pytest.raises(ParamsError, match="positive"):
        PsychovisualLoss(px_per_degree=-1, reference_px_per_degree=30)
    tiny = PsychovisualLoss(layers=["relu3_2"], px_per_degree=960, reference_px_per_degree=30)  # 32 px -> 1 px
    with pytest.raises(ValueError, match="smaller than"):
        tiny(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
