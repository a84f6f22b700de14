"""The 43 ModelFest stimuli, rendered by this project from their published definitions.

Each stimulus is a pattern ``p`` of peak ``max |p| = 1`` on a 256 x 256 canvas at 120 px/deg; at contrast ``c``
the image is ``0.5 (1 + c p)`` (mean luminance 0.5, peak contrast ``c``, as ModelFest defines
contrast). Coordinates are in degrees from the canvas centre (pixel ``size // 2``), so the same
stimulus in degrees is rendered at any ``px_per_degree`` (the data's own is 120), on a canvas
covering the same 2.13-deg field (64 px at 30 px/deg, 512 at 240). Thin features (line, dipole, edge, disk border) are
box-filtered over the pixel so they stay defined below one pixel. The two image stimuli (35 noise,
43 natural scene) are the data package's sha256-pinned tif files, resampled from their 120 px/deg.

Definitions (Carney et al. 1999; Watson & Ahumada 2005, Table 1), all Gabors in cosine phase with
vertical bars unless noted:

- 1-10: Gabors, sigma 0.5 deg, 1.12 .. 30 cpd (half-octave steps);
- 11-14: 2/4/8/16 cpd with sigma 0.28/0.14/0.07/0.035 deg (constant bandwidth);
- 15-17: elongated Gabors 4/8/16 cpd, sigma across x along the bars
  (0.28 x 0.5, 0.14 x 0.5, 0.07 x 0.5);
- 18-21: "baguettes", 4 cpd: 0.14 x 0.28, 0.14 x 0.5, 0.28 x 0.14, 0.5 x 0.14;
- 22-25: compound Gabors (mean of two, sigma 0.5): 2 + 2.83, 2 + 4, 4 + 5.66, 4 + 8 cpd;
- 26-29: Gaussian blobs, sigma 30, 8.43, 2.106, 1.05 arcmin;
- 30 edge, 31 line (0.5 arcmin), 32 dipole (two 0.5-arcmin lines of opposite sign, centres 1 arcmin apart),
  each under a Gaussian window of sigma 0.5 deg;
- 33/34: strings of five 8-cpd Gabors (sigma 0.07) 0.35 deg apart along the bars, in phase / alternating;
- 35: binary noise in a Gaussian window (image file);
- 36/37: 4-cpd Gabor, sigma 0.14, at 45 deg / vertical;
- 38/39: plaids, mean of the vertical 4-cpd Gabor (sigma 0.14) and a horizontal / 45-deg one;
- 40: disk of radius 0.1249 deg (no window); 41: Bessel J0 at 4 cpd, mean removed, Gaussian window 0.5 deg;
- 42: checkerboard of 2.81 cpd (checks 1/5.62 deg wide) turned 45 deg, Gaussian window 0.5 deg;
- 43: natural scene (image file).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from psychovis.errors import ParamsError
from psychovis.modelfest.data import N_STIMULI, data_file

NATIVE_PX_PER_DEGREE = 120.0
"""The data's own geometry (pixel = 0.5 arcmin)."""
PAPER_EFFECTIVE_PX_PER_DEGREE = 61.8
"""The geometry the authors' probe code behaves as (its cycles/pixel mapping; shared/DATA.md)."""
SIZE = 256
MEAN = 0.5


@dataclass(frozen=True)
class Stimulus:
    """One ModelFest stimulus: its number (1..43), short name and family."""

    number: int
    name: str
    family: str


FAMILIES: dict[str, tuple[int, ...]] = {
    "gabor_csf": tuple(range(1, 11)),
    "size": (11, 12, 13, 14),
    "shape": tuple(range(15, 22)),
    "compound": (22, 23, 24, 25),
    "blob": (26, 27, 28, 29),
    "line": (30, 31, 32),
    "string": (33, 34),
    "image": (35, 43),
    "oblique": (36, 37),
    "plaid": (38, 39),
    "other": (40, 41, 42),
}
"""Stimulus families (the per-family scores and the cross-validation folds)."""

_GABOR_CPD = (1.12, 2.0, 2.83, 4.0, 5.66, 8.0, 11.3, 16.0, 22.6, 30.0)
_NAMES = {
    **{n: f"gabor_{f:g}cpd" for n, f in enumerate(_GABOR_CPD, start=1)},
    11: "gabor_2cpd_small", 12: "gabor_4cpd_small", 13: "gabor_8cpd_small", 14: "gabor_16cpd_small",
    15: "elongated_4cpd", 16: "elongated_8cpd", 17: "elongated_16cpd",
    18: "baguette_14x28", 19: "baguette_14x50", 20: "baguette_28x14", 21: "baguette_50x14",
    22: "compound_2_2.83", 23: "compound_2_4", 24: "compound_4_5.66", 25: "compound_4_8",
    26: "blob_30", 27: "blob_8.43", 28: "blob_2.1", 29: "blob_1.05",
    30: "edge", 31: "line", 32: "dipole", 33: "string_in_phase", 34: "string_alternating",
    35: "noise", 36: "gabor_4cpd_45deg", 37: "gabor_4cpd_vertical", 38: "plaid_0_90", 39: "plaid_0_45",
    40: "disk", 41: "bessel", 42: "checkerboard", 43: "natural_scene",
}  # fmt: skip
STIMULI: tuple[Stimulus, ...] = tuple(
    Stimulus(n, _NAMES[n], next(family for family, members in FAMILIES.items() if n in members))
    for n in range(1, N_STIMULI + 1)
)


def family_of(numbers: Sequence[int]) -> np.ndarray:
    """The family name of each stimulus number."""
    return np.array([STIMULI[int(n) - 1].family for n in numbers])


def check_families(families: Sequence[str], key: str = "families") -> list[str]:
    """``families`` as a list, each one of :data:`FAMILIES` (else a one-line :class:`ParamsError`)."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ParamsError(f"{key} has unknown stimulus families {unknown}; allowed: {list(FAMILIES)}")
    return list(families)


def _grid(px_per_degree: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` in degrees of every pixel centre, origin at pixel ``size // 2``, x along columns."""
    axis = (np.arange(size) - size // 2) / px_per_degree
    return axis[None, :], axis[:, None]


def gabor(x, y, frequency_cpd, sigma_across, sigma_along=None, orientation_deg=0.0, sign=1.0, centre=(0.0, 0.0)):
    """Cosine-phase Gabor: ``cos(2 pi f u) exp(-u^2 / 2 sa^2 - v^2 / 2 sv^2)``, peak 1.

    ``u`` runs across the bars (orientation 0: vertical bars, ``u = x``), ``v`` along them;
    ``centre`` shifts the patch (degrees, ``(x, y)``).
    """
    sigma_along = sigma_across if sigma_along is None else sigma_along
    theta = np.deg2rad(orientation_deg)
    dx, dy = x - centre[0], y - centre[1]
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return (
        sign
        * np.cos(2 * np.pi * frequency_cpd * u)
        * np.exp(-(u**2) / (2 * sigma_across**2) - v**2 / (2 * sigma_along**2))
    )


def gaussian(x, y, sigma):
    """``exp(-(x^2 + y^2) / 2 sigma^2)``, peak 1."""
    return np.exp(-(x**2 + y**2) / (2 * sigma**2))


def band_coverage(x, low, high, px_per_degree):
    """Fraction of each pixel (width ``1/ppd``, centred at ``x``) inside ``[low, high]`` degrees."""
    half = 0.5 / px_per_degree
    return np.clip(np.minimum(x + half, high) - np.maximum(x - half, low), 0.0, None) * px_per_degree


def _image_pattern(name: str, px_per_degree: float, size: int) -> np.ndarray:
    from PIL import Image
    from scipy import ndimage

    with Image.open(data_file(name)) as handle:
        image = np.asarray(handle, dtype=np.float64) / 255.0
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    pattern = image - MEAN
    zoom = px_per_degree / NATIVE_PX_PER_DEGREE
    if not np.isclose(zoom, 1.0):
        pattern = ndimage.zoom(pattern, zoom, order=1, grid_mode=True, mode="grid-constant")
    out = np.zeros((size, size))
    # centre the (resampled) image on the canvas, cropping or padding with the mean
    h, w = pattern.shape
    top, left = (h - size) // 2, (w - size) // 2
    src = pattern[max(top, 0) : max(top, 0) + size, max(left, 0) : max(left, 0) + size]
    dt, dl = max(-top, 0), max(-left, 0)
    out[dt : dt + src.shape[0], dl : dl + src.shape[1]] = src
    return out


FIELD_DEG = SIZE / NATIVE_PX_PER_DEGREE
"""The field the observers saw: 256 px at 120 px/deg, 2.13 deg square."""


def canvas_size(px_per_degree: float) -> int:
    """Pixels across ModelFest's 2.13-deg field at ``px_per_degree`` (256 at 120; at least 32)."""
    return max(32, round(FIELD_DEG * px_per_degree))


def pattern(number: int, px_per_degree: float = NATIVE_PX_PER_DEGREE, size: int | None = None) -> np.ndarray:
    """Stimulus ``number`` (1..43) at unit peak contrast: a ``(size, size)`` float64 pattern.

    Contrast is defined at the data's own geometry: the pattern is scaled so that ``max |p| = 1`` at
    120 px/deg and the same factor is used at every other px/deg (where box-filtered thin features
    may peak lower: at 30 px/deg the two lines of the dipole fall in one pixel and cancel).
    ``size`` defaults to :func:`canvas_size` (the same 2.13-deg field at every px/deg).

    Raises:
        ParamsError: a number outside 1..43, or ``px_per_degree`` / ``size`` not positive.
    """
    if not 1 <= int(number) <= N_STIMULI:
        raise ParamsError(f"ModelFest stimulus numbers are 1..{N_STIMULI}, got {number!r}")
    size = canvas_size(px_per_degree) if size is None else int(size)
    p = _raw_pattern(int(number), float(px_per_degree), size)
    return p / _native_peak(int(number))


@functools.lru_cache(maxsize=64)
def _native_peak(number: int) -> float:
    return float(np.abs(_raw_pattern(number, NATIVE_PX_PER_DEGREE, SIZE)).max())


def _raw_pattern(number: int, px_per_degree: float, size: int) -> np.ndarray:
    if not px_per_degree > 0 or size < 8:
        raise ParamsError(f"px_per_degree must be > 0 and size >= 8, got {px_per_degree!r}, {size!r}")
    n = int(number)
    x, y = _grid(px_per_degree, size)
    arcmin = 1.0 / 60.0
    native_px = 1.0 / NATIVE_PX_PER_DEGREE  # the 0.5-arcmin pixel the line stimuli are defined in
    window = None
    if n <= 10:
        p = gabor(x, y, _GABOR_CPD[n - 1], 0.5)
    elif n <= 14:
        p = gabor(x, y, (2.0, 4.0, 8.0, 16.0)[n - 11], (0.28, 0.14, 0.07, 0.035)[n - 11])
    elif n <= 21:
        f, across, along = {
            15: (4.0, 0.28, 0.5), 16: (8.0, 0.14, 0.5), 17: (16.0, 0.07, 0.5),
            18: (4.0, 0.14, 0.28), 19: (4.0, 0.14, 0.5), 20: (4.0, 0.28, 0.14), 21: (4.0, 0.5, 0.14),
        }[n]  # fmt: skip
        p = gabor(x, y, f, across, along)
    elif n <= 25:
        f1, f2 = {22: (2.0, 2 * np.sqrt(2)), 23: (2.0, 4.0), 24: (4.0, 4 * np.sqrt(2)), 25: (4.0, 8.0)}[n]
        p = (gabor(x, y, f1, 0.5) + gabor(x, y, f2, 0.5)) / 2
    elif n <= 29:
        p = gaussian(x, y, (30.0, 8.43, 2.106, 1.05)[n - 26] * arcmin)
    elif n == 30:
        edge = -0.5 * native_px  # between two pixels at the native geometry
        p = 2 * band_coverage(x, edge, np.inf, px_per_degree) - 1 + 0 * y
        window = 0.5
    elif n == 31:
        p = band_coverage(x, -native_px / 2, native_px / 2, px_per_degree) + 0 * y
        window = 0.5
    elif n == 32:
        # two 1-pixel (0.5 arcmin) lines of opposite sign, centres 2 pixels (1 arcmin) apart
        plus = band_coverage(x, -1.5 * native_px, -0.5 * native_px, px_per_degree)
        minus = band_coverage(x, 0.5 * native_px, 1.5 * native_px, px_per_degree)
        p = plus - minus + 0 * y
        window = 0.5
    elif n in (33, 34):
        signs = (1, 1, 1, 1, 1) if n == 33 else (1, -1, 1, -1, 1)
        p = sum(gabor(x, y, 8.0, 0.07, sign=s, centre=(0.0, (i - 2) * 0.35)) for i, s in enumerate(signs))
    elif n == 35:
        p = _image_pattern("modelfest_noise.tif", px_per_degree, size)
    elif n in (36, 37):
        p = gabor(x, y, 4.0, 0.14, orientation_deg=45.0 if n == 36 else 0.0)
    elif n in (38, 39):
        p = (gabor(x, y, 4.0, 0.14) + gabor(x, y, 4.0, 0.14, orientation_deg=90.0 if n == 38 else 45.0)) / 2
    elif n == 40:
        radius = 0.1249
        r = np.sqrt(x**2 + y**2)
        p = np.clip((radius - r) * px_per_degree + 0.5, 0.0, 1.0)
    elif n == 41:
        from scipy.special import j0

        p = j0(2 * np.pi * 4.0 * np.sqrt(x**2 + y**2))
        p = p - p.mean()
        window = 0.5
    elif n == 42:
        f = 2.81
        u, v = (x + y) / np.sqrt(2), (y - x) / np.sqrt(2)
        p = np.sign(np.cos(2 * np.pi * f * u) * np.cos(2 * np.pi * f * v))  # a check centred on the origin
        window = 0.5
    else:
        p = _image_pattern("modelfest_natural_scene.tif", px_per_degree, size)
    if window is not None:
        p = p * gaussian(x, y, window)
    return np.asarray(p, dtype=np.float64)


def patterns(
    px_per_degree: float = NATIVE_PX_PER_DEGREE, numbers: Sequence[int] | None = None, size: int | None = None
) -> np.ndarray:
    """Stimuli ``numbers`` (default all 43) at unit contrast: ``(len(numbers), size, size)`` float32."""
    numbers = list(range(1, N_STIMULI + 1)) if numbers is None else list(numbers)
    return np.stack([pattern(n, px_per_degree, size) for n in numbers]).astype(np.float32)


def images(unit: np.ndarray, contrasts: np.ndarray) -> np.ndarray:
    """``0.5 (1 + c p)`` for every pattern and contrast: ``(stimuli, contrasts, H, W)`` in [0, 1].

    Args:
        unit: ``(stimuli, H, W)`` patterns of peak 1 (:func:`patterns`).
        contrasts: ``(contrasts,)`` peak contrasts in (0, 1].
    """
    c = np.asarray(contrasts, dtype=np.float32)
    return MEAN * (1.0 + c[None, :, None, None] * unit[:, None])
