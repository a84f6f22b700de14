"""Image-quality metrics for the `evaluate` stage: PSNR/SSIM on luma and error per frequency band.

Conventions, as in the super-resolution literature:

- Images are ``numpy`` arrays of shape ``(H, W, 3)``, RGB, floating point in [0, 1]. Values up to
  :data:`~psychovis.distances.inputs.RANGE_TOLERANCE` outside [0, 1] are accepted (and clipped),
  anything further is an error, which catches [0, 255] or [-1, 1] data given by mistake.
- PSNR and SSIM are computed on the ITU-R BT.601 luma ``Y`` in [16, 235] (MATLAB's ``rgb2ycbcr``),
  with ``border`` pixels shaved off each side (usually the scale factor), by scikit-image.
- LPIPS (the third judge of the `evaluate` stage) lives with the other feature distances in
  :mod:`psychovis.distances.lpips`.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 13(4), 2004.
    Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric", CVPR 2018 (LPIPS; https://github.com/richzhang/PerceptualSimilarity).
    Recommendation ITU-R BT.601-7, "Studio encoding parameters of digital television".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from psychovis.distances.inputs import RANGE_TOLERANCE
from psychovis.errors import ParamsError, quote

Y_COEFFICIENTS = (65.481, 128.553, 24.966)
"""BT.601 luma weights for R, G, B in [0, 1] giving Y on the 0-255 scale (MATLAB ``rgb2ycbcr``)."""
Y_OFFSET = 16.0
Y_DATA_RANGE = 255.0

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
"""Side of scikit-image's Gaussian SSIM window for sigma 1.5 (it truncates at 3.5 sigma): 11 pixels."""


def _check_image(image: object, name: str) -> np.ndarray:
    """Check one RGB image array (any leading shape, 3 channels last) and return it clipped to [0, 1]."""
    if not isinstance(image, np.ndarray):
        raise ParamsError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.ndim < 1 or image.shape[-1] != 3:
        raise ParamsError(f"{name} must have 3 (RGB) channels last, e.g. (H, W, 3), got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ParamsError(
            f"{name} must be a float array in [0, 1], got dtype {image.dtype}; convert with image.astype(float) / 255"
        )
    if image.size == 0:
        raise ParamsError(f"{name} is empty (shape {image.shape})")
    if not np.all(np.isfinite(image)):
        raise ParamsError(f"{name} contains NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ParamsError(
            f"{name} values span [{low:.4g}, {high:.4g}], expected [0, 1]; "
            "rescale [0, 255] data by 1/255 or [-1, 1] data by (x + 1) / 2, and clamp network outputs"
        )
    return np.clip(image.astype(np.float64, copy=False), 0.0, 1.0)


def _check_pair(prediction: object, target: object) -> tuple[np.ndarray, np.ndarray]:
    """Check two (H, W, 3) images of one shape; return them as float64 clipped to [0, 1]."""
    checked = []
    for name, image in (("prediction", prediction), ("target", target)):
        array = _check_image(image, name)
        if array.ndim != 3:
            raise ParamsError(f"{name} must have shape (H, W, 3), got {array.shape}")
        checked.append(array)
    if checked[0].shape != checked[1].shape:
        raise ParamsError(f"prediction and target shapes differ: {checked[0].shape} vs {checked[1].shape}")
    return checked[0], checked[1]


def _check_border(border: object, shape: tuple[int, ...], minimum: int = 1) -> int:
    """Check ``border`` is a non-negative int that leaves at least ``minimum`` pixels per side."""
    if isinstance(border, bool) or not isinstance(border, int | np.integer):
        raise ParamsError(f"border must be an integer number of pixels, got {quote(border)}")
    border = int(border)
    if border < 0:
        raise ParamsError(f"border must be >= 0, got {border}")
    height, width = shape[0] - 2 * border, shape[1] - 2 * border
    if min(height, width) < minimum:
        raise ParamsError(
            f"border={border} leaves {max(height, 0)}x{max(width, 0)} of the {shape[0]}x{shape[1]} image; "
            f"at least {minimum}x{minimum} pixels must remain"
        )
    return border


def _shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border : image.shape[0] - border, border : image.shape[1] - border]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image, as MATLAB's ``rgb2ycbcr`` computes it, on the 0-255 scale.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1]: black -> 16, white -> 235.
    The result is not rounded to integers.

    Args:
        image: RGB array with channels last, e.g. ``(H, W, 3)``, floating point in [0, 1].

    Returns:
        Array of the leading shape (e.g. ``(H, W)``), float64, in [16, 235].

    Raises:
        ValueError: not float, not 3 channels last, non-finite or outside [0, 1].

    References:
        Recommendation ITU-R BT.601-7; MATLAB ``rgb2ycbcr`` (the convention of SR benchmarks,
        e.g. Set5/Set14 PSNR-Y).
    """
    rgb = _check_image(image, "image")
    return Y_OFFSET + rgb @ np.asarray(Y_COEFFICIENTS)


def psnr_y(prediction: np.ndarray, target: np.ndarray, border: int) -> float:
    """Peak signal-to-noise ratio on the luma channel, ``border`` pixels shaved off each side.

    ``PSNR = 10 log10(255^2 / MSE(Y_pred, Y_target))`` by
    ``skimage.metrics.peak_signal_noise_ratio(data_range=255)``.

    Args:
        prediction: reconstructed image ``(H, W, 3)``, float in [0, 1].
        target: reference image of the same shape.
        border: pixels removed on each side before comparison (commonly the SR scale factor).

    Returns:
        PSNR in dB; ``math.inf`` when the shaved luma images are identical (no warning is emitted).

    Raises:
        ValueError: bad shapes, dtypes or ranges, or a border that leaves no pixel.

    References:
        Wang & Bovik, "Mean squared error: love it or leave it?", IEEE Signal Processing Magazine
        26(1), 2009; the SR convention of Dong et al., "Image Super-Resolution Using Deep
        Convolutional Networks" (SRCNN), TPAMI 2016.
    """
    prediction, target = _check_pair(prediction, target)
    border = _check_border(border, target.shape)
    y_prediction = _shave(rgb_to_y(prediction), border)
    y_target = _shave(rgb_to_y(target), border)
    if np.array_equal(y_prediction, y_target):
        return math.inf
    return float(peak_signal_noise_ratio(y_target, y_prediction, data_range=Y_DATA_RANGE))


def ssim_y(prediction: np.ndarray, target: np.ndarray, border: int) -> float:
    """Structural similarity on the luma channel, ``border`` pixels shaved off each side.

    ``skimage.metrics.structural_similarity`` with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255``: the settings of Wang et al.'s MATLAB code that
    SR papers report. The mean SSIM excludes a margin of half the 11-pixel window, as
    scikit-image does.

    Args:
        prediction: reconstructed image ``(H, W, 3)``, float in [0, 1].
        target: reference image of the same shape.
        border: pixels removed on each side before comparison (commonly the SR scale factor).

    Returns:
        Mean SSIM in [-1, 1]; exactly 1.0 for identical images.

    Raises:
        ValueError: bad shapes, dtypes or ranges, or a border that leaves less than the 11x11
            window.

    References:
        Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
        structural similarity", IEEE TIP 13(4), 2004.
    """
    prediction, target = _check_pair(prediction, target)
    border = _check_border(border, target.shape, minimum=SSIM_WINDOW)
    y_prediction = _shave(rgb_to_y(prediction), border)
    y_target = _shave(rgb_to_y(target), border)
    return float(
        structural_similarity(
            y_target,
            y_prediction,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=Y_DATA_RANGE,
        )
    )


def frequency_band_errors(prediction: np.ndarray, target: np.ndarray, bands: int) -> pd.DataFrame:
    """Error power per spatial-frequency band, from the radially averaged power spectrum of luma.

    The 2-D FFT of the luma error ``Y_pred - Y_target`` and of ``Y_target`` (0-255 scale) is
    taken with periodic boundaries (no window). Each frequency bin ``(fy, fx)`` (numpy's
    ``fftfreq``, cycles/pixel) falls in a band by its radius ``sqrt(fy^2 + fx^2)``; bands are
    log-spaced from ``1 / min(H, W)`` (the lowest non-zero frequency) to 0.5 (Nyquist), each
    half-open ``[low, high)`` except the last, which includes 0.5. The DC bin and the corner bins
    beyond 0.5 cycles/pixel belong to no band.

    Power is ``|FFT|^2 / (H W)`` averaged over the bins of the band, so by Parseval the mean of
    ``error_power`` over all bins (DC and corners included) is the luma MSE.

    Args:
        prediction: reconstructed image ``(H, W, 3)``, float in [0, 1].
        target: reference image of the same shape.
        bands: number of log-spaced bands (>= 1).

    Returns:
        One row per band with columns ``band`` (0 = lowest), ``low_cpp``, ``high_cpp``,
        ``center_cpp`` (geometric centre), ``n_frequencies`` (FFT bins in the band),
        ``error_power``, ``signal_power`` (in (0-255 luma)^2) and ``relative_error_db`` =
        ``10 log10(error_power / signal_power)``. Power is NaN for a band holding no FFT bin
        (too many bands for a small image); ``relative_error_db`` is ``-inf`` where the error
        power is 0.

    Raises:
        ValueError: bad shapes, dtypes or ranges, an image smaller than 2x2, or ``bands < 1``.

    References:
        van der Schaaf & van Hateren, "Modelling the power spectra of natural images", Vision
        Research 36(17), 1996 (radially averaged power spectra).
    """
    prediction, target = _check_pair(prediction, target)
    if isinstance(bands, bool) or not isinstance(bands, int | np.integer) or bands < 1:
        raise ParamsError(f"bands must be an integer >= 1, got {quote(bands)}")
    height, width = target.shape[:2]
    if min(height, width) < 2:
        raise ParamsError(f"frequency bands need an image of at least 2x2 pixels, got {height}x{width}")
    bands = int(bands)
    y_target = rgb_to_y(target)
    error = rgb_to_y(prediction) - y_target
    pixels = height * width
    error_spectrum = np.abs(np.fft.fft2(error)) ** 2 / pixels
    signal_spectrum = np.abs(np.fft.fft2(y_target)) ** 2 / pixels

    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]).ravel()
    edges = np.geomspace(1.0 / min(height, width), 0.5, bands + 1)
    edges[0], edges[-1] = 1.0 / min(height, width), 0.5  # exact ends despite geomspace rounding
    index = np.searchsorted(edges, radius, side="right") - 1
    index[radius == 0.5] = bands - 1  # Nyquist closes the last band
    valid = (index >= 0) & (index < bands)
    index = index[valid]
    counts = np.bincount(index, minlength=bands).astype(np.float64)
    error_sum = np.bincount(index, weights=error_spectrum.ravel()[valid], minlength=bands)
    signal_sum = np.bincount(index, weights=signal_spectrum.ravel()[valid], minlength=bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        error_power = error_sum / counts
        signal_power = signal_sum / counts
        relative_db = 10.0 * np.log10(error_power / signal_power)
    return pd.DataFrame(
        {
            "band": np.arange(bands),
            "low_cpp": edges[:-1],
            "high_cpp": edges[1:],
            "center_cpp": np.sqrt(edges[:-1] * edges[1:]),
            "n_frequencies": counts.astype(np.int64),
            "error_power": error_power,
            "signal_power": signal_power,
            "relative_error_db": relative_db,
        }
    )


ARTEFACT_PEAK_RADIUS = 2
"""Half-side, in FFT bins, of the square window read at each aliasing peak (5x5 bins): a Hann-windowed
sinusoid spreads over +-1 bin when it falls on a bin and +-2 when it falls between bins."""
ARTEFACT_RING = (4.0, 8.0)
"""Inner (exclusive) and outer (inclusive) radius, in FFT bins, of the ring that gives the background."""
_MEDIAN_TO_MEAN = 1.0 / math.log(2.0)
"""A noise power spectrum's bins are exponentially distributed, whose median is ``ln 2`` times the mean."""


def _aliasing_bins(height: int, width: int, scale: int) -> np.ndarray:
    """FFT bins ``(row, column)`` of the frequencies ``(k / scale, l / scale)`` within Nyquist, DC excluded.

    Bins are rounded to the nearest integer (exact when the side is a multiple of ``scale``) and
    only one of each Hermitian pair ``f``, ``-f`` is kept: the spectrum of a real error is symmetric.
    """
    steps = np.arange(-(scale // 2), scale // 2 + 1)
    rows = np.mod(np.rint(steps * height / scale).astype(np.int64), height)
    columns = np.mod(np.rint(steps * width / scale).astype(np.int64), width)
    grid = np.stack(np.meshgrid(rows, columns, indexing="ij"), axis=-1).reshape(-1, 2)
    conjugate = np.stack([np.mod(-grid[:, 0], height), np.mod(-grid[:, 1], width)], axis=-1)
    # Canonical member of each pair (lexicographic minimum), then unique: one bin per distinct frequency.
    take_conjugate = (conjugate[:, 0] < grid[:, 0]) | ((conjugate[:, 0] == grid[:, 0]) & (conjugate[:, 1] < grid[:, 1]))
    canonical = np.where(take_conjugate[:, None], conjugate, grid)
    unique = np.unique(canonical, axis=0)
    return unique[(unique[:, 0] != 0) | (unique[:, 1] != 0)]


def _wrapped_bins(centres: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices ``(n_centres, n_offsets)`` of ``centre + offset``, wrapping around the FFT grid."""
    rows = np.mod(centres[:, None, 0] + offsets[None, :, 0], shape[0])
    columns = np.mod(centres[:, None, 1] + offsets[None, :, 1], shape[1])
    return rows, columns


def periodic_artefact_min_size(scale: int) -> int:
    """Smallest image side :func:`periodic_artefact_db` accepts at ``scale``: ``11 * scale`` pixels.

    Neighbouring aliasing peaks lie ``side / scale`` bins apart; at 11 bins or more a peak's ring
    (radius 8) never reaches another peak's window (half-side 2), so every ring keeps its bins.

    Args:
        scale: the upsampling factor.

    Returns:
        The minimum number of pixels per side.
    """
    return int(scale) * (math.ceil(ARTEFACT_RING[1]) + ARTEFACT_PEAK_RADIUS + 1)


def periodic_artefact_db(prediction: np.ndarray, target: np.ndarray, scale: int) -> float:
    """How far the error spectrum peaks at the aliasing frequencies of ``scale``x upsampling, in dB.

    Transposed convolutions and sub-pixel (pixel-shuffle) upsampling by ``s`` leave errors that
    repeat every ``s`` pixels: checkerboards. Their power sits at the frequencies
    ``(k / s, l / s)`` cycles/pixel (integers ``k``, ``l``, not both 0, ``|k|, |l| <= s / 2``),
    where a natural image's error spectrum is smooth. The measure:

    1. ``e = Y_pred - Y_target``, the BT.601 luma error (0-255 scale), minus its mean, times a
       separable 2-D Hann window (so the image border's discontinuity does not leak power along
       the frequency axes), then ``P = |FFT2(e)|^2``.
    2. For each aliasing frequency (one of each ``f``, ``-f`` pair, rounded to the nearest FFT bin,
       indices wrapping around; ``s = 4`` gives 9 positions, ``s = 2`` gives 3): ``peak`` = the mean
       of ``P`` in the ``(2r + 1)^2`` square of bins around it (``r`` = :data:`ARTEFACT_PEAK_RADIUS`
       = 2) and ``background`` = the median of ``P`` over the bins at Euclidean distance in
       ``(4, 8]`` bins (:data:`ARTEFACT_RING`), leaving out bins inside any peak square or the DC
       square, divided by ``ln 2`` (the median of an exponentially distributed noise spectrum
       bin is ``ln 2`` times its mean, so a noise-like error scores about 0 dB).
    3. The result is the mean over positions of ``10 log10(peak / background)``.

    Larger = stronger periodic artefacts; about 0 dB (+-1 dB) when the error has no structure at
    the period ``s``. Errors whose spectrum falls steeply towards Nyquist (blur) may read a few dB
    below 0: the Nyquist positions are a minimum of such spectra, below their ring. Compare methods
    on the same images rather than reading absolute values. A global intensity offset changes nothing:
    it only moves DC, which is removed. Identical images give 0.0. A small constant
    (``1e-12`` of the mean power, plus ``1e-30``) keeps the ratio finite when a region of the
    spectrum is exactly zero.

    Args:
        prediction: reconstructed image ``(H, W, 3)``, float in [0, 1].
        target: reference image of the same shape.
        scale: the upsampling factor (>= 2), i.e. the period in pixels of the artefacts sought.

    Returns:
        Mean excess of error power at the aliasing frequencies over its surroundings, in dB.

    Raises:
        ValueError: bad shapes, dtypes or ranges, ``scale`` not an integer >= 2, or an image
            smaller than :func:`periodic_artefact_min_size` (``11 * scale`` pixels per side).

    References:
        Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill, 2016.
        Harris, "On the use of windows for harmonic analysis with the discrete Fourier
        transform", Proc. IEEE 66(1), 1978 (Hann window).
    """
    prediction, target = _check_pair(prediction, target)
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 2:
        raise ParamsError(f"scale must be an integer >= 2 (the upsampling factor), got {quote(scale)}")
    scale = int(scale)
    height, width = target.shape[:2]
    minimum = periodic_artefact_min_size(scale)
    if min(height, width) < minimum:
        raise ParamsError(
            f"periodic_artefact_db needs images of at least {minimum}x{minimum} pixels at scale {scale}, "
            f"got {height}x{width}"
        )
    error = rgb_to_y(prediction) - rgb_to_y(target)
    error = (error - error.mean()) * np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2(error)) ** 2
    floor = 1e-12 * float(power.mean()) + 1e-30

    peaks = _aliasing_bins(height, width, scale)
    radius = ARTEFACT_PEAK_RADIUS
    span = np.arange(-radius, radius + 1)
    window = np.stack(np.meshgrid(span, span, indexing="ij"), axis=-1).reshape(-1, 2)
    reach = math.ceil(ARTEFACT_RING[1])
    span = np.arange(-reach, reach + 1)
    offsets = np.stack(np.meshgrid(span, span, indexing="ij"), axis=-1).reshape(-1, 2)
    distance = np.hypot(offsets[:, 0], offsets[:, 1])
    ring = offsets[(distance > ARTEFACT_RING[0]) & (distance <= ARTEFACT_RING[1])]

    # Every peak window (both members of each Hermitian pair) and the DC window are no background.
    centres = np.concatenate([peaks, np.mod(-peaks, (height, width)), np.zeros((1, 2), dtype=np.int64)])
    excluded = np.zeros((height, width), dtype=bool)
    excluded[_wrapped_bins(centres, window, (height, width))] = True
    peak_values = power[_wrapped_bins(peaks, window, (height, width))]
    ring_bins = _wrapped_bins(peaks, ring, (height, width))
    ring_values, ring_excluded = power[ring_bins], excluded[ring_bins]
    background = np.nanmedian(np.where(ring_excluded, np.nan, ring_values), axis=1) * _MEDIAN_TO_MEAN
    excess = 10.0 * np.log10((peak_values.mean(axis=1) + floor) / (background + floor))
    return float(excess.mean())
