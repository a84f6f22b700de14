"""Human contrast sensitivity functions (CSF) over spatial frequency in cycles/degree.

References:
    J. L. Mannos, D. J. Sakrison, "The effects of a visual fidelity criterion on the encoding of
    images", IEEE Trans. Information Theory 20(4), 1974.
    P. G. J. Barten, "Formula for the contrast sensitivity of the human eye", Proc. SPIE 5294,
    Image Quality and System Performance, pp. 231-238, 2003 (doi:10.1117/12.537476); the
    simplified closed form of P. G. J. Barten, "Contrast Sensitivity of the Human Eye and Its
    Effects on Image Quality", SPIE Press, 1999 (doi:10.1117/3.353254).
    A. B. Watson, A. J. Ahumada, "A standard model for foveal detection of spatial contrast",
    J. Vision 5(9):6, 2005 (the Standard Spatial Observer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from psychovis.errors import ParamsError, quote
from psychovis.names import CSF_MODELS


def mannos_sakrison(frequency_cpd: np.ndarray) -> np.ndarray:
    """Textbook Mannos-Sakrison CSF: ``2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1)``."""
    f = np.asarray(frequency_cpd, dtype=np.float64)
    return 2.6 * (0.0192 + 0.114 * f) * np.exp(-((0.114 * f) ** 1.1))


def mannos_sakrison_code(frequency_cpd: np.ndarray) -> np.ndarray:
    """The CSF as the authors' MATLAB code writes it: ``2.6*(0.0192+0.114*f)*exp(-0.114*f)^1.1``.

    Operator precedence makes the exponent apply to ``exp(-0.114 f)``, i.e.
    ``2.6 (0.0192 + 0.114 f) exp(-0.1254 f)``. Both forms peak near 8 cpd; this one falls off
    a little more slowly at high frequency.
    """
    f = np.asarray(frequency_cpd, dtype=np.float64)
    return 2.6 * (0.0192 + 0.114 * f) * np.exp(-0.114 * f) ** 1.1


BARTEN_LUMINANCE_CD_M2 = 100.0
BARTEN_FIELD_SIZE_DEG = 10.0


def barten_2003(
    frequency_cpd: np.ndarray,
    luminance_cd_m2: float = BARTEN_LUMINANCE_CD_M2,
    field_size_deg: float = BARTEN_FIELD_SIZE_DEG,
) -> np.ndarray:
    """Barten's simplified CSF (Barten 2003, the closed form of his 1999 model), absolute sensitivity.

    ``S(u) = 5200 exp(-0.0016 u^2 (1 + 100/L)^0.08)
    / sqrt((1 + 144/X0^2 + 0.64 u^2) (63/L^0.83 + 1/(1 - exp(-0.02 u^2))))``

    with ``u`` in cycles/degree, ``L`` the adapting luminance in cd/m^2 and ``X0`` the angular
    size of the (square) field in degrees. Binocular, photopic, foveal. At the registered defaults
    (L = 100 cd/m^2, X0 = 10 deg) it peaks at about 3.0 cpd with a sensitivity of about 655;
    it falls to 0 at 0 cpd (the limit of the formula). Its scale (hundreds) differs from the
    Mannos-Sakrison forms (about 1): VFSS scales with it, L1-normalised weights and rank
    correlations do not.

    Args:
        frequency_cpd: spatial frequency in cycles/degree (>= 0).
        luminance_cd_m2: adapting luminance ``L`` (> 0).
        field_size_deg: angular field size ``X0`` (> 0).
    """
    if not luminance_cd_m2 > 0 or not field_size_deg > 0:
        raise ParamsError(
            f"Barten CSF needs luminance > 0 and field size > 0, got {quote(luminance_cd_m2)}, {field_size_deg!r}"
        )
    u = np.asarray(frequency_cpd, dtype=np.float64)
    u2 = u**2
    with np.errstate(divide="ignore"):
        # 1/(1 - exp(-0.02 u^2)) -> inf at u = 0, where S -> 0; -expm1 keeps precision at small u.
        lateral = 1.0 / -np.expm1(-0.02 * u2)
    noise = (1.0 + 144.0 / field_size_deg**2 + 0.64 * u2) * (63.0 / luminance_cd_m2**0.83 + lateral)
    optics = np.exp(-0.0016 * u2 * (1.0 + 100.0 / luminance_cd_m2) ** 0.08)
    return np.where(u == 0, 0.0, 5200.0 * optics / np.sqrt(noise))


SSO_GAIN, SSO_FM_CPD, SSO_L, SSO_S_CPD = 330.74, 7.28, 0.837, 1.809


def standard_spatial_observer(frequency_cpd: np.ndarray) -> np.ndarray:
    """The Standard Spatial Observer's CSF (Watson & Ramirez 1999; Watson & Ahumada 2005).

    ``S(f) = g (exp(-f / fm) - l exp(-f^2 / s^2))`` with g = 330.74, fm = 7.28 cpd, l = 0.837,
    s = 1.809 cpd: a difference of exponentials fitted to ModelFest, peaking near 4 cpd (about 200).
    Its oblique-effect filter is applied by the observers that use orientation
    (:func:`psychovis.modelfest.observers.oblique_filter`).
    """
    f = np.asarray(frequency_cpd, dtype=np.float64)
    return SSO_GAIN * (np.exp(-f / SSO_FM_CPD) - SSO_L * np.exp(-(f**2) / SSO_S_CPD**2))


CSF_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mannos_sakrison_code": mannos_sakrison_code,
    "mannos_sakrison": mannos_sakrison,
    "barten_2003": barten_2003,  # L = 100 cd/m^2, X0 = 10 deg
    "standard_spatial_observer": standard_spatial_observer,
}


def contrast_sensitivity(
    frequency_cpd: np.ndarray, model: str = "mannos_sakrison_code", key: str = "csf"
) -> np.ndarray:
    """Evaluate a CSF model by name (one of :data:`psychovis.names.CSF_MODELS`).

    Args:
        frequency_cpd: spatial frequencies in cycles/degree.
        model: the CSF model's name.
        key: the parameter that named the model, for the error message (e.g. ``vfss.csf``).
    """
    if model not in CSF_FUNCTIONS:
        raise ParamsError(f"{key} must be one of {sorted(CSF_MODELS)}, got {quote(model)}")
    return CSF_FUNCTIONS[model](frequency_cpd)
