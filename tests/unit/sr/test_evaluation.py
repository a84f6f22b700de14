"""Evaluation: bicubic floor and models scored on real held-out images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from psychovis.images import bundled_images
from psychovis.sr.evaluation import BICUBIC, centre_crop, score, super_resolve_all
from psychovis.sr.model import SRResNet


@pytest.fixture(scope="module")
def results() -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    images = bundled_images(["chelsea"])
    model = SRResNet(scale=4, channels=8, residual_blocks=1)  # untrained: output == bicubic at init
    references, outputs = super_resolve_all({"untrained": model}, images, scale=4, max_size=64)
    per_image, per_band = score(references, outputs, border=4, bands=4, progress=False)
    return references, outputs, per_image, per_band


def test_centre_crop() -> None:
    image = np.arange(10 * 12 * 3, dtype=np.float32).reshape(10, 12, 3)
    assert centre_crop(image, 4).shape == (4, 4, 3)
    np.testing.assert_array_equal(centre_crop(image, 4), image[3:7, 4:8])
    assert centre_crop(image, 100).shape == image.shape


def test_outputs_match_references(results) -> None:
    references, outputs, _, _ = results
    assert set(outputs) == {BICUBIC, "untrained"}
    assert references["chelsea"].shape == (64, 64, 3)
    assert outputs["untrained"]["chelsea"].shape == (64, 64, 3)
    # The untrained network's zero-initialised tail makes it exactly bicubic.
    np.testing.assert_allclose(outputs["untrained"]["chelsea"], outputs[BICUBIC]["chelsea"], atol=1e-5)


def test_scores_are_sensible(results) -> None:
    _, _, per_image, per_band = results
    assert set(per_image.columns) == {"method", "image", "psnr_y", "ssim_y", "lpips_vgg"}
    bicubic = per_image.set_index("method").loc[BICUBIC]
    assert 15 < bicubic["psnr_y"] < 40
    assert 0.3 < bicubic["ssim_y"] < 1.0
    assert 0.0 < bicubic["lpips_vgg"] < 1.0
    assert len(per_band) == 2 * 4
    # 4x bicubic loses the high frequencies: relative error grows with frequency.
    errors = per_band[per_band["method"] == BICUBIC].sort_values("band")["relative_error_db"].to_numpy()
    assert errors[-1] > errors[0]
