"""Human contrast sensitivity functions (CSF) over spatial frequency in cycles/degree.

References:
    J. L. Mannos, D. J. Sakrison, "The effects of a visual fidelity criterion on the encoding of
    images", IEEE Trans. Information Theory 20(4), 1974.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from psychovis.errors import ParamsError


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


CSF_MODELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mannos_sakrison_code": mannos_sakrison_code,
    "mannos_sakrison": mannos_sakrison,
}


def contrast_sensitivity(frequency_cpd: np.ndarray, model: str = "mannos_sakrison_code") -> np.ndarray:
    """Evaluate a CSF model by name (see :data:`CSF_MODELS`)."""
    if model not in CSF_MODELS:
        raise ParamsError(f"vfss.csf must be one of {sorted(CSF_MODELS)}, got {model!r}")
    return CSF_MODELS[model](frequency_cpd)
