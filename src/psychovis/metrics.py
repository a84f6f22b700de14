"""Image-quality metrics for the `evaluate` stage: PSNR/SSIM on luma, LPIPS, and error per frequency band.

Conventions, as in the super-resolution literature:

- Images are ``numpy`` arrays of shape ``(H, W, 3)``, RGB, floating point in [0, 1] (tensors of
  shape ``(N, 3, H, W)`` in [0, 1] for :class:`LPIPS`). Values up to :data:`RANGE_TOLERANCE`
  outside [0, 1] are accepted (and clipped by the numpy metrics); anything further is an error,
  which catches [0, 255] or [-1, 1] data given by mistake.
- PSNR and SSIM are computed on the ITU-R BT.601 luma ``Y`` in [16, 235] (MATLAB's ``rgb2ycbcr``),
  with ``border`` pixels shaved off each side (usually the scale factor), by scikit-image.
- LPIPS v0.1 is rebuilt from offline parts (:mod:`psychovis.backbones`) and matches the ``lpips``
  package to float32 rounding.

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
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from psychovis.backbones import FeatureExtractor, backbone_spec, lpips_heads
from psychovis.errors import ParamsError

RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] an input may stray (float rounding of a clamped network output)."""

Y_COEFFICIENTS = (65.481, 128.553, 24.966)
"""BT.601 luma weights for R, G, B in [0, 1] giving Y on the 0-255 scale (MATLAB ``rgb2ycbcr``)."""
Y_OFFSET = 16.0
Y_DATA_RANGE = 255.0

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
"""Side of scikit-image's Gaussian SSIM window for sigma 1.5 (it truncates at 3.5 sigma): 11 pixels."""

LPIPS_EPS = 1e-10


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
        raise ParamsError(f"border must be an integer number of pixels, got {border!r}")
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


def _min_input_size(body: nn.Sequential) -> int:
    """Smallest square input side for which every conv/pool of ``body`` yields at least one pixel."""

    def output_side(side: int) -> int:
        for module in body:
            if isinstance(module, nn.Conv2d | nn.MaxPool2d):
                kernel, stride, padding = (
                    (value if isinstance(value, int) else value[0])
                    for value in (module.kernel_size, module.stride, module.padding)
                )
                side = (side + 2 * padding - kernel) // stride + 1
                if side < 1:
                    return 0
        return side

    side = 1
    while output_side(side) < 1:
        side += 1
    return side


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018) built only from offline parts; inputs in [0, 1].

    Per layer ``l`` of the backbone (VGG-16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3),
    features are unit-normalised across channels, ``f / (||f||_2 + 1e-10)``; the squared
    difference is weighted per channel by the linear head ``w_l`` and averaged over space;
    the layers are summed:
    ``d(x, y) = sum_l mean_hw sum_c w_lc (f_lchw(x) - f_lchw(y))^2``.

    Unlike the ``lpips`` package, inputs are in **[0, 1]** (not [-1, 1]). Its ScalingLayer on
    ``2u - 1`` equals the ImageNet mean/std normalisation of ``u`` that
    :class:`~psychovis.backbones.FeatureExtractor` applies (shift ``-0.030, -0.088, -0.188``
    and scale ``0.458, 0.448, 0.450`` are ``2 mean - 1`` and ``2 std``), so the two agree.
    The backbone is frozen; gradients flow to the inputs, so the metric also works as a loss.

    Args:
        backbone: ``"vgg16"`` (default, the paper's network) or ``"alexnet"`` (LPIPS's default).

    Example:
        >>> metric = LPIPS()
        >>> distance = metric(prediction, target)  # (N,) tensor, 0 for identical images

    References:
        Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
        Perceptual Metric", CVPR 2018; https://github.com/richzhang/PerceptualSimilarity (v0.1).
    """

    def __init__(self, backbone: str = "vgg16") -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        heads = lpips_heads(backbone)  # refuses untrained backbones with a clear error
        self.backbone = spec.name
        self.layers = tuple(spec.lpips_layers)
        self.extractor = FeatureExtractor(backbone, layers=self.layers)
        channels = self.extractor.channels
        for position, layer in enumerate(self.layers):
            weight = heads[layer].to(torch.float32)
            if weight.numel() != channels[layer]:
                raise ParamsError(f"LPIPS head for {layer} has {weight.numel()} weights, expected {channels[layer]}")
            self.register_buffer(f"head{position}", weight.view(1, -1, 1, 1), persistent=False)
        self.min_size = _min_input_size(self.extractor.body)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        # A metric: nothing to train, and the backbone stays in eval mode.
        return super().train(False)

    def _check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for name, tensor in (("x", x), ("y", y)):
            if not isinstance(tensor, torch.Tensor):
                raise ParamsError(f"LPIPS input {name} must be a torch.Tensor, got {type(tensor).__name__}")
            if tensor.ndim != 4 or tensor.shape[1] != 3:
                raise ParamsError(f"LPIPS input {name} must have shape (N, 3, H, W) (RGB), got {tuple(tensor.shape)}")
            if not tensor.is_floating_point():
                raise ParamsError(
                    f"LPIPS input {name} must be a float tensor in [0, 1], got {tensor.dtype}; use .float() / 255"
                )
        if x.shape != y.shape:
            raise ParamsError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        if x.shape[0] == 0:
            raise ParamsError("LPIPS inputs are an empty batch")
        if min(x.shape[2:]) < self.min_size:
            raise ParamsError(
                f"LPIPS ({self.backbone}) needs images of at least {self.min_size}x{self.min_size} pixels, "
                f"got {x.shape[2]}x{x.shape[3]}"
            )
        device = self.head0.device
        if x.device != device or y.device != device:
            raise ParamsError(f"LPIPS inputs are on {x.device}/{y.device} but the metric is on {device}; use .to()")
        with torch.no_grad():
            for name, tensor in (("x", x), ("y", y)):
                low, high = float(tensor.min()), float(tensor.max())
                if not (math.isfinite(low) and math.isfinite(high)):
                    raise ParamsError(f"LPIPS input {name} contains NaN or infinite values")
                if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
                    raise ParamsError(
                        f"LPIPS input {name} values span [{low:.4g}, {high:.4g}], expected [0, 1] "
                        "(this LPIPS takes [0, 1], not the lpips package's [-1, 1]: pass (x + 1) / 2)"
                    )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance between two image batches.

        Args:
            x: images of shape ``(N, 3, H, W)``, float in [0, 1] (H, W >= 16 for VGG-16, 31 for AlexNet).
            y: images of the same shape.

        Returns:
            Distances of shape ``(N,)``, in the backbone's dtype; 0 for identical images.

        Raises:
            ValueError: wrong type, shape, dtype, device, size or range.
        """
        self._check_inputs(x, y)
        dtype = self.head0.dtype
        batch = x.shape[0]
        features = self.extractor(torch.cat([x, y]).to(dtype))
        distance = torch.zeros(batch, dtype=dtype, device=x.device)
        for position, layer in enumerate(self.layers):
            feature = features[layer]
            feature = feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)
            difference = (feature[:batch] - feature[batch:]).pow(2)
            head = getattr(self, f"head{position}")
            distance = distance + (difference * head).sum(dim=1).mean(dim=(1, 2))
        return distance


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
        raise ParamsError(f"bands must be an integer >= 1, got {bands!r}")
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
