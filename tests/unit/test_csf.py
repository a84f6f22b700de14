"""Tests of psychovis.csf: the CSF as the authors' code writes it versus the textbook form."""

import math

import numpy as np
import pytest

from psychovis import csf
from psychovis.errors import ParamsError

FREQUENCIES = np.array([0.0, 0.1, 1.0, 4.0, 8.0, 10.0, 20.0, 29.6])


def test_code_form_is_a_single_exponential():
    expected = 2.6 * (0.0192 + 0.114 * FREQUENCIES) * np.exp(-0.1254 * FREQUENCIES)
    np.testing.assert_allclose(csf.mannos_sakrison_code(FREQUENCIES), expected, rtol=1e-12)


def test_textbook_form():
    expected = 2.6 * (0.0192 + 0.114 * FREQUENCIES) * np.exp(-((0.114 * FREQUENCIES) ** 1.1))
    np.testing.assert_allclose(csf.mannos_sakrison(FREQUENCIES), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("frequency", "code", "textbook"),
    [
        # Worked by hand: 2.6 * (0.0192 + 0.114 f) * exp(-0.1254 f) and exp(-(0.114 f)^1.1).
        (0.0, 0.04992, 0.04992),
        (1.0, 0.30550, 0.31596),
        (8.0, 0.88783, 0.98078),
        (10.0, 0.86006, 0.94952),
        (29.6, 0.21558, 0.19526),
    ],
)
def test_hand_checked_values(frequency, code, textbook):
    assert float(csf.contrast_sensitivity(frequency, "mannos_sakrison_code")) == pytest.approx(code, abs=1e-5)
    assert float(csf.contrast_sensitivity(frequency, "mannos_sakrison")) == pytest.approx(textbook, abs=1e-5)


def test_the_two_forms_differ():
    f = np.array([1.0, 8.0, 29.6])
    code, textbook = csf.mannos_sakrison_code(f), csf.mannos_sakrison(f)
    assert np.all(np.abs(code - textbook) > 0.01)
    # The code form is lower at low and mid frequencies and falls off more slowly at high ones.
    assert code[0] < textbook[0]
    assert code[1] < textbook[1]
    assert code[2] > textbook[2]


@pytest.mark.parametrize("model", ["mannos_sakrison_code", "mannos_sakrison"])
def test_peaks_near_8_cpd(model):
    grid = np.linspace(0.01, 30, 30_000)
    peak = grid[np.argmax(csf.contrast_sensitivity(grid, model))]
    assert 7.5 < peak < 8.5


def test_code_form_peak_is_analytic():
    # d/df (a + b f) exp(-c f) = 0  ->  f = 1/c - a/b.
    grid = np.linspace(7, 9, 200_001)
    peak = grid[np.argmax(csf.mannos_sakrison_code(grid))]
    assert peak == pytest.approx(1 / 0.1254 - 0.0192 / 0.114, abs=1e-4)


def test_default_model_is_the_code_form():
    np.testing.assert_array_equal(csf.contrast_sensitivity(FREQUENCIES), csf.mannos_sakrison_code(FREQUENCIES))


def test_accepts_lists_and_scalars():
    values = csf.contrast_sensitivity([1.0, 8.0])
    assert values.shape == (2,)
    assert math.isclose(float(csf.contrast_sensitivity(8.0)), values[1])


def test_unknown_model_lists_the_allowed():
    with pytest.raises(ParamsError) as info:
        csf.contrast_sensitivity(FREQUENCIES, "barten", key="psychophysics.csf")
    message = str(info.value)
    assert message.startswith("psychophysics.csf must be one of")  # names the caller's parameter
    assert "'barten'" in message
    for name in csf.CSF_MODELS:
        assert name in message


# Barten's simplified CSF (Barten 2003, SPIE 5294), registered as "barten_2003" at L = 100 cd/m^2, X0 = 10 deg.


def _barten_by_hand(u: float, luminance: float = 100.0, field: float = 10.0) -> float:
    """The published formula, written out independently."""
    numerator = 5200 * math.exp(-0.0016 * u**2 * (1 + 100 / luminance) ** 0.08)
    denominator = math.sqrt(
        (1 + 144 / field**2 + 0.64 * u**2) * (63 / luminance**0.83 + 1 / (1 - math.exp(-0.02 * u**2)))
    )
    return numerator / denominator


@pytest.mark.parametrize("frequency", [0.1, 0.5, 1.0, 3.0, 8.0, 16.0, 29.6, 60.0])
def test_barten_matches_the_published_formula(frequency):
    assert float(csf.contrast_sensitivity(frequency, "barten_2003")) == pytest.approx(
        _barten_by_hand(frequency), rel=1e-12
    )
    assert float(csf.barten_2003(frequency, 10.0, 2.0)) == pytest.approx(
        _barten_by_hand(frequency, 10.0, 2.0), rel=1e-12
    )


@pytest.mark.parametrize(
    ("frequency", "sensitivity"),
    [(1.0, 410.67), (3.0, 655.30), (8.0, 426.12), (29.6, 32.286)],  # worked by hand at L = 100, X0 = 10
)
def test_barten_hand_checked_values(frequency, sensitivity):
    assert float(csf.barten_2003(frequency)) == pytest.approx(sensitivity, abs=0.01)


def test_barten_is_band_pass_peaking_near_3_cpd_and_zero_at_dc():
    grid = np.linspace(0.01, 60, 60_000)
    values = csf.barten_2003(grid)
    assert 2.8 < grid[np.argmax(values)] < 3.3
    assert 640 < values.max() < 670
    assert float(csf.barten_2003(0.0)) == 0.0
    assert np.all(np.isfinite(csf.barten_2003(np.array([0.0, 1e-8, 1e-3]))))


def test_barten_rises_with_luminance_and_field_size():
    assert float(csf.barten_2003(4.0, 1000.0)) > float(csf.barten_2003(4.0, 100.0)) > float(csf.barten_2003(4.0, 10.0))
    assert float(csf.barten_2003(1.0, field_size_deg=20.0)) > float(csf.barten_2003(1.0, field_size_deg=2.0))
    with pytest.raises(ParamsError):
        csf.barten_2003(4.0, luminance_cd_m2=0.0)


def test_barten_is_registered_with_the_params_schema():
    from psychovis.pipeline import params

    assert "barten_2003" in csf.CSF_MODELS
    assert set(params.CSF_MODELS) == set(csf.CSF_FUNCTIONS)
