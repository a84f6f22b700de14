"""Evaluation: bicubic floor and models scored on real held-out images, in long format for `compare`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from psychovis.images import bundled_images
from psychovis.sr.evaluation import BICUBIC, SCORE_COLUMNS, centre_crop, score, summary, super_resolve_all
from psychovis.sr.model import SRResNet

JUDGES = ["psnr_y", "ssim_y", "lpips_alex", "gmsd", "artefact_db"]


@pytest.fixture(scope="module")
def results() -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    images = bundled_images(["chelsea"])
    untrained = {seed: SRResNet(scale=4, channels=8, residual_blocks=1) for seed in (0, 1)}  # == bicubic at init
    models = {("untrained", seed): model for seed, model in untrained.items()}
    warm = {"warm": SRResNet(scale=4, channels=8, residual_blocks=1, upsampler="resize_conv")}
    references, outputs = super_resolve_all(models, images, scale=4, max_size=96, seedless=warm)
    per_image, per_band = score(references, outputs, JUDGES, scale=4, border=4, bands=4, progress=False)
    return references, outputs, per_image, per_band


def test_centre_crop() -> None:
    image = np.arange(10 * 12 * 3, dtype=np.float32).reshape(10, 12, 3)
    assert centre_crop(image, 4).shape == (4, 4, 3)
    np.testing.assert_array_equal(centre_crop(image, 4), image[3:7, 4:8])
    assert centre_crop(image, 100).shape == image.shape
    assert centre_crop(image, None) is image


def test_every_method_appears_under_every_seed(results) -> None:
    references, outputs, _, _ = results
    assert set(outputs) == {(BICUBIC, 0), (BICUBIC, 1), ("warm", 0), ("warm", 1), ("untrained", 0), ("untrained", 1)}
    assert references["chelsea"].shape == (96, 96, 3)
    # The untrained network's zero-initialised tail makes it exactly bicubic.
    np.testing.assert_allclose(outputs[("untrained", 1)]["chelsea"], outputs[(BICUBIC, 1)]["chelsea"], atol=1e-5)
    assert outputs[("warm", 0)]["chelsea"] is outputs[("warm", 1)]["chelsea"]  # one model, one output


def test_scores_are_long_and_pair_by_seed_and_image(results) -> None:
    _, _, per_image, per_band = results
    assert list(per_image.columns) == list(SCORE_COLUMNS)
    assert len(per_image) == 3 * 2 * len(JUDGES)  # methods x seeds x judges, one image
    assert per_image.groupby(["method", "seed"]).size().eq(len(JUDGES)).all()
    means = summary(per_image)
    assert list(means.columns) == JUDGES and set(means.index) == {BICUBIC, "warm", "untrained"}
    assert 15 < means.loc[BICUBIC, "psnr_y"] < 40 and 0.0 < means.loc[BICUBIC, "lpips_alex"] < 1.0
    assert len(per_band) == 3 * 2 * 4
    # 4x bicubic loses the high frequencies: relative error grows with frequency.
    bicubic = per_band[(per_band["method"] == BICUBIC) & (per_band["seed"] == 0)]
    errors = bicubic.sort_values("band")["relative_error_db"].to_numpy()
    assert errors[-1] > errors[0]
