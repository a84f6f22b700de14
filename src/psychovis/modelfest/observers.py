"""Observers of the ModelFest stimuli: a distance to the blank, a criterion, a threshold.

An observer's threshold for a stimulus is the contrast at which its distance between the
stimulus and the blank (uniform 0.5) reaches a criterion. Every observer is given as
:class:`Curves`: its distance at each contrast of one grid, per stimulus. The threshold for a
criterion is read off the curve by monotone interpolation in log distance over log contrast
(exact for distances that are a power of contrast, like every contrast-energy observer; the
curve is made non-decreasing first). One criterion per person is the only free parameter:
:func:`fit_criteria` picks it to minimise the RMS error in dB over the training stimuli.

Observers:

- classical, computed here: ``constant`` (the same threshold for every stimulus: the null),
  ``pixel_energy`` (contrast energy, sum of squared contrast), ``energy_<csf>`` (energy after
  filtering by a CSF in cycles/degree; each CSF of :mod:`psychovis.csf`, Barten at ModelFest's
  30 cd/m^2 and 2.13 deg field) and ``energy_sso_oblique`` (the Standard Spatial Observer's CSF
  with its oblique-effect filter; Watson & Ahumada 2005);
- deep: any image distance (:mod:`psychovis.distances`), plus the per-map-weighted readings of one
  shared pass (``gain_normalised``: every map's error divided by its own mean error over the
  stimuli at the top contrast, so each map counts equally whatever its response gain).

References:
    A. B. Watson, A. J. Ahumada, "A standard model for foveal detection of spatial contrast",
    J. Vision 5(9):6, 2005 (energy observers, the oblique-effect filter).
    A. B. Watson, C. V. Ramirez, "A standard observer for spatial vision", Invest. Ophthalmol.
    Vis. Sci. 41(4):S713, 2000 (the SSO CSF).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from psychovis.csf import barten_2003, contrast_sensitivity, standard_spatial_observer
from psychovis.distances.engine import Distance, map_errors, per_pair_distance
from psychovis.distances.plan import SharedPlan
from psychovis.errors import ParamsError
from psychovis.modelfest.stimuli import MEAN
from psychovis.progress import Progress

MODELFEST_LUMINANCE_CD_M2 = 30.0
MODELFEST_FIELD_DEG = 256 / 120
OBLIQUE_CORNER_CPD = 3.48
OBLIQUE_SLOPE_CPD = 13.57
"""The SSO oblique-effect filter: ``1 - (1 - exp(-(f - corner) / slope)) sin^2(2 theta)`` above ``corner``."""
EXTRAPOLATION_DECADES = 3.0
"""Thresholds are extrapolated at most this far beyond the contrast grid (then clipped)."""


@dataclass
class Curves:
    """One observer's distance to the blank, per stimulus and contrast.

    Attributes:
        contrasts: ``(C,)`` increasing peak contrasts.
        values: ``(S, C)`` distances (>= 0).
    """

    contrasts: np.ndarray
    values: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)

    def log_range(self) -> tuple[float, float]:
        """The range of ``log10`` distance over the grid (zeros ignored)."""
        positive = self.values[self.values > 0]
        if positive.size == 0:
            raise ValueError("an observer's distance is zero on every stimulus and contrast")
        return float(np.log10(positive.min())), float(np.log10(positive.max()))


def contrast_grid(contrast_min: float, contrast_max: float, n: int) -> np.ndarray:
    """``n`` log-spaced peak contrasts from ``contrast_min`` to ``contrast_max``."""
    if not 0 < contrast_min < contrast_max <= 1 or n < 2:
        raise ParamsError(
            f"need 0 < contrast_min < contrast_max <= 1 and >= 2 contrasts, got {contrast_min}, {contrast_max}, {n}"
        )
    return np.geomspace(contrast_min, contrast_max, int(n))


def power_curves(energy: np.ndarray, contrasts: np.ndarray, exponent: float = 2.0) -> Curves:
    """Curves of a distance ``energy_s * c^exponent`` (every contrast-energy observer)."""
    energy = np.asarray(energy, dtype=np.float64)
    return Curves(np.asarray(contrasts, dtype=np.float64), energy[:, None] * np.asarray(contrasts)[None, :] ** exponent)


def thresholds_log10(curves: Curves, log10_criterion: np.ndarray | float) -> np.ndarray:
    """``log10`` threshold contrast of every stimulus at each criterion.

    Args:
        curves: the observer.
        log10_criterion: scalar or ``(K,)`` log10 criteria.

    Returns:
        ``(S,)`` for a scalar criterion, else ``(K, S)``. Beyond the grid the end segments are
        extended (a power law), at most :data:`EXTRAPOLATION_DECADES` decades.
    """
    k = np.atleast_1d(np.asarray(log10_criterion, dtype=np.float64))
    log_c = np.log10(curves.contrasts)
    tiny = np.finfo(np.float64).tiny
    log_d = np.log10(np.maximum(np.maximum.accumulate(curves.values, axis=1), tiny))
    out = np.empty((k.size, log_d.shape[0]))
    lo_c, hi_c = log_c[0] - EXTRAPOLATION_DECADES, log_c[-1] + EXTRAPOLATION_DECADES
    for s, row in enumerate(log_d):
        # strictly increasing knots for interpolation (flat stretches keep their first point)
        keep = np.concatenate([[True], np.diff(row) > 1e-12])
        xs, ys = row[keep], log_c[keep]
        if xs.size == 1:
            out[:, s] = np.where(k <= xs[0], lo_c, hi_c)
            continue
        inside = np.interp(k, xs, ys)
        low_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        high_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        inside = np.where(k < xs[0], ys[0] + (k - xs[0]) * low_slope, inside)
        inside = np.where(k > xs[-1], ys[-1] + (k - xs[-1]) * high_slope, inside)
        out[:, s] = np.clip(inside, lo_c, hi_c)
    return out[0] if np.ndim(log10_criterion) == 0 else out


def criterion_grid(curves: Curves, n: int = 600) -> np.ndarray:
    """``n`` log10 criteria spanning the observer's distances (with a decade's margin)."""
    low, high = curves.log_range()
    return np.linspace(low - 1.0, high + 1.0, int(n))


def model_db(curves: Curves, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 criteria (K,), thresholds in dB (K, S))`` of an observer over its criterion grid."""
    grid = criterion_grid(curves, n)
    return grid, 20.0 * thresholds_log10(curves, grid)


def squared_errors(model: np.ndarray, people: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``E[..., k, i] = sum_s w_s (model_ks - people_is)^2`` for every criterion and person.

    Args:
        model: ``(K, S)`` model thresholds (dB).
        people: ``(P, S)`` thresholds (dB).
        weights: ``(S,)`` or ``(B, S)`` stimulus weights (counts of a resample, or a 0/1 mask).
    """
    w = np.asarray(weights, dtype=np.float64)
    first = (w[..., None, :] * model**2).sum(-1)[..., :, None]
    cross = np.einsum("...s,ks,ps->...kp", w, model, people)
    last = (w[..., None, :] * people**2).sum(-1)[..., None, :]
    return first - 2.0 * cross + last


@dataclass
class CriterionFit:
    """Per-person criteria fitted on ``train`` stimuli (0-based indices); scores only elsewhere.

    Attributes:
        train: the stimulus indices the criteria were fitted on.
        log10_criterion: ``(P,)`` the fitted criteria.
        thresholds_db: ``(P, S)`` each person's model thresholds at their criterion, every stimulus.
    """

    train: np.ndarray
    log10_criterion: np.ndarray
    thresholds_db: np.ndarray

    def errors(self, people: np.ndarray, test: Sequence[int]) -> np.ndarray:
        """``(P, len(test))`` model minus person (dB) on ``test`` stimuli.

        Raises:
            ValueError: ``test`` shares stimuli with the training set (a held-out score must not
                see its training stimuli) or is empty.
        """
        test = np.asarray(list(test), dtype=int)
        overlap = np.intersect1d(test, self.train)
        if test.size == 0 or overlap.size:
            raise ValueError(
                f"held-out stimuli must be non-empty and disjoint from the training stimuli; "
                f"shared: {sorted((overlap + 1).tolist())}"
            )
        return self.thresholds_db[:, test] - people[:, test]


def fit_criteria(
    curves: Curves, people: np.ndarray, train: Sequence[int] | None = None, n_grid: int = 600
) -> CriterionFit:
    """One criterion per person minimising the RMS dB error on ``train`` stimuli (default all).

    A 1-D search over a fine log-criterion grid (``n_grid`` points over the observer's range plus a
    decade each side): for a power-law distance this is the closed-form constant shift in dB.

    Args:
        curves: the observer.
        people: ``(P, S)`` thresholds in dB (one row per person, or one row for the mean).
        train: 0-based stimulus indices to fit on.
    """
    n_stimuli = people.shape[1]
    train_idx = np.arange(n_stimuli) if train is None else np.asarray(list(train), dtype=int)
    grid, model = model_db(curves, n_grid)
    mask = np.zeros(n_stimuli)
    mask[train_idx] = 1.0
    best = squared_errors(model, people, mask).argmin(axis=0)
    return CriterionFit(train_idx, grid[best], model[best])


def fit_all(curves: Curves, people: np.ndarray) -> CriterionFit:
    """Criteria fitted on every stimulus (the headline fit: scored in-sample, one parameter per person)."""
    fit = fit_criteria(curves, people)
    fit.train = np.arange(0)  # in-sample by declaration: errors() may score any stimulus
    return fit


# ---------------------------------------------------------------- classical observers


def spatial_frequency_grid(size: int, px_per_degree: float) -> tuple[np.ndarray, np.ndarray]:
    """``(radial frequency in cpd, orientation in rad)`` of a ``size x size`` FFT grid."""
    f = np.fft.fftfreq(size) * px_per_degree
    fx, fy = f[None, :], f[:, None]
    return np.hypot(fx, fy), np.arctan2(fy, fx)


def csf_energy(unit: np.ndarray, px_per_degree: float, sensitivity: np.ndarray | None = None) -> np.ndarray:
    """Contrast energy per stimulus, after an optional frequency filter (Parseval), in deg^2.

    Args:
        unit: ``(S, N, N)`` patterns at unit contrast.
        px_per_degree: the geometry.
        sensitivity: ``(N, N)`` filter gain on the FFT grid (None: plain contrast energy).
    """
    area = 1.0 / px_per_degree**2
    if sensitivity is None:
        return (unit.astype(np.float64) ** 2).sum(axis=(1, 2)) * area
    spectrum = np.fft.fft2(unit.astype(np.float64))
    n = unit.shape[-1] * unit.shape[-2]
    return (np.abs(spectrum * sensitivity) ** 2).sum(axis=(1, 2)) / n * area


def oblique_filter(frequency_cpd: np.ndarray, orientation_rad: np.ndarray) -> np.ndarray:
    """The SSO oblique-effect gain (1 below the corner frequency, down to ``exp(-(f-corner)/slope)`` at 45 deg)."""
    above = frequency_cpd > OBLIQUE_CORNER_CPD
    loss = (1 - np.exp(-(frequency_cpd - OBLIQUE_CORNER_CPD) / OBLIQUE_SLOPE_CPD)) * np.sin(2 * orientation_rad) ** 2
    return np.where(above, 1 - loss, 1.0)


CLASSICAL_CSFS = ("mannos_sakrison_code", "mannos_sakrison", "barten_2003", "standard_spatial_observer")


def classical_curves(
    unit: np.ndarray, px_per_degree: float, contrasts: np.ndarray, csfs: Sequence[str] = CLASSICAL_CSFS
) -> dict[str, Curves]:
    """The classical observers' curves: ``constant``, ``pixel_energy``, ``energy_<csf>``, ``energy_sso_oblique``."""
    f, theta = spatial_frequency_grid(unit.shape[-1], px_per_degree)
    out = {"constant": power_curves(np.ones(len(unit)), contrasts)}
    # constant: a threshold independent of the stimulus (the same distance c^2 for every one)
    out["pixel_energy"] = power_curves(csf_energy(unit, px_per_degree), contrasts)
    for name in csfs:
        if name == "barten_2003":
            gain = barten_2003(f, MODELFEST_LUMINANCE_CD_M2, MODELFEST_FIELD_DEG)
        else:
            gain = contrast_sensitivity(f, name, key="modelfest.csfs")
        out[f"energy_{name}"] = power_curves(csf_energy(unit, px_per_degree, gain), contrasts)
    if "standard_spatial_observer" in csfs:
        gain = standard_spatial_observer(f) * oblique_filter(f, theta)
        out["energy_sso_oblique"] = power_curves(csf_energy(unit, px_per_degree, gain), contrasts)
    return out


# ---------------------------------------------------------------- deep observers


def deep_curves(
    distances: Mapping[str, Distance],
    unit: np.ndarray,
    contrasts: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    gain_normalised: bool = False,
    progress: bool = True,
    maps_out: dict[str, np.ndarray] | None = None,
) -> dict[str, Curves]:
    """Every distance between each stimulus at each contrast and the blank, in one shared pass per batch.

    Feature distances on one backbone (``PsychovisualLoss`` with inputs in [0, 1], ``LPIPS``) share
    one forward pass (:class:`SharedPlan`); the blank's features are computed once. With
    ``gain_normalised``, the per-map errors of the first weighted distance's layers also give the
    ``gain_normalised`` observer. ``maps_out``, when given, receives layer -> ``(S, C, maps)`` per-map errors.
    """
    device = torch.device(device)
    n_s, n_c = unit.shape[0], len(contrasts)
    rows = n_s * n_c
    plan = SharedPlan.of(distances)
    out = {name: np.empty(rows) for name in distances}
    size = unit.shape[-1]
    blank = torch.full((1, 3, size, size), MEAN, device=device)
    unit_t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).to(device)
    c_t = torch.as_tensor(np.asarray(contrasts, dtype=np.float32), device=device)
    si, ci = np.divmod(np.arange(rows), n_c)
    with torch.inference_mode():
        extractor, reference, errors, normalised_reference = plan.start(distances, blank, rows, device)
        for start in Progress(range(0, rows, batch_size), desc="modelfest", unit="batch", enabled=progress):
            stop = min(start + batch_size, rows)
            s_idx = torch.as_tensor(si[start:stop], device=device)
            c_idx = torch.as_tensor(ci[start:stop], device=device)
            grey = MEAN * (1.0 + c_t[c_idx, None, None] * unit_t[s_idx])
            batch = grey[:, None].expand(-1, 3, -1, -1).contiguous()
            references = blank.expand(len(batch), -1, -1, -1)
            for name, distance in plan.generic.items():
                out[name][start:stop] = per_pair_distance(name, distance, references.contiguous(), batch)
            if extractor is not None:
                features = extractor(batch.contiguous(memory_format=torch.channels_last))
                blank_batch = {layer: reference[layer].expand(len(batch), -1, -1, -1) for layer in plan.map_layers}
                for layer, error in map_errors(features, blank_batch, plan.map_layers).items():
                    errors[layer][start:stop] = error.double().cpu().numpy()
                zeros = torch.zeros(len(batch), dtype=torch.long, device=device)
                for name, value in plan.lpips_values(features, normalised_reference, zeros).items():
                    out[name][start:stop] = value.cpu().numpy()
        out.update(plan.weighted_values(errors))
    contrasts = np.asarray(contrasts, dtype=np.float64)
    curves = {name: Curves(contrasts, values.reshape(n_s, n_c)) for name, values in out.items()}
    if maps_out is not None:
        maps_out.update({layer: matrix.reshape(n_s, n_c, -1) for layer, matrix in errors.items()})
    if gain_normalised and errors:
        total = np.zeros(rows)
        for matrix in errors.values():
            per_map = matrix.reshape(n_s, n_c, -1)
            scale = per_map[:, -1].mean(axis=0)  # each map's mean error at the top contrast
            live = scale > 0
            total += (matrix[:, live] / scale[live]).mean(axis=1)
        curves["gain_normalised"] = Curves(contrasts, total.reshape(n_s, n_c))
    return curves
