"""Tests of psychovis.sr.judges (the evaluation's judge catalogue) and sr.metrics.periodic_artefact_db.

LPIPS-AlexNet against the ``lpips`` package's own forward is tested in
``tests/unit/distances/test_lpips.py::test_lpips_alexnet_matches_lpips_package``; DISTS against
``DISTS_pytorch`` in ``tests/unit/distances/test_dists.py``. Here: the catalogue, the wiring of each
judge (argument order, border, dtype) and the artefact measure.
"""

from __future__ import annotations

import math

import numpy as np
import piq
import pytest
import torch
from scipy import ndimage
from skimage import data

from psychovis import names
from psychovis.distances.dists import DISTS
from psychovis.errors import ParamsError
from psychovis.registry import JUDGE_RECORDS as JUDGES
from psychovis.registry import JudgeRecord as Judge
from psychovis.sr import judges as judges_module
from psychovis.sr.judges import MS_SSIM_MIN_SIZE, Judges
from psychovis.sr.metrics import periodic_artefact_db, periodic_artefact_min_size, psnr_y, ssim_y

SIZE = 176  # MS-SSIM needs 161 px after shaving the 4-px border; a multiple of the scale
SCALE = 4
BORDER = 4


def astronaut_crop(size: int = SIZE, top: int = 20, left: int = 160) -> np.ndarray:
    """A real RGB crop (the astronaut's face), float64 in [0, 1]."""
    return data.astronaut()[top : top + size, left : left + size].astype(np.float64) / 255.0


def blurred(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))


def smooth_image(size: int = 128) -> np.ndarray:
    """A smooth real image in [0.25, 0.75]: room for small additive patterns without clipping."""
    return 0.25 + 0.5 * blurred(astronaut_crop(size), sigma=3.0)


def checkerboard(size: int, amplitude: float, seed: int = 0) -> np.ndarray:
    """A zero-mean random 4x4 tile repeated over the image: power at every multiple of 1/4 cycles/pixel."""
    tile = np.random.default_rng(seed).standard_normal((4, 4))
    tile = (tile - tile.mean()) / np.abs(tile - tile.mean()).max()
    return amplitude * np.tile(tile, (size // 4, size // 4))[..., None]


def smooth_noise(size: int, sigma: float, amplitude: float, seed: int) -> np.ndarray:
    """Gaussian-blurred white noise: an error with a smooth spectrum and no period."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), sigma)
    return amplitude * noise[..., None]


@pytest.fixture(scope="module")
def all_judges() -> Judges:
    return Judges(names.JUDGES, scale=SCALE, border=BORDER)


# ---------------------------------------------------------------------------------------- catalogue


def test_catalogue_matches_the_vocabulary() -> None:
    assert tuple(JUDGES) == names.JUDGES
    assert all(isinstance(judge, Judge) and judge.name == name for name, judge in JUDGES.items())
    assert {name for name, judge in JUDGES.items() if judge.shares_loss_backbone} == {"lpips_vgg", "dists"}
    assert "L2 pooling" in JUDGES["dists"].description
    distances = {name for name, judge in JUDGES.items() if not judge.higher_is_better}
    assert distances == {"lpips_vgg", "lpips_alex", "dists", "gmsd", "artefact_db"}
    with pytest.raises(AttributeError):
        JUDGES["psnr_y"].higher_is_better = False  # frozen


def test_unknown_judge_lists_the_allowed_ones() -> None:
    with pytest.raises(ParamsError, match=r"unknown judge\(s\) \['fsim'\]; allowed: psnr_y, ssim_y, lpips_vgg"):
        Judges(["psnr_y", "fsim"], scale=SCALE, border=BORDER)
    with pytest.raises(ParamsError, match="no judge given; allowed: psnr_y"):
        Judges([], scale=SCALE, border=BORDER)
    with pytest.raises(ParamsError, match="must not repeat"):
        Judges(["gmsd", "gmsd"], scale=SCALE, border=BORDER)
    with pytest.raises(ParamsError, match="scale must be an integer >= 2"):
        Judges(["artefact_db"], scale=1, border=BORDER)
    with pytest.raises(ParamsError, match="border must be an integer >= 0"):
        Judges(["psnr_y"], scale=SCALE, border=-1)


# ---------------------------------------------------------------------------------------- scores


def test_identical_images_get_the_best_value_of_every_judge(all_judges: Judges) -> None:
    image = astronaut_crop()
    scores = all_judges(image, image.copy())
    assert list(scores) == list(names.JUDGES)
    assert scores["psnr_y"] == math.inf
    for name in ("ssim_y", "ms_ssim", "haarpsi", "vif"):
        assert scores[name] == pytest.approx(1.0, abs=1e-5), name
    for name in ("lpips_vgg", "lpips_alex", "dists", "gmsd", "artefact_db"):
        assert scores[name] == pytest.approx(0.0, abs=1e-5), name


def test_a_blurred_image_scores_worse_on_every_fidelity_judge(all_judges: Judges) -> None:
    image = astronaut_crop()
    original = all_judges(image, image)
    degraded = all_judges(blurred(image), image)
    # artefact_db is no fidelity measure: blur adds no periodic error, and it stays near 0 dB.
    assert abs(degraded["artefact_db"]) < 3.0
    for judge in all_judges.judges:
        if judge.name == "artefact_db":
            continue
        worse = degraded[judge.name] < original[judge.name] - 1e-3
        better = degraded[judge.name] > original[judge.name] + 1e-3
        assert worse if judge.higher_is_better else better, (judge.name, original[judge.name], degraded[judge.name])


def test_checkerboard_raises_artefact_db() -> None:
    judges = Judges(["artefact_db"], scale=SCALE, border=BORDER)
    target = smooth_image(SIZE)
    noise = smooth_noise(SIZE, sigma=1.0, amplitude=0.01, seed=1)
    plain = judges(target + noise, target)["artefact_db"]
    checkered = judges(target + noise + checkerboard(SIZE, 0.01), target)["artefact_db"]
    assert checkered > plain + 6.0


def test_each_judge_is_wired_as_documented(all_judges: Judges) -> None:
    """Every score equals its function applied directly to the border-shaved pair (order: prediction, target)."""
    target = astronaut_crop()
    prediction = np.clip(blurred(target, 1.0) + smooth_noise(SIZE, 0.7, 0.05, seed=2), 0, 1)
    scores = all_judges(prediction, target)
    inner = slice(BORDER, SIZE - BORDER)
    x, y = (
        torch.from_numpy(np.ascontiguousarray(image[inner, inner].transpose(2, 0, 1)))[None].float()
        for image in (prediction, target)
    )
    networks = all_judges.networks
    assert (networks["lpips_vgg"].backbone, networks["lpips_alex"].backbone) == ("vgg16", "alexnet")
    assert isinstance(networks["dists"], DISTS)
    with torch.no_grad():
        direct = {
            "psnr_y": psnr_y(prediction, target, BORDER),
            "ssim_y": ssim_y(prediction, target, BORDER),
            "lpips_vgg": float(networks["lpips_vgg"](x, y)[0]),
            "lpips_alex": float(networks["lpips_alex"](x, y)[0]),
            "dists": float(networks["dists"](x, y)[0]),
            "ms_ssim": float(piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none")[0]),
            "haarpsi": float(piq.haarpsi(x, y, data_range=1.0, reduction="none")[0]),
            "vif": float(piq.vif_p(x, y, data_range=1.0, reduction="none")[0]),
            "gmsd": float(piq.gmsd(x, y, data_range=1.0, reduction="none")[0]),
            "artefact_db": periodic_artefact_db(prediction[inner, inner], target[inner, inner], SCALE),
        }
    assert scores == pytest.approx(direct, rel=1e-6, abs=1e-7)
    # VIF is asymmetric: swapping the reference must change it, so the order above matters.
    assert float(piq.vif_p(y, x, data_range=1.0, reduction="none")[0]) != pytest.approx(scores["vif"], rel=1e-3)


def test_networks_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    class CountingNetwork(torch.nn.Module):
        """Stands in for LPIPS / DISTS: records each construction, scores 0."""

        def __init__(self, backbone: str = "vgg16") -> None:
            super().__init__()
            built.append(backbone)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0])

    monkeypatch.setattr(judges_module, "LPIPS", CountingNetwork)
    monkeypatch.setattr(judges_module, "DISTS", lambda: CountingNetwork("dists"))
    judges = Judges(["lpips_vgg", "lpips_alex", "dists", "gmsd"], scale=SCALE, border=BORDER)
    networks = dict(judges.networks)
    image = astronaut_crop(48)
    for distorted in (image, blurred(image), np.roll(image, 1, axis=0)):
        assert judges(distorted, image)["dists"] == 0.0
    assert sorted(built) == ["alexnet", "dists", "vgg16"]
    assert judges.networks == networks


@pytest.mark.slow
def test_a_prepared_reference_scores_as_the_pair(all_judges: Judges) -> None:
    """Reference features computed once (``reference`` then ``score``) give the pair's scores to float noise."""
    target = astronaut_crop()
    reference = all_judges.reference(target)
    for prediction in (blurred(target), np.clip(target + smooth_noise(SIZE, 0.7, 0.05, seed=3), 0, 1)):
        x, y = (
            torch.from_numpy(np.ascontiguousarray(image[BORDER:-BORDER, BORDER:-BORDER].transpose(2, 0, 1)))[None]
            for image in (prediction, target)
        )
        scores = all_judges.score(prediction, reference)
        with torch.no_grad():
            for name in ("lpips_vgg", "lpips_alex", "dists"):
                assert scores[name] == pytest.approx(
                    float(all_judges.networks[name](x.float(), y.float())[0]), rel=1e-5
                )
        assert scores == pytest.approx(all_judges(prediction, target), rel=1e-6)


def test_min_sizes_come_from_the_records() -> None:
    for scale in (2, 3, 4):
        assert JUDGES["artefact_db"].minimum_side(scale) == periodic_artefact_min_size(scale)
    judges = Judges(["ms_ssim", "vif"], scale=SCALE, border=BORDER)
    assert judges.min_sizes == {"ms_ssim": MS_SSIM_MIN_SIZE, "vif": 41}


def test_judges_reject_bad_images() -> None:
    judges = Judges(["psnr_y", "ms_ssim"], scale=SCALE, border=BORDER)
    small = astronaut_crop(MS_SSIM_MIN_SIZE)  # too small once 4 px are shaved off each side
    with pytest.raises(ParamsError, match=r"\['ms_ssim'\] need images of at least 161x161 pixels after shaving 4"):
        judges(small, small)
    image = astronaut_crop()
    with pytest.raises(ValueError, match="shapes differ"):
        judges(image[:-4], image)
    with pytest.raises(ValueError, match=r"float array in \[0, 1\]"):
        judges((image * 255).astype(np.uint8), image)
    with pytest.raises(ValueError, match=r"values span .* expected \[0, 1\]"):
        judges(image * 255, image)


# ---------------------------------------------------------------------------------------- periodic_artefact_db


def test_periodic_pattern_gives_large_db_and_smooth_error_about_zero() -> None:
    size = 128
    target = smooth_image(size)
    assert periodic_artefact_db(target + checkerboard(size, 0.01), target, SCALE) > 30.0
    smooth_errors = [
        periodic_artefact_db(target + smooth_noise(size, sigma=1.0, amplitude=0.02, seed=seed), target, SCALE)
        for seed in range(4)
    ]
    assert max(abs(value) for value in smooth_errors) < 2.5
    assert abs(float(np.mean(smooth_errors))) < 1.5
    # A checkerboard on top of the smooth error stands out, and more so the stronger it is.
    noise = smooth_noise(size, sigma=1.0, amplitude=0.02, seed=0)
    with_pattern = [
        periodic_artefact_db(target + noise + checkerboard(size, amplitude), target, SCALE)
        for amplitude in (0.0, 0.005, 0.02)
    ]
    assert with_pattern == sorted(with_pattern)
    assert with_pattern[-1] > with_pattern[0] + 10.0


def test_periodic_artefact_db_ignores_a_global_offset_and_identical_images() -> None:
    target = smooth_image(96)
    prediction = target + smooth_noise(96, 1.0, 0.02, seed=5) + checkerboard(96, 0.005)
    reference = periodic_artefact_db(prediction, target, SCALE)
    assert periodic_artefact_db(prediction + 0.1, target, SCALE) == pytest.approx(reference, abs=1e-6)
    assert periodic_artefact_db(target, target.copy(), SCALE) == 0.0


def test_periodic_artefact_db_finds_the_period_of_its_scale() -> None:
    # A period-2 pattern is an artefact at scale 2 and at scale 4 (1/2 is a multiple of 1/4);
    # a period-4 pattern at scale 2 sits between the scale-2 peaks and changes nothing.
    size = 96
    target = smooth_image(size)
    noise = smooth_noise(size, 1.0, 0.02, seed=7)
    rows, columns = np.indices((size, size))
    period_two = 0.01 * ((rows + columns) % 2 - 0.5)[..., None]
    period_four = 0.01 * np.cos(np.pi * columns / 2)[..., None]
    assert periodic_artefact_db(target + noise + period_two, target, 2) > 10.0
    assert periodic_artefact_db(target + noise + period_two, target, 4) > 1.0
    baseline = periodic_artefact_db(target + noise, target, 2)
    assert abs(periodic_artefact_db(target + noise + period_four, target, 2) - baseline) < 1.0


def test_periodic_artefact_db_checks_its_inputs() -> None:
    image = smooth_image(64)
    with pytest.raises(ParamsError, match="scale must be an integer >= 2"):
        periodic_artefact_db(image, image, 1)
    assert periodic_artefact_min_size(SCALE) == 44
    with pytest.raises(ParamsError, match=r"at least 44x44 pixels at scale 4, got 40x40"):
        periodic_artefact_db(image[:40, :40], image[:40, :40], SCALE)
    with pytest.raises(ValueError, match="shapes differ"):
        periodic_artefact_db(image[:48], image, SCALE)
