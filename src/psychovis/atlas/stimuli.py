"""Stimuli of the tuning atlas: log-spaced oriented linear gratings, and the viewing geometry.

Kept apart from :mod:`psychovis.atlas` (the fits) so that changing the analysis does not rerun
the costly probe (`atlas_features` depends on this module, not on the fits).

Orientation convention (see :func:`psychovis.gratings.render`): ``orientation_deg`` is the
direction of the grating's wave vector, measured from +x (columns, left to right) towards +y
(rows, top to bottom), i.e. clockwise on screen; 0 deg = vertical bars, 90 deg = horizontal bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from psychovis import gratings
from psychovis.errors import ParamsError


def cpd_per_cpp(mapping: str = "paper", viewing_distance_in: float = 103.35, pixels_per_inch: float = 89.7) -> float:
    """Cycles/degree per cycle/pixel under a frequency mapping (see :func:`gratings.cycles_per_pixel`)."""
    return float(1.0 / gratings.cycles_per_pixel(1.0, mapping, viewing_distance_in, pixels_per_inch))


def log_frequencies(minimum_cpp: float, maximum_cpp: float, count: int) -> np.ndarray:
    """``count`` log-spaced frequencies in cycles/pixel, from ``minimum_cpp`` to ``maximum_cpp`` (< 0.5)."""
    if not 0 < minimum_cpp < maximum_cpp <= 0.5 or count < 2:
        raise ParamsError(
            f"atlas frequencies need 0 < min < max <= 0.5 cycles/pixel and >= 2 values, "
            f"got {minimum_cpp}..{maximum_cpp} x {count}"
        )
    return np.geomspace(minimum_cpp, maximum_cpp, count)


def even_orientations(count: int) -> list[float]:
    """``count`` orientations evenly spaced over [0, 180) degrees (needed for circular variance)."""
    return [180.0 * k / count for k in range(count)]


def even_phases(count: int) -> list[float]:
    """``count`` phases evenly spaced over [0, 2 pi) radians."""
    return [2.0 * math.pi * k / count for k in range(count)]


def atlas_stimuli(
    size: int = 112,
    frequencies_cpp: Sequence[float] | np.ndarray = (0.0125, 0.05, 0.2),
    orientations_deg: Sequence[float] = (0.0, 45.0, 90.0, 135.0),
    phases_rad: Sequence[float] = (0.0, math.pi / 2, math.pi, 3 * math.pi / 2),
    contrast: float = 1.0,
    mapping: str = "paper",
    viewing_distance_in: float = 103.35,
    pixels_per_inch: float = 89.7,
    window_sigma_px: float | None = None,
) -> pd.DataFrame:
    """The atlas's stimulus table: linear gratings over frequency x orientation x phase at one contrast.

    The rows are built by :func:`psychovis.gratings.stimulus_table` (``kind="linear"``), so they
    render with :func:`psychovis.gratings.render`; ``frequency_cpd`` follows ``mapping``.
    """
    factor = cpd_per_cpp(mapping, viewing_distance_in, pixels_per_inch)
    frequencies_cpp = np.sort(np.asarray(frequencies_cpp, dtype=np.float64))
    return gratings.stimulus_table(
        kind="linear",
        size=size,
        frequencies_cpd=frequencies_cpp * factor,
        mapping=mapping,
        viewing_distance_in=viewing_distance_in,
        pixels_per_inch=pixels_per_inch,
        orientations_deg=list(orientations_deg),
        phases_rad=list(phases_rad),
        contrasts=[contrast],
        window_sigma_px=window_sigma_px,
    )


def stimuli_from_params(p: Mapping[str, object]) -> pd.DataFrame:
    """The atlas stimulus table from the validated ``atlas`` section of ``params.yaml``."""
    return atlas_stimuli(
        size=int(p["size"]),
        frequencies_cpp=log_frequencies(
            float(p["frequency_min_cpp"]), float(p["frequency_max_cpp"]), int(p["frequencies"])
        ),
        orientations_deg=even_orientations(int(p["orientations"])),
        phases_rad=even_phases(int(p["phases"])),
        contrast=float(p["contrast"]),
        mapping=str(p["frequency_mapping"]),
        viewing_distance_in=float(p["viewing_distance_in"]),
        pixels_per_inch=float(p["pixels_per_inch"]),
        window_sigma_px=None if p["window_sigma_px"] is None else float(p["window_sigma_px"]),
    )


def example_stimuli(stimuli: pd.DataFrame, frequencies: int = 8) -> pd.DataFrame:
    """A few stimuli to show: ``frequencies`` frequencies at the first orientation and phase, then
    every orientation at the middle of those frequencies (for a contact sheet)."""
    first = stimuli[(stimuli["phase_rad"] == stimuli["phase_rad"].min())]
    by_frequency = first[first["orientation_deg"] == first["orientation_deg"].min()].sort_values("frequency_cpp")
    picks = np.unique(np.linspace(0, len(by_frequency) - 1, min(frequencies, len(by_frequency))).astype(int))
    sweep = by_frequency.iloc[picks]
    middle = sweep["frequency_cpp"].iloc[len(sweep) // 2]
    oriented = first[(first["frequency_cpp"] == middle) & (first["orientation_deg"] != first["orientation_deg"].min())]
    return pd.concat([sweep, oriented.sort_values("orientation_deg")], ignore_index=True)


def layers_for(spec_layers: Sequence[str], layers: str | Sequence[str]) -> list[str]:
    """``all``, or the requested layers that this backbone has (so one list can serve several backbones).

    Raises:
        ParamsError: none of the requested layers belongs to this backbone.
    """
    if isinstance(layers, str) and layers == "all":
        return list(spec_layers)
    requested = [layers] if isinstance(layers, str) else list(layers)
    chosen = [layer for layer in spec_layers if layer in requested]
    if not chosen:
        raise ParamsError(f"atlas.layers {requested} has no layer of this backbone; allowed: {list(spec_layers)}")
    return chosen
