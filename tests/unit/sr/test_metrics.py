"""Tests of psychovis.sr.metrics: PSNR/SSIM on luma, band errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from skimage import data

from psychovis.sr.metrics import frequency_band_errors, psnr_y, rgb_to_y, ssim_y

Y_GAIN = 65.481 + 128.553 + 24.966  # an equal change d of R, G and B changes Y by 219 d


def astronaut_crop(size: int = 96, top: int = 40, left: int = 180) -> np.ndarray:
    """A real RGB crop in [0.25, 0.75], so small perturbations stay inside [0, 1]."""
    image = data.astronaut()[top : top + size, left : left + size].astype(np.float64) / 255.0
    return 0.25 + 0.5 * image


def with_luma_noise(image: np.ndarray, sigma_255: float, seed: int = 0) -> np.ndarray:
    """Add the same Gaussian noise to R, G and B so that Y gets noise of std ``sigma_255``."""
    noise = np.random.default_rng(seed).standard_normal(image.shape[:2]) * sigma_255 / Y_GAIN
    noisy = image + noise[..., None]
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0, "noise must not clip for the expected PSNR to hold"
    return noisy


# ---------------------------------------------------------------------------------------- luma


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((0.0, 0.0, 0.0), 16.0),
        ((1.0, 1.0, 1.0), 235.0),
        ((1.0, 0.0, 0.0), 16.0 + 65.481),
        ((0.0, 1.0, 0.0), 16.0 + 128.553),
        ((0.0, 0.0, 1.0), 16.0 + 24.966),
        ((0.5, 0.5, 0.5), 125.5),
    ],
)
def test_rgb_to_y_matches_bt601(rgb: tuple[float, float, float], expected: float) -> None:
    image = np.broadcast_to(np.asarray(rgb), (4, 5, 3)).copy()
    y = rgb_to_y(image)
    assert y.shape == (4, 5)
    np.testing.assert_allclose(y, expected, atol=1e-9)


def test_rgb_to_y_rejects_uint8() -> None:
    with pytest.raises(ValueError, match=r"float array.*uint8"):
        rgb_to_y(data.astronaut()[:8, :8])


# ---------------------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("sigma_255", [2.0, 5.0, 10.0])
def test_psnr_of_known_noise_level(sigma_255: float) -> None:
    target = astronaut_crop(128)
    noisy = with_luma_noise(target, sigma_255)
    expected = 20.0 * math.log10(255.0 / sigma_255)
    # 16k pixels: the sample variance is within ~1 % of sigma^2, i.e. ~0.05 dB.
    assert psnr_y(noisy, target, border=0) == pytest.approx(expected, abs=0.1)
    # And exactly the textbook formula on the noise actually drawn.
    mse = np.mean((rgb_to_y(noisy) - rgb_to_y(target)) ** 2)
    assert psnr_y(noisy, target, border=0) == pytest.approx(10 * math.log10(255.0**2 / mse), rel=1e-12)


def test_psnr_of_identical_images_is_inf() -> None:
    target = astronaut_crop(32)
    # Documented: math.inf (not a capped large value), and no divide-by-zero warning.
    with np.errstate(all="raise"):
        assert psnr_y(target, target.copy(), border=4) == math.inf


def test_border_shaving_only_removes_the_border() -> None:
    target = astronaut_crop(64)
    border = 4
    interior = (slice(border, -border), slice(border, -border))
    noisy = with_luma_noise(target, 5.0)

    # Damage confined to the border: invisible once shaved, visible without shaving.
    border_damage = target.copy()
    border_damage[:border] = 0.0
    border_damage[:, -border:] = 1.0
    assert psnr_y(border_damage, target, border=border) == math.inf
    assert psnr_y(border_damage, target, border=0) < 20.0

    # Interior unchanged, border changed: the shaved PSNR is the same.
    mixed = border_damage.copy()
    mixed[interior] = noisy[interior]
    assert psnr_y(mixed, target, border=border) == pytest.approx(psnr_y(noisy, target, border=border), rel=1e-12)
    assert ssim_y(mixed, target, border=border) == pytest.approx(ssim_y(noisy, target, border=border), rel=1e-12)
    # ...and equals the metric of the interior crops with no shaving.
    assert psnr_y(noisy, target, border=border) == pytest.approx(
        psnr_y(noisy[interior], target[interior], border=0), rel=1e-12
    )


# ---------------------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one_and_decreases_with_noise() -> None:
    target = astronaut_crop(96)
    assert ssim_y(target, target.copy(), border=4) == pytest.approx(1.0, abs=1e-12)
    scores = [ssim_y(with_luma_noise(target, sigma), target, border=4) for sigma in (1.0, 4.0, 10.0)]
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.0


def test_ssim_uses_sr_paper_settings() -> None:
    from skimage.metrics import structural_similarity

    target = astronaut_crop(64)
    noisy = with_luma_noise(target, 6.0)
    expected = structural_similarity(
        rgb_to_y(target)[2:-2, 2:-2],
        rgb_to_y(noisy)[2:-2, 2:-2],
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim_y(noisy, target, border=2) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("metric", [psnr_y, ssim_y])
@pytest.mark.parametrize(
    ("prediction", "target", "border", "message"),
    [
        (np.zeros((32, 32, 3)), np.zeros((32, 30, 3)), 0, "shapes differ"),
        (np.zeros((32, 32)), np.zeros((32, 32)), 0, "3 \\(RGB\\) channels"),
        (np.zeros((2, 32, 32, 3)), np.zeros((2, 32, 32, 3)), 0, "shape \\(H, W, 3\\)"),
        (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), 0, "float array"),
        (np.full((32, 32, 3), 255.0), np.zeros((32, 32, 3)), 0, "prediction values span \\[255, 255\\]"),
        (np.zeros((32, 32, 3)), np.full((32, 32, 3), -1.0), 0, "target values span"),
        (np.full((32, 32, 3), np.nan), np.zeros((32, 32, 3)), 0, "NaN"),
        (np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), -1, "border must be >= 0"),
        (np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), 16, "border=16 leaves 0x0"),
        (np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), 2.0, "border must be an integer"),
        ([[0.0]], np.zeros((32, 32, 3)), 0, "numpy array"),
    ],
)
def test_metrics_reject_bad_input(metric, prediction, target, border, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metric(prediction, target, border=border)


def test_small_overshoot_is_tolerated_but_large_is_not() -> None:
    target = astronaut_crop(32)
    overshoot = target.copy()
    overshoot[0, 0] = 1.0005  # float noise of a clamped output: accepted and clipped
    assert math.isfinite(psnr_y(overshoot, target, border=0))
    overshoot[0, 0] = 1.01
    with pytest.raises(ValueError, match="expected \\[0, 1\\]"):
        psnr_y(overshoot, target, border=0)


def test_ssim_needs_room_for_its_window() -> None:
    image = astronaut_crop(32)
    assert ssim_y(image, image, border=10) == pytest.approx(1.0)  # 12x12 left, window 11
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_y(image, image, border=11)


# ---------------------------------------------------------------------------------------- frequency bands


def test_sinusoidal_error_lands_in_its_band() -> None:
    height, width = 96, 128
    target = 0.2 + 0.6 * astronaut_crop(128)[:height, :width]
    rows, columns = np.mgrid[0:height, 0:width]
    fy, fx = 12 / height, 20 / width  # exact FFT bins: radius ~0.191 cycles/pixel
    sinusoid = 0.05 * np.sin(2 * np.pi * (fy * rows + fx * columns) + 0.3)
    prediction = target + sinusoid[..., None]
    table = frequency_band_errors(prediction, target, bands=8)

    radius = math.hypot(fy, fx)
    holder = table[(table.low_cpp <= radius) & (radius < table.high_cpp)]
    assert len(holder) == 1
    share = table.error_power * table.n_frequencies / (table.error_power * table.n_frequencies).sum()
    assert float(share[holder.index[0]]) > 0.999
    # Parseval: summed over the band's bins, the power is pixels * MSE of the luma error (A^2 / 2).
    amplitude = 0.05 * Y_GAIN
    band_total = float(holder.error_power.iloc[0] * holder.n_frequencies.iloc[0])
    assert band_total / (height * width) == pytest.approx(amplitude**2 / 2, rel=1e-9)


def test_identical_images_have_no_error_power() -> None:
    target = astronaut_crop(64)
    table = frequency_band_errors(target, target.copy(), bands=6)
    assert (table.error_power == 0).all()
    assert (table.signal_power > 0).all()
    assert np.isneginf(table.relative_error_db).all()


def test_bands_cover_lowest_frequency_to_nyquist() -> None:
    height, width = 48, 64
    target = astronaut_crop(64)[:height, :width]
    prediction = with_luma_noise(target, 3.0)
    table = frequency_band_errors(prediction, target, bands=5)
    assert list(table.columns[:4]) == ["band", "low_cpp", "high_cpp", "center_cpp"]
    assert {"error_power", "signal_power", "relative_error_db", "n_frequencies"} <= set(table.columns)
    assert list(table.band) == [0, 1, 2, 3, 4]
    assert table.low_cpp.iloc[0] == 1 / 48
    assert table.high_cpp.iloc[-1] == 0.5
    np.testing.assert_array_equal(table.low_cpp.to_numpy()[1:], table.high_cpp.to_numpy()[:-1])
    np.testing.assert_allclose(np.diff(np.log(table.high_cpp)), np.log(24) / 5)
    # Every FFT bin with 1/48 <= radius <= 0.5 is counted once.
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    assert table.n_frequencies.sum() == int(((radius >= 1 / 48) & (radius <= 0.5)).sum())
    # White noise of std 3: flat expected error power of sigma^2 = 9 per bin (Parseval); bands
    # with many bins are close to it, and so is the bin-weighted mean over all bands.
    many = table.n_frequencies >= 200
    assert many.sum() >= 2
    np.testing.assert_allclose(table.error_power[many], 9.0, rtol=0.2)
    assert np.average(table.error_power, weights=table.n_frequencies) == pytest.approx(9.0, rel=0.05)
    expected_db = 10 * np.log10(table.error_power / table.signal_power)
    np.testing.assert_allclose(table.relative_error_db, expected_db)
    assert isinstance(table, pd.DataFrame)


def test_empty_band_is_nan_not_an_error() -> None:
    target = astronaut_crop(16)
    table = frequency_band_errors(with_luma_noise(target, 2.0), target, bands=40)
    empty = table.n_frequencies == 0
    assert empty.any()
    assert table.error_power[empty].isna().all()
    assert table.n_frequencies.sum() > 0


@pytest.mark.parametrize(
    ("bands", "shape", "message"),
    [
        (0, (16, 16, 3), "bands must be an integer >= 1"),
        (2.5, (16, 16, 3), "bands must be an integer >= 1"),
        (4, (1, 16, 3), "at least 2x2"),
    ],
)
def test_frequency_band_errors_reject_bad_input(bands, shape: tuple[int, ...], message: str) -> None:
    image = np.full(shape, 0.5)
    with pytest.raises(ValueError, match=message):
        frequency_band_errors(image, image, bands=bands)


def test_frequency_band_errors_reject_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        frequency_band_errors(np.zeros((16, 16, 3)), np.zeros((16, 18, 3)), bands=3)
