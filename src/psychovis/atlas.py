"""Tuning atlas: fitted spatial-frequency and orientation tuning of every feature map.

Beyond the paper (which probes one layer with concentric rings), the atlas probes every ReLU layer
with oriented linear gratings over frequency x orientation x phase and, per map:

- averages the spatial-mean responses over phase (so phase does not masquerade as tuning);
- finds the preferred (frequency, orientation) cell of the phase-averaged grid, as Brain-Score's
  grating benchmarks do (Marques et al. 2021; ``ringach2002_properties``, ``devalois1982b_properties``);
- takes the frequency tuning curve at the preferred orientation (``orientation_pooling="preferred"``,
  Brain-Score's choice), or the max or mean over orientations;
- fits a log-Gaussian in log2 frequency,
  ``baseline + amplitude * exp(-(log2 f - log2 f0)^2 / (2 s^2))``, amplitude >= 0, giving the
  preferred frequency ``f0`` (cycles/pixel and cycles/degree), the octave bandwidth
  ``FWHM = 2 sqrt(2 ln 2) s`` and R^2. The fit is vectorised over maps: a grid search over
  ``(log2 f0, log s)`` with amplitude and baseline in closed form (linear least squares) for every
  grid point and every map at once, then three local grid refinements per map (also batched);
- computes orientation selectivity as Brain-Score's ``calc_circular_variance``:
  ``CV = 1 - |sum_k r_k exp(2 i theta_k)| / sum_k |r_k|`` over the orientations at the preferred
  frequency. **0 = perfectly selective** (responds to one orientation only), **1 = unselective**
  (equal response to every orientation). The preferred orientation is the vector-sum angle
  ``arg(sum_k r_k exp(2 i theta_k)) / 2`` in [0, 180);
- flags maps with no reliable response (peak below ``min_response``, or a response range over the
  grid below ``min_relative_range`` times its mean) as ``reliable = False``: they are not fitted
  (NaN parameters) and their tuning class is ``unresponsive``.

Orientation convention (see :func:`psychovis.gratings.render`): ``orientation_deg`` is the
direction of the grating's wave vector, measured from +x (columns, left to right) towards +y
(rows, top to bottom), i.e. clockwise on screen; 0 deg = vertical bars, 90 deg = horizontal bars.

Frequencies are native in cycles/pixel; cycles/degree need a viewing geometry. ``paper`` uses the
authors' code constant (0.016172 cyc/px per cpd at d = 103.35 in, 89.7 px/in, i.e. the same as a
physical display of 61.8 px/deg); ``physical`` uses the pixels per degree of that geometry (about
161.7). Every mapping is therefore one number, cycles/degree per cycle/pixel (:class:`Variant`).

References:
    Tariq, Kim et al., arXiv:1812.00412 (VFSS).
    Marques, Schrimpf, DiCarlo, "Multi-scale hierarchical neural network models that bridge from
    single neurons in the primate primary visual cortex to object recognition behavior", 2021
    (Brain-Score V1 property benchmarks; ``brainscore_vision/benchmark_helpers/properties_common.py``).
    Ringach, Shapley, Hawken, J. Neurosci. 22(13), 2002 (circular variance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from psychovis import gratings, tuning
from psychovis.atlas_stimuli import (  # noqa: F401  (re-exported: the atlas API in one place)
    atlas_stimuli,
    cpd_per_cpp,
    even_orientations,
    even_phases,
    example_stimuli,
    layers_for,
    log_frequencies,
    stimuli_from_params,
)
from psychovis.csf import contrast_sensitivity
from psychovis.errors import DataError, ParamsError
from psychovis.vfss import l1_weights, vfss_scores

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
POOLINGS = ("preferred", "max", "mean")
REFERENCE_CSF = "mannos_sakrison_code"
REFERENCE_MAPPING = "paper"


# --------------------------------------------------------------------------------------------
# Probing any module that returns {layer: activation}
# --------------------------------------------------------------------------------------------


def module_responses(
    module: nn.Module,
    stimuli: pd.DataFrame,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Spatial-mean response of every map to every stimulus, for any module returning ``{layer: (N, C, H, W)}``.

    The adapter that lets a hand-built network (or any dict-returning feature model) go through
    the same atlas as the backbones. For a :class:`psychovis.backbones.FeatureExtractor` prefer
    :func:`psychovis.probe.map_responses` (same numbers, lower peak memory).

    Returns:
        ``responses`` of shape ``(n_stimuli, n_maps)`` (float32, rows in table order) and the
        ``(layer, channel)`` of each column, layers in the module's output order.
    """
    device = torch.device(device)
    module = module.to(device).eval()
    blocks: list[np.ndarray] = []
    columns: list[tuple[str, int]] | None = None
    starts = range(0, len(stimuli), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="atlas features", unit="batch", disable=not progress):
            batch = gratings.render(stimuli.iloc[start : start + batch_size], device=device)
            outputs = module(batch)
            if not isinstance(outputs, Mapping):
                raise TypeError(f"the module must return a mapping layer -> activation, got {type(outputs).__name__}")
            means = [activation.mean(dim=(2, 3)) for activation in outputs.values()]
            if columns is None:
                columns = [(layer, c) for layer, m in zip(outputs, means, strict=True) for c in range(m.shape[1])]
            blocks.append(torch.cat(means, dim=1).float().cpu().numpy())
    if columns is None:
        raise DataError("no stimuli to probe")
    return np.concatenate(blocks, axis=0), columns


# --------------------------------------------------------------------------------------------
# Responses -> (map, frequency, orientation) grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseGrid:
    """Phase-averaged responses of many maps on a frequency x orientation grid.

    Attributes:
        frequency_cpp: increasing frequencies in cycles/pixel, ``(F,)``.
        orientation_deg: increasing orientations in degrees, ``(O,)``.
        layer: layer of each map, ``(M,)``.
        channel: channel of each map in its layer, ``(M,)``.
        responses: ``(M, F, O)``.
    """

    frequency_cpp: np.ndarray
    orientation_deg: np.ndarray
    layer: np.ndarray
    channel: np.ndarray
    responses: np.ndarray


def response_grid(
    responses: np.ndarray, columns: Sequence[tuple[str, int]], stimuli: pd.DataFrame, contrast: float | None = None
) -> ResponseGrid:
    """Arrange probe responses (rows = stimuli in ``stimuli`` order) as a phase-averaged grid.

    Args:
        responses: ``(n_stimuli, n_maps)`` as returned by the probe.
        columns: ``(layer, channel)`` of each column.
        stimuli: the stimulus table the responses were measured on (same row order).
        contrast: the contrast to use (default: the highest in the table).

    Raises:
        DataError: the table is not a full frequency x orientation x phase product at that contrast.
    """
    responses = np.asarray(responses, dtype=np.float64)
    if responses.shape != (len(stimuli), len(columns)):
        raise DataError(f"responses have shape {responses.shape}, expected ({len(stimuli)}, {len(columns)})")
    contrast = float(stimuli["contrast"].max()) if contrast is None else contrast
    chosen = np.flatnonzero(np.isclose(stimuli["contrast"].to_numpy(dtype=np.float64), contrast))
    table = stimuli.iloc[chosen]
    frequency, f_index = np.unique(table["frequency_cpp"].to_numpy(dtype=np.float64), return_inverse=True)
    orientation, o_index = np.unique(table["orientation_deg"].to_numpy(dtype=np.float64), return_inverse=True)
    _, p_index = np.unique(table["phase_rad"].to_numpy(dtype=np.float64), return_inverse=True)
    shape = (len(frequency), len(orientation), int(p_index.max()) + 1)
    cells = np.ravel_multi_index((f_index, o_index, p_index), shape)
    if len(np.unique(cells)) != len(cells) or len(cells) != math.prod(shape):
        raise DataError(
            "the atlas needs every (frequency, orientation, phase) combination exactly once at one contrast; "
            f"got {len(cells)} stimuli for a {shape} grid"
        )
    cube = np.empty((responses.shape[1], math.prod(shape)))
    cube[:, cells] = responses[chosen].T
    return ResponseGrid(
        frequency_cpp=frequency,
        orientation_deg=orientation,
        layer=np.array([layer for layer, _ in columns], dtype=object),
        channel=np.array([channel for _, channel in columns], dtype=np.int64),
        responses=cube.reshape(responses.shape[1], *shape).mean(axis=3),
    )


def grid_from_frame(frame: pd.DataFrame, stimuli: pd.DataFrame) -> ResponseGrid:
    """The grid from a tidy ``layer, channel, stimulus_id, response`` table (the atlas_features output).

    Maps are ordered by layer (in order of first appearance) then channel; rows may come in any order.
    """
    layers = pd.unique(frame["layer"].astype(str))  # layers in order of first appearance (network order)
    layer_code = pd.Categorical(frame["layer"].astype(str), categories=layers).codes.astype(np.int64)
    channel = frame["channel"].to_numpy(dtype=np.int64)
    stride = int(channel.max()) + 1
    keys, map_index = np.unique(layer_code * stride + channel, return_inverse=True)
    position = pd.Index(stimuli["stimulus_id"].to_numpy()).get_indexer(frame["stimulus_id"].to_numpy())
    if (position < 0).any():
        raise DataError("the responses refer to stimulus ids that are not in the stimulus table")
    wide = np.full((len(stimuli), len(keys)), np.nan)
    wide[position, map_index] = frame["response"].to_numpy(dtype=np.float64)
    columns = [(str(layers[key // stride]), int(key % stride)) for key in keys]
    return response_grid(wide, columns, stimuli.reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Log-Gaussian fits, vectorised over maps
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Per-map atlas
# --------------------------------------------------------------------------------------------


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
    if pooling not in POOLINGS:
        raise ParamsError(f"atlas.orientation_pooling must be one of {list(POOLINGS)}, got {pooling!r}")
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
        csf: the CSF model of the ``vfss`` column (VFSS on the atlas's frequency curve).

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


# --------------------------------------------------------------------------------------------
# Sensitivity of VFSS and weights to the CSF model and the viewing geometry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One (CSF model, frequency mapping) choice; ``cpd_per_cpp`` is the mapping's one number."""

    csf: str
    mapping: str
    cpd_per_cpp: float

    @property
    def name(self) -> str:
        return f"{self.csf}|{self.mapping}"


def sensitivity_variants(
    csfs: Sequence[str],
    mappings: Sequence[str],
    pixels_per_degree: Sequence[float] | None = None,
    viewing_distance_in: float = 103.35,
    pixels_per_inch: float = 89.7,
) -> list[Variant]:
    """Every CSF x mapping variant; the paper default (code-form Mannos-Sakrison, ``paper``) first.

    ``physical`` is labelled with its pixels per degree; each extra ``pixels_per_degree`` adds a
    physical geometry ``physical@<ppd>ppd``.
    """
    geometries: list[tuple[str, float]] = []
    for mapping in mappings:
        factor = cpd_per_cpp(mapping, viewing_distance_in, pixels_per_inch)
        geometries.append((mapping if mapping == "paper" else f"physical@{factor:.1f}ppd", factor))
    geometries += [(f"physical@{ppd:g}ppd", float(ppd)) for ppd in pixels_per_degree or []]
    reference_factor = cpd_per_cpp("paper", viewing_distance_in, pixels_per_inch)
    variants = [Variant(REFERENCE_CSF, REFERENCE_MAPPING, reference_factor)]
    for csf in csfs:
        for mapping, factor in geometries:
            variant = Variant(csf, mapping, factor)
            if variant.name not in {v.name for v in variants}:
                variants.append(variant)
    return variants


def _rank_rows(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, axis=1)


def _corr_rows(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(values) if values.shape[1] > 1 else np.full((len(values), len(values)), np.nan)


def sensitivity_table(
    curves: np.ndarray,
    frequency_cpp: np.ndarray,
    layer: np.ndarray,
    variants: Sequence[Variant],
    top_k: int = 64,
) -> pd.DataFrame:
    """How much VFSS and the L1 weights depend on the CSF model and the geometry, per layer.

    For every pair of variants (``reference``, ``variant``) and every layer (plus ``all``, across
    all maps): ``spearman_vfss`` (rank correlation of VFSS across maps; equal to the rank
    correlation of the layer's L1 weights, which are VFSS / sum|VFSS|), ``pearson_weights``
    (linear correlation of the L1 weights), ``weight_distance`` (total variation
    ``0.5 sum |w_a - w_b|``, 0 = identical, 1 = disjoint) and ``topk_overlap`` (share of the
    reference's top-k maps also in the variant's top-k). The diagonal is 1, 1, 0, 1.
    """
    curves = np.asarray(curves, dtype=np.float64)
    scores = np.stack([vfss_scores(curves, frequency_cpp * v.cpd_per_cpp, v.csf) for v in variants])  # (V, M)
    names = [v.name for v in variants]
    layer = np.asarray(layer).astype(str)
    groups = [(name, layer == name) for name in pd.unique(layer)] + [("all", np.ones(len(layer), dtype=bool))]
    frames = []
    for group, mask in groups:
        chosen = scores[:, mask]
        weights = np.stack([l1_weights(row) for row in chosen])
        spearman = _corr_rows(_rank_rows(chosen))
        pearson = _corr_rows(weights)
        distance = 0.5 * np.abs(weights[:, None, :] - weights[None, :, :]).sum(axis=2)
        k = min(top_k, chosen.shape[1])
        top = np.argsort(-chosen, axis=1, kind="stable")[:, :k]
        member = np.zeros_like(chosen, dtype=bool)
        np.put_along_axis(member, top, True, axis=1)
        overlap = (member[:, None, :] & member[None, :, :]).sum(axis=2) / k
        a, b = np.meshgrid(np.arange(len(variants)), np.arange(len(variants)), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "layer": group,
                    "maps": int(mask.sum()),
                    "reference": np.array(names)[a.ravel()],
                    "variant": np.array(names)[b.ravel()],
                    "spearman_vfss": spearman.ravel(),
                    "pearson_weights": pearson.ravel(),
                    "weight_distance": distance.ravel(),
                    "topk_overlap": overlap.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Agreement with the LPIPS linear heads
# --------------------------------------------------------------------------------------------


def _correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan, int(ok.sum())
    return float(stats.spearmanr(x[ok], y[ok]).statistic), float(stats.pearsonr(x[ok], y[ok]).statistic), int(ok.sum())


def lpips_agreement(table: pd.DataFrame, heads: Mapping[str, np.ndarray], heads_name: str = "") -> pd.DataFrame:
    """Per LPIPS layer: correlation between each map's VFSS (and other tuning properties) and its LPIPS weight.

    Args:
        table: the per-map atlas table (:func:`fit_atlas`), with ``layer, channel, vfss, ...``.
        heads: layer -> LPIPS linear weight per channel (:func:`psychovis.backbones.lpips_heads`).
        heads_name: which backbone's heads (recorded in the output).

    Returns:
        One row per LPIPS layer present in ``table``: ``spearman_vfss``, ``pearson_vfss`` (all
        maps), and Spearman correlations of the LPIPS weight with ``peak_response`` (a magnitude
        control), ``preferred_frequency_cpp`` and ``circular_variance`` (reliable maps only).
    """
    rows = []
    for layer, weights in heads.items():
        maps = table[table["layer"] == layer].sort_values("channel")
        if maps.empty:
            continue
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != len(maps) or not np.array_equal(maps["channel"].to_numpy(), np.arange(len(weights))):
            raise DataError(f"LPIPS head of {layer} has {len(weights)} weights for {len(maps)} probed maps")
        reliable = maps["reliable"].to_numpy()
        s_vfss, p_vfss, n = _correlations(maps["vfss"].to_numpy(dtype=np.float64), weights)
        s_peak, _, _ = _correlations(maps["peak_response"].to_numpy(dtype=np.float64), weights)
        s_freq, _, _ = _correlations(
            np.where(reliable, maps["preferred_frequency_cpp"].to_numpy(dtype=np.float64), np.nan), weights
        )
        s_cv, _, _ = _correlations(
            np.where(reliable, maps["circular_variance"].to_numpy(dtype=np.float64), np.nan), weights
        )
        rows.append(
            {
                "layer": layer,
                "heads": heads_name,
                "maps": n,
                "spearman_vfss": s_vfss,
                "pearson_vfss": p_vfss,
                "spearman_peak_response": s_peak,
                "spearman_preferred_frequency": s_freq,
                "spearman_circular_variance": s_cv,
            }
        )
    return pd.DataFrame(rows)


def csf_curve(frequency_cpd: np.ndarray, csf: str = REFERENCE_CSF) -> np.ndarray:
    """The CSF on a frequency axis, normalised to peak 1 (for overlays)."""
    sensitivity = contrast_sensitivity(frequency_cpd, csf)
    top = np.nanmax(sensitivity)
    return sensitivity / top if top > 0 else sensitivity
