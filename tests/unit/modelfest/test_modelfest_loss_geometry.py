"""PsychovisualLoss(px_per_degree=...): the network sees the images at its reference geometry (off by default)."""

import pytest
import torch

from psychovis.distances.loss import PsychovisualLoss
from psychovis.distances.plan import SharedPlan
from psychovis.errors import ParamsError


def test_geometry_aware_loss_equals_the_plain_loss_on_resampled_images():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    aware = PsychovisualLoss(layers=["relu1_2"], reduction="none", px_per_degree=120, reference_px_per_degree=60)
    assert set(SharedPlan.of({"aware": aware}).generic) == {"aware"}  # never served by a shared pass
    got = aware(x, y)
    resize = torch.nn.functional.interpolate
    x_half = resize(x, size=(32, 32), mode="bilinear", antialias=True)
    y_half = resize(y, size=(32, 32), mode="bilinear", antialias=True)
    aware.px_per_degree = aware.reference_px_per_degree  # the same module, no resampling: the plain loss
    torch.testing.assert_close(got, aware(x_half, y_half))
    aware.px_per_degree, aware.min_size = 120.0, 40  # 64 px at 120 -> 32 px at 60: below the minimum
    with pytest.raises(ValueError, match="smaller than"):
        aware(x, y)


def test_geometry_is_off_by_default_and_its_arguments_go_together():
    assert PsychovisualLoss.__init__.__kwdefaults__ == {"px_per_degree": None, "reference_px_per_degree": None}
    with pytest.raises(ParamsError, match="go together"):
        PsychovisualLoss(px_per_degree=120)
    with pytest.raises(ParamsError, match="positive"):
        PsychovisualLoss(px_per_degree=-1, reference_px_per_degree=30)
