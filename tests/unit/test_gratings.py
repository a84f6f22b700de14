"""Tests of psychovis.gratings: the paper preset, frequency mappings and rendering."""

import math

import numpy as np
import pytest
import torch

from psychovis import gratings
from psychovis.errors import ParamsError

# The authors' MATLAB constants: viewing distance (in) and display resolution (px/in).
D, RES = 103.35, 89.7
PAPER_CPP_PER_CPD = 3.14 * D * RES / 18000 / 100  # 0.0161719...


def test_frequency_axis_is_the_paper_matlab_colon():
    f = gratings.frequency_axis(0.1, 30, 0.5)
    assert f.shape == (60,)
    assert f[0] == pytest.approx(0.1)
    assert f[-1] == pytest.approx(29.6)
    np.testing.assert_allclose(np.diff(f), 0.5)
    assert f.max() <= 30


def test_frequency_axis_includes_stop_despite_rounding():
    # (0.3 - 0.1) / 0.1 is 1.9999999999999998 in floating point; MATLAB's 0.1:0.1:0.3 has 3 values.
    np.testing.assert_allclose(gratings.frequency_axis(0.1, 0.3, 0.1), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(gratings.frequency_axis(0.0, 1.0, 0.25), [0.0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize(("start", "stop", "step"), [(0.1, 30, 0), (0.1, 30, -0.5), (5, 1, 0.5)])
def test_frequency_axis_rejects_bad_ranges(start, stop, step):
    with pytest.raises(ParamsError):
        gratings.frequency_axis(start, stop, step)


def test_paper_mapping_multiplies_by_the_code_constant():
    assert math.isclose(PAPER_CPP_PER_CPD, 0.0161719, rel_tol=1e-5)
    f = np.array([0.1, 1.0, 10.0, 29.6])
    np.testing.assert_allclose(gratings.cycles_per_pixel(f, "paper"), f * PAPER_CPP_PER_CPD, rtol=1e-12)
    # The highest paper frequency sits just below Nyquist.
    assert float(gratings.cycles_per_pixel(29.6)) == pytest.approx(0.4787, abs=5e-4)


def test_physical_mapping_divides_by_pixels_per_degree():
    ppd = gratings.pixels_per_degree(D, RES)
    # One degree at 103.35 in spans 103.35 * 89.7 * pi / 180 ~ 161.8 px (small-angle approximation).
    assert ppd == pytest.approx(D * RES * math.pi / 180, rel=1e-4)
    assert ppd == pytest.approx(161.7, abs=0.2)
    f = np.array([0.1, 8.0, 29.6])
    np.testing.assert_allclose(gratings.cycles_per_pixel(f, "physical"), f / ppd, rtol=1e-12)
    # The two mappings differ by a factor of about 2.6 (they are not the same mapping).
    ratio = gratings.cycles_per_pixel(1.0, "paper") / gratings.cycles_per_pixel(1.0, "physical")
    assert ratio == pytest.approx(PAPER_CPP_PER_CPD * ppd, rel=1e-9)
    assert ratio > 2.5


def test_physical_mapping_follows_the_geometry():
    near = gratings.cycles_per_pixel(4.0, "physical", viewing_distance_in=50.0)
    far = gratings.cycles_per_pixel(4.0, "physical", viewing_distance_in=100.0)
    assert float(near) == pytest.approx(2 * float(far), rel=1e-4)


def test_unknown_mapping_lists_the_allowed():
    with pytest.raises(ParamsError, match=r"^frequency_mapping must be one of.*paper.*physical"):
        gratings.cycles_per_pixel(1.0, "retinal")


def test_paper_stimulus_table():
    table = gratings.stimulus_table()
    assert list(table.columns) == list(gratings.STIMULUS_COLUMNS)
    assert len(table) == 60
    np.testing.assert_array_equal(table["stimulus_id"], np.arange(60))
    np.testing.assert_allclose(table["frequency_cpd"], 0.1 + 0.5 * np.arange(60))
    np.testing.assert_allclose(table["frequency_cpp"], table["frequency_cpd"] * PAPER_CPP_PER_CPD)
    assert set(table["kind"]) == {"concentric"}
    assert set(table["size"]) == {227}
    assert set(table["phase_rad"]) == {0.0}
    assert set(table["contrast"]) == {1.0}


def test_concentric_table_ignores_orientations():
    table = gratings.stimulus_table(frequencies_cpd=[1.0, 2.0], orientations_deg=[0, 45, 90], phases_rad=[0, 1])
    assert len(table) == 4
    assert set(table["orientation_deg"]) == {0.0}


def test_linear_table_is_the_full_product():
    table = gratings.stimulus_table(
        "linear", 64, [1.0, 2.0], orientations_deg=[90, 0], phases_rad=[0, 1.5], contrasts=[0.5, 1.0]
    )
    assert len(table) == 2 * 2 * 2 * 2
    # Sorted by frequency, then orientation, phase, contrast.
    keys = table[["frequency_cpd", "orientation_deg", "phase_rad", "contrast"]].to_records(index=False).tolist()
    assert keys == sorted(keys)


def test_unknown_kind_raises():
    with pytest.raises(ParamsError, match="concentric"):
        gratings.stimulus_table("spiral")


@pytest.mark.parametrize(("mapping", "frequency"), [("paper", 31.0), ("physical", 81.0)])
def test_above_nyquist_raises(mapping, frequency):
    with pytest.raises(ParamsError, match="Nyquist"):
        gratings.stimulus_table(frequencies_cpd=[1.0, frequency], mapping=mapping)


def test_just_below_nyquist_is_allowed():
    table = gratings.stimulus_table(frequencies_cpd=[80.0], mapping="physical")
    assert table["frequency_cpp"].iloc[0] < 0.5


def _matlab_concentric(frequency_cpd: float, phase: float = 0.0) -> np.ndarray:
    """The authors' formula, computed independently: pixel coordinates -113..113."""
    x, y = np.meshgrid(np.arange(-113, 114), np.arange(-113, 114))
    r = np.sqrt(x**2 + y**2)
    c = frequency_cpd * (3.14 * D * RES / 18000)  # cycles per 100 px
    return 0.5 + 0.5 * np.sin(2 * np.pi * (c / 100) * r - phase)


@pytest.fixture(scope="module")
def paper_images():
    table = gratings.stimulus_table()
    return table, gratings.render(table)


def test_render_matches_the_matlab_formula(paper_images):
    table, images = paper_images
    assert images.shape == (60, 3, 227, 227)
    assert images.dtype == torch.float32
    for index in (0, 7, 31, 59):
        expected = _matlab_concentric(table["frequency_cpd"].iloc[index])
        np.testing.assert_allclose(images[index, 0].numpy(), expected, atol=1e-6)


def test_render_phase_is_subtracted():
    table = gratings.stimulus_table(frequencies_cpd=[5.1], phases_rad=[math.pi / 3])
    image = gratings.render(table)[0, 0].numpy()
    np.testing.assert_allclose(image, _matlab_concentric(5.1, math.pi / 3), atol=1e-6)
    # A sign error in the phase would give a different image.
    assert not np.allclose(image, _matlab_concentric(5.1, -math.pi / 3), atol=1e-3)


def test_render_values_in_unit_range_and_grey(paper_images):
    _, images = paper_images
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0
    # Contrast 100 %: the full range is used.
    assert float(images.min()) < 0.01
    assert float(images.max()) > 0.99
    assert torch.equal(images[:, 0], images[:, 1])
    assert torch.equal(images[:, 0], images[:, 2])
    # Centre pixel (r = 0, phase 0) is mid-grey.
    np.testing.assert_allclose(images[:, :, 113, 113].numpy(), 0.5, atol=1e-6)


def test_render_contrast_scales_the_amplitude():
    table = gratings.stimulus_table("linear", 64, [10.0], contrasts=[0.5])
    image = gratings.render(table)[0, 0]
    assert float(image.min()) == pytest.approx(0.25, abs=0.01)
    assert float(image.max()) == pytest.approx(0.75, abs=0.01)


def _dominant(image: np.ndarray) -> tuple[float, float]:
    """Dominant (frequency in cycles/pixel, wave-vector angle in degrees mod 180) of an image."""
    spectrum = np.abs(np.fft.fft2(image - image.mean()))
    row, col = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    ky = np.fft.fftfreq(image.shape[0])[row]
    kx = np.fft.fftfreq(image.shape[1])[col]
    return float(np.hypot(kx, ky)), float(np.degrees(np.arctan2(ky, kx)) % 180)


@pytest.mark.parametrize(
    ("cycles_per_pixel", "orientation"),
    [(8 / 256, 0.0), (40 / 256, 0.0), (20 / 256, 90.0), (100 / 256, 90.0), (30 * math.sqrt(2) / 256, 45.0)],
)
def test_linear_grating_frequency_and_orientation(cycles_per_pixel, orientation):
    frequency_cpd = cycles_per_pixel / PAPER_CPP_PER_CPD
    table = gratings.stimulus_table("linear", 256, [frequency_cpd], orientations_deg=[orientation])
    assert table["frequency_cpp"].iloc[0] == pytest.approx(cycles_per_pixel)
    image = gratings.render(table)[0, 0].double().numpy()
    measured, angle = _dominant(image)
    assert measured == pytest.approx(cycles_per_pixel, abs=1e-9)
    assert angle == pytest.approx(orientation, abs=1e-6)


def test_linear_grating_orientation_convention():
    table = gratings.stimulus_table("linear", 32, [5.0, 5.0], orientations_deg=[0.0, 90.0])
    images = gratings.render(table)[:, 0].numpy()
    # 0 deg: the wave vector points along x (columns), so every column is constant (vertical bars).
    assert np.ptp(images[0], axis=0).max() < 1e-6
    assert np.ptp(images[0], axis=1).min() > 0.5
    # 90 deg: along y (rows), horizontal bars.
    assert np.ptp(images[1], axis=1).max() < 1e-6


def test_render_rejects_mixed_sizes():
    table = gratings.stimulus_table(size=32, frequencies_cpd=[1.0])
    mixed = table.assign(size=[32]).iloc[[0, 0]].reset_index(drop=True)
    mixed.loc[1, "size"] = 64
    with pytest.raises(ParamsError, match="one size"):
        gratings.render(mixed)
