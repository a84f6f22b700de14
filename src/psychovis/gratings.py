"""Grating stimuli: the stimulus table, the frequency mapping, and batched rendering.

The ``paper`` preset reproduces the authors' MATLAB code: concentric sinusoids
``0.5 + 0.5*sin(2*pi*(c/100)*r - phase)`` on 227x227 pixels, ``f = 0.1:0.5:30`` cycles/degree,
with ``c = f * (3.14*d*res/18000)`` cycles per 100 px (d = 103.35 in, res = 89.7 px/in).

References:
    Tariq, Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual Metrics and
    A Novel Psychovisual Loss", arXiv:1812.00412.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import torch

from psychovis.errors import ParamsError, quote
from psychovis.names import FREQUENCY_MAPPINGS, GRATING_KINDS

STIMULUS_COLUMNS = (
    "stimulus_id",
    "kind",
    "frequency_cpd",
    "frequency_cpp",
    "orientation_deg",
    "phase_rad",
    "contrast",
    "size",
)


def frequency_axis(start: float, stop: float, step: float) -> np.ndarray:
    """MATLAB's ``start:step:stop``: values from ``start`` in steps of ``step``, not above ``stop``.

    ``frequency_axis(0.1, 30, 0.5)`` gives the paper's 60 values 0.1, 0.6, ..., 29.6.
    """
    if step <= 0 or stop < start:
        raise ParamsError(f"frequency axis needs step > 0 and stop >= start, got {start}:{step}:{stop}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    return start + step * np.arange(count, dtype=np.float64)


def pixels_per_degree(viewing_distance_in: float, pixels_per_inch: float) -> float:
    """Physical geometry: pixels spanned by one degree of visual angle at the screen centre."""
    return 2.0 * viewing_distance_in * math.tan(math.radians(0.5)) * pixels_per_inch


def cycles_per_pixel(
    frequency_cpd: np.ndarray | float,
    mapping: str = "paper",
    viewing_distance_in: float = 103.35,
    pixels_per_inch: float = 89.7,
) -> np.ndarray:
    """Convert cycles/degree to cycles/pixel.

    Args:
        frequency_cpd: spatial frequency in cycles per degree.
        mapping: ``paper`` multiplies by ``3.14*d*res/18000/100`` as the authors' code does
            (0.016172 cyc/px per cpd at the default geometry); ``physical`` divides by the
            pixels per degree of the viewing geometry (about 161.7 at the default geometry).
        viewing_distance_in: viewing distance in inches.
        pixels_per_inch: display pixel density.

    Returns:
        Frequencies in cycles per pixel.
    """
    frequency = np.asarray(frequency_cpd, dtype=np.float64)
    if mapping == "paper":
        return frequency * (3.14 * viewing_distance_in * pixels_per_inch / 18000.0) / 100.0
    if mapping == "physical":
        return frequency / pixels_per_degree(viewing_distance_in, pixels_per_inch)
    raise ParamsError(f"frequency_mapping must be one of {list(FREQUENCY_MAPPINGS)}, got {quote(mapping)}")


def stimulus_table(
    kind: str = "concentric",
    size: int = 227,
    frequencies_cpd: np.ndarray | None = None,
    mapping: str = "paper",
    viewing_distance_in: float = 103.35,
    pixels_per_inch: float = 89.7,
    orientations_deg: list[float] | None = None,
    phases_rad: list[float] | None = None,
    contrasts: list[float] | None = None,
    window_sigma_px: float | None = None,
) -> pd.DataFrame:
    """Build the table of grating stimuli, one row per stimulus (the `stimuli` stage's output).

    Args:
        kind: ``concentric`` (the paper's rings) or ``linear`` (oriented plane waves).
        size: image side in pixels.
        frequencies_cpd: spatial frequencies in cycles/degree (default: the paper's 60).
        mapping: how cycles/degree become cycles/pixel (see :func:`cycles_per_pixel`).
        viewing_distance_in: viewing distance in inches.
        pixels_per_inch: display pixel density.
        orientations_deg: orientations of linear gratings (ignored, forced to 0, for concentric).
        phases_rad: phases in radians.
        contrasts: Michelson contrasts in [0, 1].
        window_sigma_px: standard deviation in pixels of a Gaussian (Gabor) window centred on the
            image; ``None`` (the default, and the paper's stimuli) means no window, full-field
            gratings. When set, the table gains a column ``window_sigma_px``.

    Returns:
        A frame with columns :data:`STIMULUS_COLUMNS` (plus ``window_sigma_px`` when a window is
        requested), sorted by frequency, orientation, phase, contrast, with ``stimulus_id`` = row
        number.
    """
    if kind not in GRATING_KINDS:
        raise ParamsError(f"grating kind must be one of {list(GRATING_KINDS)}, got {quote(kind)}")
    if frequencies_cpd is None:
        frequencies_cpd = frequency_axis(0.1, 30.0, 0.5)
    orientations = [0.0] if kind == "concentric" else list(orientations_deg or [0.0])
    combos = list(
        itertools.product(
            np.asarray(frequencies_cpd, dtype=np.float64),
            sorted(set(orientations)),
            sorted(set(phases_rad or [0.0])),
            sorted(set(contrasts or [1.0])),
        )
    )
    table = pd.DataFrame(combos, columns=["frequency_cpd", "orientation_deg", "phase_rad", "contrast"])
    table["frequency_cpp"] = cycles_per_pixel(
        table["frequency_cpd"].to_numpy(), mapping, viewing_distance_in, pixels_per_inch
    )
    nyquist = table["frequency_cpp"].max()
    if nyquist > 0.5:
        raise ParamsError(
            f"the highest stimulus frequency is {nyquist:.3f} cycles/pixel, above Nyquist (0.5); "
            "lower stimuli.frequency_stop_cpd or change the viewing geometry"
        )
    table["kind"] = kind
    table["size"] = int(size)
    table["stimulus_id"] = np.arange(len(table), dtype=np.int64)
    if window_sigma_px is None:
        return table[list(STIMULUS_COLUMNS)]
    if not window_sigma_px > 0:
        raise ParamsError(f"window_sigma_px must be positive or None, got {quote(window_sigma_px)}")
    table["window_sigma_px"] = float(window_sigma_px)
    return table[[*STIMULUS_COLUMNS, "window_sigma_px"]]


def render(table: pd.DataFrame, device: torch.device | str = "cpu") -> torch.Tensor:
    """Render stimuli as a batch of grey RGB images in [0, 1].

    Pixel coordinates are centred on the image (``-113..113`` for 227 px, as in the paper).
    Concentric: ``0.5 + 0.5*contrast*sin(2*pi*f*r - phase)`` with ``r`` the distance from the
    centre. Linear: the same with ``r = x*cos(theta) + y*sin(theta)``, theta the orientation
    of the wave vector.

    Orientation convention: ``x`` runs along columns (left to right) and ``y`` along rows (top to
    bottom), so ``orientation_deg`` is the direction of the wave vector measured from +x towards
    +y, i.e. clockwise on screen. 0 deg gives vertical bars (luminance varies along x), 90 deg
    horizontal bars, 45 deg a wave vector pointing right-and-down (bars running from bottom-left
    to top-right). Orientations are 180-periodic for a full-contrast grating up to a phase flip.

    Window: when the table has a ``window_sigma_px`` column (see :func:`stimulus_table`), the
    modulation is multiplied by ``exp(-(x^2 + y^2) / (2 sigma^2))`` (a Gabor patch on the mean
    grey); NaN in that column means no window. Tables without the column (the paper's) render
    exactly as before.

    Args:
        table: rows of the stimulus table (all of one size).
        device: where to render (rendering on the GPU avoids a host-to-device copy).

    Returns:
        A float32 tensor of shape ``(len(table), 3, size, size)``.
    """
    sizes = table["size"].unique()
    if len(sizes) != 1:
        raise ParamsError(f"render needs stimuli of one size, got {sorted(sizes)}")
    size = int(sizes[0])
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    y, x = torch.meshgrid(coords, coords, indexing="ij")

    def column(name: str) -> torch.Tensor:
        values = torch.tensor(table[name].to_numpy(dtype=np.float64), device=device)
        return values[:, None, None]

    theta = torch.deg2rad(column("orientation_deg"))
    radius = torch.sqrt(x**2 + y**2)[None]
    linear = x[None] * torch.cos(theta) + y[None] * torch.sin(theta)
    is_concentric = torch.as_tensor((table["kind"] == "concentric").to_numpy(copy=True), device=device)[:, None, None]
    position = torch.where(is_concentric, radius, linear)
    phase = 2 * math.pi * column("frequency_cpp") * position - column("phase_rad")
    # Same operations in the same order as without a window, so unwindowed images are bit-identical.
    modulation = 0.5 * column("contrast") * torch.sin(phase)
    if "window_sigma_px" in table.columns:
        sigma = column("window_sigma_px")
        envelope = torch.exp(-(x**2 + y**2)[None] / (2 * sigma**2))
        modulation = torch.where(torch.isnan(sigma), modulation, modulation * envelope)
    grey = 0.5 + modulation
    return grey.to(torch.float32)[:, None].expand(-1, 3, -1, -1).contiguous()
