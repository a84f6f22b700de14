"""Fitted tuning per map: orientation preference and selectivity, log-Gaussian frequency tuning, the atlas table."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from psychovis import tuning
from psychovis.atlas.responses import ResponseGrid
from psychovis.errors import ParamsError, quote
from psychovis.names import ORIENTATION_POOLINGS
from psychovis.vfss import vfss_scores

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
REFERENCE_CSF = "mannos_sakrison_code"
REFERENCE_MAPPING = "paper"


def circular_variance(curves: np.ndarray, orientation_deg: np.ndarray) -> np.ndarray:
    """Brain-Score's circular variance over the last axis: ``1 - |sum r e^{2i theta}| / sum |r|``.

    0 = perfectly selective (one orientation), 1 = unselective (flat). NaN where ``sum |r| = 0``.
    """
    curves = np.asarray(curves, dtype=np.float64)
    phasors = np.exp(2j * np.deg2rad(np.asarray(orientation_deg, dtype=np.float64)))
    total = np.abs(curves).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, np.clip(1.0 - np.abs(curves @ phasors) / total, 0.0, 1.0), np.nan)


def preferred_orientation(curves: np.ndarray, orientation_deg: np.ndarray) -> np.ndarray:
    """Vector-sum preferred orientation over the last axis, ``arg(sum r e^{2i theta}) / 2`` in [0, 180)."""
    phasors = np.exp(2j * np.deg2rad(np.asarray(orientation_deg, dtype=np.float64)))
    angle = np.rad2deg(np.angle(np.asarray(curves, dtype=np.float64) @ phasors)) / 2.0
    return np.mod(np.round(angle, 9), 180.0)  # rounding keeps -1e-15 from wrapping to 180


def log_gaussian(
    frequency: np.ndarray, preferred: np.ndarray, sigma_octaves: np.ndarray, amplitude: np.ndarray, baseline: np.ndarray
) -> np.ndarray:
    """``baseline + amplitude * exp(-(log2 f - log2 f0)^2 / (2 s^2))`` (broadcasting)."""
    distance = np.log2(frequency) - np.log2(preferred)
    return baseline + amplitude * np.exp(-(distance**2) / (2.0 * sigma_octaves**2))


def _explained(centred_curves: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Drop in squared error of the closed-form fit ``y ~ baseline + amplitude * basis`` (amplitude >= 0).

    For centred ``y`` and centred basis ``b``: ``amplitude = max(y.b, 0) / b.b`` and the squared
    error falls from ``y.y`` by ``max(y.b, 0)^2 / b.b``; maximising that drop is least squares.

    Args:
        centred_curves: ``(M, F)``, each row minus its mean.
        basis: ``(G, F)`` candidates shared by all maps, or ``(M, G, F)`` per map.

    Returns:
        ``(M, G)``.
    """
    centred = basis - basis.mean(axis=-1, keepdims=True)
    norm = (centred**2).sum(axis=-1)
    inverse = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 1e-12)  # flat candidate: explains nothing
    shared = basis.ndim == 2
    covariance = centred_curves @ centred.T if shared else np.einsum("mf,mgf->mg", centred_curves, centred)
    np.maximum(covariance, 0.0, out=covariance)  # amplitude >= 0: a band-pass bump, not a notch
    covariance *= covariance
    covariance *= inverse
    return covariance


@dataclass(frozen=True)
class LogGaussianFit:
    """Fitted log-Gaussian tuning per map (NaN where not fitted).

    Attributes:
        preferred: preferred frequency ``f0``, in the units of the frequency axis given.
        sigma_octaves: ``s`` in octaves.
        bandwidth_octaves: full width at half maximum in octaves, ``2 sqrt(2 ln 2) s``.
        amplitude: height of the bump above the baseline (>= 0).
        baseline: asymptotic response far from ``f0``.
        r2: coefficient of determination on the curve (0 for a flat fit).
        peak_in_range: ``f0`` lies within the probed frequencies.
        at_bound: the fit ended on a search bound (``s`` at its smallest, i.e. narrower than the
            sampling resolves, or at its largest; or ``f0`` at the edge of the search range).
    """

    preferred: np.ndarray
    sigma_octaves: np.ndarray
    bandwidth_octaves: np.ndarray
    amplitude: np.ndarray
    baseline: np.ndarray
    r2: np.ndarray
    peak_in_range: np.ndarray
    at_bound: np.ndarray


def fit_log_gaussian(
    frequency: np.ndarray,
    curves: np.ndarray,
    fit: np.ndarray | None = None,
    center_margin_octaves: float = 1.0,
    sigma_range_octaves: tuple[float, float] | None = None,
    grid: tuple[int, int] = (61, 41),
    refinements: int = 3,
) -> LogGaussianFit:
    """Fit ``baseline + amplitude * exp(-(log2 f - log2 f0)^2 / (2 s^2))`` to many curves at once.

    Least squares over ``(log2 f0, log s)`` by a coarse grid shared by all maps, then
    ``refinements`` finer local grids around each map's best point; amplitude (>= 0) and
    baseline are solved in closed form at every grid point. No Python loop over maps: 4,224 maps
    x 14 frequencies take well under a second.

    Args:
        frequency: the frequency axis, positive, ``(F,)`` (any unit; ``preferred`` comes back in it).
        curves: ``(M, F)``.
        fit: boolean ``(M,)``: maps to fit (default all); the others get NaN.
        center_margin_octaves: ``log2 f0`` is searched from this far below the lowest to this far
            above the highest probed frequency.
        sigma_range_octaves: bounds of ``s`` (default: half the smallest sample spacing to twice
            the probed span, in octaves).
        grid: coarse grid points in ``log2 f0`` and in ``log s``.
        refinements: local refinement rounds (each 9 x 9 points around the current best).
    """
    frequency = np.asarray(frequency, dtype=np.float64)
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] != frequency.size or frequency.size < 3:
        raise ValueError(f"curves must have shape (maps, {frequency.size}) with >= 3 frequencies, got {curves.shape}")
    if np.any(frequency <= 0) or np.any(np.diff(frequency) <= 0):
        raise ValueError("frequencies must be positive and increasing")
    n_maps = curves.shape[0]
    fit = np.ones(n_maps, dtype=bool) if fit is None else np.asarray(fit, dtype=bool)
    fit = fit & np.isfinite(curves).all(axis=1)
    x = np.log2(frequency)
    span = x[-1] - x[0]
    low_s, high_s = sigma_range_octaves or (0.5 * float(np.diff(x).min()), 2.0 * span)
    mu_low, mu_high = x[0] - center_margin_octaves, x[-1] + center_margin_octaves
    log_s_low, log_s_high = math.log(low_s), math.log(high_s)

    y = curves[fit]
    y_mean = y.mean(axis=1, keepdims=True)
    centred_y = y - y_mean
    mu_grid = np.linspace(mu_low, mu_high, grid[0])
    log_s_grid = np.linspace(log_s_low, log_s_high, grid[1])
    mu, log_s = (axis.ravel() for axis in np.meshgrid(mu_grid, log_s_grid, indexing="ij"))
    basis = np.exp(-((x[None, :] - mu[:, None]) ** 2) / (2.0 * np.exp(log_s)[:, None] ** 2))
    best = _explained(centred_y, basis).argmax(axis=1)
    best_mu, best_log_s = mu[best], log_s[best]
    step_mu, step_log_s = mu_grid[1] - mu_grid[0], log_s_grid[1] - log_s_grid[0]
    offsets = np.linspace(-1.0, 1.0, 9)
    rows = np.arange(len(y))
    for _ in range(refinements):
        d_mu, d_log_s = (axis.ravel() for axis in np.meshgrid(offsets * step_mu, offsets * step_log_s, indexing="ij"))
        cand_mu = np.clip(best_mu[:, None] + d_mu[None, :], mu_low, mu_high)  # (m, K)
        cand_log_s = np.clip(best_log_s[:, None] + d_log_s[None, :], log_s_low, log_s_high)
        basis = np.exp(-((x[None, None, :] - cand_mu[..., None]) ** 2) / (2.0 * np.exp(cand_log_s)[..., None] ** 2))
        pick = _explained(centred_y, basis).argmax(axis=1)
        best_mu, best_log_s = cand_mu[rows, pick], cand_log_s[rows, pick]
        step_mu, step_log_s = step_mu / 4.0, step_log_s / 4.0
    # Closed-form amplitude and baseline at the chosen (f0, s).
    basis = np.exp(-((x[None, :] - best_mu[:, None]) ** 2) / (2.0 * np.exp(best_log_s)[:, None] ** 2))
    basis_mean = basis.mean(axis=1, keepdims=True)
    centred_basis = basis - basis_mean
    norm = (centred_basis**2).sum(axis=1)
    covariance = np.maximum((centred_y * centred_basis).sum(axis=1), 0.0)
    amplitude = np.divide(covariance, norm, out=np.zeros_like(norm), where=norm > 1e-12)
    baseline = y_mean[:, 0] - amplitude * basis_mean[:, 0]
    total = (centred_y**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, amplitude * covariance / total, np.nan)

    def scatter(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(n_maps, fill, dtype=np.float64)
        out[fit] = values
        return out

    tolerance = 1e-6
    bound = (
        (best_log_s <= log_s_low + tolerance)
        | (best_log_s >= log_s_high - tolerance)
        | (best_mu <= mu_low + tolerance)
        | (best_mu >= mu_high - tolerance)
    )
    sigma = scatter(np.exp(best_log_s))
    preferred = scatter(2.0**best_mu)
    amplitude = scatter(amplitude)
    flat = amplitude == 0  # no bump at all: f0 and s are meaningless
    preferred[flat], sigma[flat] = np.nan, np.nan
    return LogGaussianFit(
        preferred=preferred,
        sigma_octaves=sigma,
        bandwidth_octaves=FWHM_PER_SIGMA * sigma,
        amplitude=amplitude,
        baseline=scatter(baseline),
        r2=scatter(r2),
        peak_in_range=(preferred >= frequency[0]) & (preferred <= frequency[-1]),  # False for NaN
        at_bound=scatter(bound.astype(np.float64), 0.0).astype(bool) & np.isfinite(preferred),
    )


def reliable_maps(grid: ResponseGrid, min_response: float = 1e-6, min_relative_range: float = 0.05) -> np.ndarray:
    """Maps that respond to the gratings at all: peak >= ``min_response`` and a range over the
    (frequency x orientation) grid of at least ``min_relative_range`` times the mean |response|."""
    flat = grid.responses.reshape(len(grid.responses), -1)
    peak = flat.max(axis=1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    mean = np.abs(flat).mean(axis=1)
    return np.isfinite(flat).all(axis=1) & (peak >= min_response) & (spread >= min_relative_range * mean) & (spread > 0)


def frequency_curves(grid: ResponseGrid, pooling: str = "preferred") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequency tuning curves ``(M, F)`` and each map's preferred (frequency, orientation) indices.

    ``preferred``: at the orientation of the argmax of the phase-averaged grid (Brain-Score);
    ``max``: the max over orientations at each frequency; ``mean``: the mean over orientations
    (closest to the paper's concentric rings, which contain every orientation).
    """
    if pooling not in ORIENTATION_POOLINGS:
        raise ParamsError(
            f"atlas.orientation_pooling must be one of {list(ORIENTATION_POOLINGS)}, got {quote(pooling)}"
        )
    n_maps, n_freq, n_ori = grid.responses.shape
    flat = np.nan_to_num(grid.responses.reshape(n_maps, -1), nan=-np.inf)
    f_pref, o_pref = np.unravel_index(flat.argmax(axis=1), (n_freq, n_ori))
    rows = np.arange(n_maps)
    if pooling == "preferred":
        curves = grid.responses[rows, :, o_pref]
    elif pooling == "max":
        curves = grid.responses.max(axis=2)
    else:
        curves = grid.responses.mean(axis=2)
    return curves, f_pref, o_pref


def fit_atlas(
    grid: ResponseGrid,
    cpd_per_cpp_factor: float,
    pooling: str = "preferred",
    min_response: float = 1e-6,
    min_relative_range: float = 0.05,
    csf: str = REFERENCE_CSF,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-map tuning: fits, orientation selectivity, tuning class and VFSS.

    Args:
        grid: phase-averaged responses (see :func:`response_grid`).
        cpd_per_cpp_factor: the viewing geometry, cycles/degree per cycle/pixel (:func:`cpd_per_cpp`).
        pooling: how orientations become one frequency curve (:func:`frequency_curves`).
        min_response, min_relative_range: the reliability thresholds (:func:`reliable_maps`).
        csf: the CSF model of the ``vfss`` column. That column is VFSS computed on the atlas's
            frequency curve (oriented linear gratings at log-spaced frequencies), so it is an
            atlas-VFSS, not the paper's score (concentric gratings at linearly spaced
            frequencies, where the unit-step gradient weighs every frequency step equally).

    Returns:
        The per-map table (one row per map) and the frequency curves ``(M, F)`` it was fitted on.
    """
    reliable = reliable_maps(grid, min_response, min_relative_range)
    curves, f_pref, o_pref = frequency_curves(grid, pooling)
    rows = np.arange(len(curves))
    fits = fit_log_gaussian(grid.frequency_cpp, curves, fit=reliable)
    orientation_curves = grid.responses[rows, f_pref, :]  # at the preferred frequency, as Brain-Score
    cv = np.where(reliable, circular_variance(orientation_curves, grid.orientation_deg), np.nan)
    preferred_ori = np.where(reliable, preferred_orientation(orientation_curves, grid.orientation_deg), np.nan)
    frequency_cpd = grid.frequency_cpp * cpd_per_cpp_factor
    classes = tuning.summarize(
        tuning.TuningCurves(frequency_cpd, grid.frequency_cpp, grid.layer, grid.channel, curves),
        min_response=min_response,
    )["tuning_class"].to_numpy(dtype=object)
    classes[~reliable] = "unresponsive"
    peak_frequency = np.where(
        reliable, grid.frequency_cpp[np.nanargmax(np.nan_to_num(curves, nan=-np.inf), axis=1)], np.nan
    )
    table = pd.DataFrame(
        {
            "layer": grid.layer.astype(str),
            "channel": grid.channel.astype(np.int32),
            "reliable": reliable,
            "peak_response": np.nanmax(grid.responses.reshape(len(rows), -1), axis=1),
            "mean_response": np.nanmean(grid.responses.reshape(len(rows), -1), axis=1),
            "tuning_class": classes.astype(str),
            "peak_frequency_cpp": peak_frequency,
            "preferred_frequency_cpp": fits.preferred,
            "preferred_frequency_cpd": fits.preferred * cpd_per_cpp_factor,
            "bandwidth_octaves": fits.bandwidth_octaves,
            "sigma_octaves": fits.sigma_octaves,
            "amplitude": fits.amplitude,
            "baseline": fits.baseline,
            "r2": fits.r2,
            "peak_in_range": fits.peak_in_range,
            "fit_at_bound": fits.at_bound,
            "preferred_orientation_deg": preferred_ori,
            "preferred_orientation_grid_deg": np.where(reliable, grid.orientation_deg[o_pref], np.nan),
            "circular_variance": cv,
            "vfss": vfss_scores(curves, frequency_cpd, csf),
        }
    )
    return table, curves


def layer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer: shares of reliable and band-pass maps, medians of the fitted parameters.

    Medians of preferred frequency and bandwidth are over band-pass maps (a peak inside the
    probed range, so the fit's ``f0`` is constrained); ``median_peak_frequency_cpp`` (the grid
    argmax) is over all reliable maps; R^2 and circular variance over reliable maps.
    """
    order = list(pd.unique(table["layer"]))
    rows = []
    for layer in order:
        maps = table[table["layer"] == layer]
        reliable = maps[maps["reliable"]]
        band = maps[maps["tuning_class"] == "band-pass"]
        rows.append(
            {
                "layer": layer,
                "maps": len(maps),
                "share_reliable": float(maps["reliable"].mean()),
                "share_band_pass": float((maps["tuning_class"] == "band-pass").mean()),
                "share_low_pass": float((maps["tuning_class"] == "low-pass").mean()),
                "share_high_pass": float((maps["tuning_class"] == "high-pass").mean()),
                "median_preferred_frequency_cpp": float(band["preferred_frequency_cpp"].median()),
                "median_preferred_frequency_cpd": float(band["preferred_frequency_cpd"].median()),
                "median_peak_frequency_cpp": float(reliable["peak_frequency_cpp"].median()),
                "median_bandwidth_octaves": float(band["bandwidth_octaves"].median()),
                "share_band_pass_fit_at_bound": float(band["fit_at_bound"].mean()) if len(band) else float("nan"),
                "median_circular_variance": float(reliable["circular_variance"].median()),
                "median_r2": float(reliable["r2"].median()),
                "median_vfss": float(maps["vfss"].median()),
            }
        )
    return pd.DataFrame(rows)
