"""Does VFSS mean anything? An offline psychophysical test of image distances.

A human observer's contrast sensitivity function (CSF) is measured by finding, at each spatial
frequency, the smallest contrast at which a grating becomes detectable. The same experiment can
be run on any image distance ``d(reference, distorted)``: add a grating of frequency ``f`` and
contrast ``c`` to a background, and find the contrast at which ``d(background, stimulus)``
reaches a fixed criterion. ``1 / threshold`` over frequency is the distance's own "CSF", to be
compared with the human one. A distance built on feature maps that are weighted by VFSS (how
much a map's response changes where human sensitivity is high) should, if VFSS means anything,
have a CSF closer to the human one than the plain VGG distance, and the top-VFSS maps should be
closer than the bottom-VFSS or randomly chosen maps.

The protocol, with its choices (each a parameter):

- Stimulus: a vertical linear sinusoidal grating of ``f`` cycles/degree (converted to cycles/pixel
  by :func:`psychovis.gratings.cycles_per_pixel`, the paper's mapping by default), Michelson
  contrast ``c`` about a mean of 0.5, multiplied by a spatial window ``w`` and added to a
  background: ``clip(background + 0.5 c w sin(2 pi f x + phase), 0, 1)``, grey, copied into R, G
  and B. The window (a separable Tukey window by default, flat over the central half) keeps the
  grating away from the image border, where the network's zero padding would respond to the
  grating's phase at the edge rather than to its frequency.
- Phases: the distance is averaged over ``phases`` phases ``pi/2 + k pi / phases`` (a quadrature
  pair by default), as psychophysics randomises phase. With two or more phases the pixel MSE of a
  grating on grey is exactly ``c^2 mean(w^2) / 8`` at every frequency, so the pixel-MSE "CSF" is
  flat (a check of the apparatus).
- Backgrounds: uniform grey 0.5; a grey-level natural photograph (a bundled image, centre square
  crop, area-resized); band-limited white noise (contrast masking). Textured backgrounds are
  confined to ``[0.5 - a, 0.5 + a]`` (``a`` = ``amplitude``, 0.25 by default), so no pixel clips
  below contrast ``1 - 2a`` (0.5): thresholds are far lower, and each threshold reports the
  fraction of clipped pixels so the rare exception is visible.
- Criterion: one per distance, fixed across backgrounds: the distance produced on the grey
  background by the reference grating (``reference_contrast`` = 0.01 at ``reference_frequency_cpd``
  = 8 cpd, about the peak of the Mannos-Sakrison CSF, where human observers detect roughly 0.5-1 %
  contrast). So every distance is calibrated to a human-like threshold at the CSF peak, its
  sensitivity is ``1 / reference_contrast`` at the reference frequency on grey (distances become
  comparable), and a background that raises the threshold (masking) shows as a lower
  sensitivity. The networks are not linear, so the shape of their "CSF" depends on this level:
  a criterion set by a suprathreshold contrast (0.1) gives VGG curves that rise to the highest
  frequency, 0.01 gives band-pass curves; report the level with the result.
- Threshold: the distance is evaluated on a log-spaced grid of contrasts, all in one batch, and
  the first crossing of the criterion is interpolated linearly in log-distance vs log-contrast
  (exact for a power law ``d = g c^p``; with the default 12 contrasts from 0.001 to 1, VGG
  thresholds differ from those of a 24-contrast grid by 0.3 % (median), 7 % at most).
  Thresholds outside the grid are NaN; a curve that is not non-decreasing in contrast is
  flagged (``monotone`` False) and its first crossing is used.
- Scores against the human CSF (:func:`psychovis.csf.contrast_sensitivity`): the Pearson
  correlation of log sensitivity with log human sensitivity over frequency, the peak frequency,
  and the log-log slope above the peak (the high-frequency fall-off).

All VGG-based distances (plain, VFSS-weighted, top-k/bottom-k/random-k selections, and LPIPS) are
computed from one shared forward pass: per-map squared feature differences are kept, and every
weighting is a matrix product of them. That is what makes the map-subset curve
(:func:`subset_curve`) nearly free.

References:
    T. Tariq, M. Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual Metrics
    and A Novel Psychovisual Loss", arXiv:1812.00412.
    J. L. Mannos, D. J. Sakrison, "The effects of a visual fidelity criterion on the encoding of
    images", IEEE Trans. Information Theory 20(4), 1974.
    D. G. Pelli, B. Farell, "Why use noise?", JOSA A 16(3), 1999 (white-noise masking).
    F. A. A. Kingdom, N. Prins, "Psychophysics: A Practical Introduction", 2nd ed., Academic
    Press, 2016 (thresholds, criteria and phase randomisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.signal.windows import tukey

from psychovis.backbones import FeatureExtractor, backbone_spec, resolve_layers
from psychovis.csf import contrast_sensitivity
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.gratings import cycles_per_pixel
from psychovis.images import bundled_images
from psychovis.io import read_parquet
from psychovis.loss import PsychovisualLoss, validate_images
from psychovis.metrics import LPIPS, LPIPS_EPS
from psychovis.params import PSYCHOPHYSICS_DISTANCES
from psychovis.vfss import l1_weights

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""An image distance: ``(reference, distorted)``, both ``(N, 3, H, W)`` in [0, 1] -> ``(N,)``."""

DISTANCES: tuple[str, ...] = PSYCHOPHYSICS_DISTANCES
"""Names :func:`build_distances` knows."""
SELECTIONS: tuple[str, ...] = ("topk", "bottomk", "randomk")
"""Ways of choosing k feature maps by VFSS: highest, lowest, or at random."""
BACKGROUNDS: tuple[str, ...] = ("grey", "natural", "texture")
WINDOWS: tuple[str, ...] = ("tukey", "none")
GREY = 0.5
FLAT_TOLERANCE_DECADES = 1e-3
"""A sensitivity curve whose log10 range is below this is flat: log-correlation 0, no peak."""
MONOTONE_TOLERANCE = 1e-6
"""A drop of distance with contrast larger than this fraction of the curve's maximum is non-monotone."""
LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights, used to turn a colour photograph into a grey background."""


# ------------------------------------------------------------------------------------------- distances


def pixel_mse(reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel difference per image.

    Args:
        reference: images ``(N, 3, H, W)`` in [0, 1].
        distorted: images of the same shape.

    Returns:
        A tensor of shape ``(N,)``: ``mean_{c,h,w} (distorted - reference)^2``.

    Raises:
        ValueError: wrong type, shape, dtype or range.
    """
    validate_images(distorted, reference, (0.0, 1.0))
    return (distorted - reference).pow(2).mean(dim=(1, 2, 3))


def selection_mask(scores: np.ndarray, selection: str, k: int, seed: int = 0) -> np.ndarray:
    """A binary mask choosing ``k`` feature maps of one layer by their VFSS.

    Args:
        scores: VFSS of each map of the layer, shape ``(maps,)``.
        selection: ``topk`` (highest VFSS), ``bottomk`` (lowest VFSS) or ``randomk`` (uniformly at
            random, ignoring the scores). Ties are broken by the lower channel index, as
            :func:`psychovis.vfss.top_k_mask` does.
        k: how many maps to choose, ``1 <= k <= maps``.
        seed: seed of ``randomk`` (``numpy.random.default_rng``).

    Returns:
        A float64 array of shape ``(maps,)`` with exactly ``k`` ones and zeros elsewhere.

    Raises:
        ParamsError: unknown selection, ``k`` out of range, or scores not a non-empty finite vector.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise ParamsError(f"VFSS scores must be a non-empty finite vector, got shape {scores.shape}")
    if selection not in SELECTIONS:
        raise ParamsError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= scores.size:
        raise ParamsError(f"k must be an integer in [1, {scores.size}] for this layer, got {k!r}")
    if selection == "topk":
        chosen = np.argsort(-scores, kind="stable")[:k]
    elif selection == "bottomk":
        chosen = np.argsort(scores, kind="stable")[:k]
    else:
        chosen = np.random.default_rng(seed).choice(scores.size, size=int(k), replace=False)
    mask = np.zeros_like(scores)
    mask[chosen] = 1.0
    return mask


def build_distances(
    vfss_scores: Mapping[str, np.ndarray],
    k: int = 64,
    layers: Sequence[str] = ("relu3_2",),
    seed: int = 0,
    include: Sequence[str] = DISTANCES,
    weights: FeatureWeights | str | Path | None = None,
    backbone: str = "vgg16",
) -> dict[str, Distance]:
    """Build the image distances the psychophysical test compares.

    Args:
        vfss_scores: layer -> VFSS of each of its maps (in channel order); needed for ``topk``,
            ``bottomk``, ``randomk``, and for ``vfss`` when ``weights`` is None.
        k: maps kept per layer by the selections (``min(k, maps)`` in a smaller layer).
        layers: the feature layers of the VGG-based distances (LPIPS uses its own five).
        seed: seed of the ``randomk`` selection.
        include: which of :data:`DISTANCES` to build, in the order wanted:
            ``pixel_mse`` (:func:`pixel_mse`); ``vgg`` (plain :class:`~psychovis.loss.PsychovisualLoss`,
            uniform weights); ``vfss`` (VFSS-weighted); ``topk``, ``bottomk``, ``randomk`` (binary
            masks of k maps, as :class:`FeatureWeights` with scheme ``topk``); ``lpips_vgg``
            (:class:`psychovis.metrics.LPIPS` on VGG-16).
        weights: the VFSS weights for ``vfss``: a :class:`FeatureWeights`, or the path of one
            exported by the `weights` stage (``data/weights/vfss.safetensors``); None derives them
            from ``vfss_scores`` with :func:`psychovis.vfss.l1_weights` (what that stage exports).
        backbone: backbone of the VGG-based distances when ``weights`` does not fix it.

    Returns:
        Name -> distance, each callable as ``distance(reference, distorted)`` on ``(N, 3, H, W)``
        tensors in [0, 1] and returning ``(N,)``. The feature distances are
        ``PsychovisualLoss(..., reduction="none")`` modules.

    Raises:
        ParamsError: an unknown distance or layer, ``k`` < 1, or VFSS scores missing for a layer.
        WeightsError: a weights file is missing or unreadable.
        ValueError: the scores of a layer do not have one value per map.

    References:
        Tariq, Kim et al., arXiv:1812.00412 (VFSS weights; top-k selection in the ECCV version).
    """
    unknown = [name for name in include if name not in DISTANCES]
    if unknown or not include:
        raise ParamsError(f"distances must be a non-empty list from {list(DISTANCES)}, got unknown {unknown}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ParamsError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(weights, str | Path):
        weights = FeatureWeights.load(weights)
    if weights is not None:
        backbone = weights.backbone
    layers = resolve_layers(backbone_spec(backbone), list(layers), key="psychophysics.layers")
    needs_scores = [name for name in include if name in SELECTIONS or (name == "vfss" and weights is None)]
    if needs_scores:
        missing = [layer for layer in layers if layer not in vfss_scores]
        if missing:
            raise ParamsError(f"distances {needs_scores} need VFSS scores of layer(s) {missing}; probe them first")

    def masks(selection: str) -> FeatureWeights:
        per_layer = {}
        for layer in layers:
            scores = np.asarray(vfss_scores[layer], dtype=np.float64)
            per_layer[layer] = torch.from_numpy(selection_mask(scores, selection, min(int(k), scores.size), seed))
        metadata = {"selection": selection, "k": str(k), "seed": str(seed)}
        return FeatureWeights(backbone, "topk", {layer: w.float() for layer, w in per_layer.items()}, metadata)

    distances: dict[str, Distance] = {}
    for name in include:
        if name == "pixel_mse":
            distances[name] = pixel_mse
        elif name == "vgg":
            distances[name] = PsychovisualLoss(layers=layers, backbone=backbone, reduction="none")
        elif name == "vfss":
            chosen = weights
            if chosen is None:
                chosen = FeatureWeights(
                    backbone,
                    "vfss",
                    {layer: torch.from_numpy(l1_weights(vfss_scores[layer])).float() for layer in layers},
                )
            distances[name] = PsychovisualLoss(chosen, layers=layers, reduction="none")
        elif name in SELECTIONS:
            distances[name] = PsychovisualLoss(masks(name), layers=layers, reduction="none")
        else:
            distances[name] = LPIPS("vgg16")
    return distances


# ------------------------------------------------------------------------------------------- stimuli


@dataclass(frozen=True)
class StimulusSpec:
    """The grating experiment: image size, frequencies, contrast grid, phases, window, criterion.

    Attributes:
        size: image side in pixels (at least 16, what LPIPS-VGG needs).
        frequencies_cpd: grating frequencies in cycles/degree, increasing (at least 3).
        contrasts: the Michelson contrast grid, increasing, in (0, 1] (at least 2 values).
        phases: number of grating phases averaged over (``pi/2 + k pi / phases``).
        mapping: ``paper`` or ``physical`` (see :func:`psychovis.gratings.cycles_per_pixel`).
        viewing_distance_in: viewing distance in inches.
        pixels_per_inch: display pixel density.
        window: ``tukey`` (separable Tukey window) or ``none``.
        taper: fraction of each side of the Tukey window that tapers (0: box, 1: Hann).
        reference_frequency_cpd: frequency of the reference grating that sets the criterion.
        reference_contrast: contrast of the reference grating.
    """

    size: int = 64
    frequencies_cpd: tuple[float, ...] = tuple(np.geomspace(1.0, 28.0, 10).tolist())
    contrasts: tuple[float, ...] = tuple(np.geomspace(1e-3, 1.0, 12).tolist())
    phases: int = 2
    mapping: str = "paper"
    viewing_distance_in: float = 103.35
    pixels_per_inch: float = 89.7
    window: str = "tukey"
    taper: float = 0.5
    reference_frequency_cpd: float = 8.0
    reference_contrast: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "frequencies_cpd", tuple(float(f) for f in self.frequencies_cpd))
        object.__setattr__(self, "contrasts", tuple(float(c) for c in self.contrasts))
        if isinstance(self.size, bool) or not isinstance(self.size, int | np.integer) or self.size < 16:
            raise ParamsError(f"psychophysics.size must be an integer >= 16, got {self.size!r}")
        frequencies = np.asarray(self.frequencies_cpd)
        if frequencies.size < 3 or not np.all(np.isfinite(frequencies)) or frequencies.min() <= 0:
            raise ParamsError(f"at least 3 positive frequencies are needed, got {self.frequencies_cpd}")
        if np.any(np.diff(frequencies) <= 0):
            raise ParamsError(f"frequencies must be strictly increasing, got {self.frequencies_cpd}")
        contrasts = np.asarray(self.contrasts)
        if contrasts.size < 2 or not np.all(np.isfinite(contrasts)) or contrasts.min() <= 0 or contrasts.max() > 1:
            raise ParamsError(f"at least 2 contrasts in (0, 1] are needed, got {self.contrasts}")
        if np.any(np.diff(contrasts) <= 0):
            raise ParamsError(f"contrasts must be strictly increasing, got {self.contrasts}")
        if isinstance(self.phases, bool) or not isinstance(self.phases, int | np.integer) or self.phases < 1:
            raise ParamsError(f"psychophysics.phases must be an integer >= 1, got {self.phases!r}")
        if self.window not in WINDOWS:
            raise ParamsError(f"psychophysics.window must be one of {list(WINDOWS)}, got {self.window!r}")
        if not 0.0 <= self.taper <= 1.0:
            raise ParamsError(f"psychophysics.window_taper must be in [0, 1], got {self.taper!r}")
        if not 0.0 < self.reference_contrast <= 1.0:
            raise ParamsError(f"psychophysics.reference_contrast must be in (0, 1], got {self.reference_contrast!r}")
        if not self.reference_frequency_cpd > 0:
            raise ParamsError(
                f"psychophysics.reference_frequency_cpd must be positive, got {self.reference_frequency_cpd!r}"
            )
        highest = float(self.cpp(max(frequencies.max(), self.reference_frequency_cpd)))
        if highest > 0.5:
            raise ParamsError(
                f"the highest grating frequency is {highest:.3f} cycles/pixel, above Nyquist (0.5); lower "
                "psychophysics.frequency_max_cpd / reference_frequency_cpd or change the viewing geometry"
            )

    def cpp(self, frequency_cpd: np.ndarray | float) -> np.ndarray:
        """Cycles per pixel of frequencies in cycles/degree, with this spec's mapping and geometry."""
        return cycles_per_pixel(frequency_cpd, self.mapping, self.viewing_distance_in, self.pixels_per_inch)

    @property
    def frequency_cpp(self) -> np.ndarray:
        """The grating frequencies in cycles/pixel."""
        return self.cpp(np.asarray(self.frequencies_cpd))

    @property
    def phase_rad(self) -> np.ndarray:
        """The averaged phases ``pi/2 + k pi / phases`` (cosine phase alone when ``phases`` is 1)."""
        return math.pi / 2 + math.pi * np.arange(self.phases) / self.phases

    def spatial_window(self) -> np.ndarray:
        """The ``(size, size)`` window that multiplies the grating (all ones for ``none``)."""
        if self.window == "none":
            return np.ones((self.size, self.size))
        profile = tukey(self.size, alpha=self.taper, sym=True)
        return np.outer(profile, profile)


def _normalise_texture(texture: np.ndarray, amplitude: float) -> np.ndarray:
    """Zero-mean texture scaled so its largest excursion is ``amplitude``, about the mean 0.5."""
    centred = texture - texture.mean()
    peak = np.abs(centred).max()
    if peak == 0:
        return np.full_like(texture, GREY)
    return GREY + amplitude * centred / peak


def make_backgrounds(
    spec: StimulusSpec,
    names: Sequence[str] = BACKGROUNDS,
    natural_image: str = "astronaut",
    amplitude: float = 0.25,
    texture_band_cpd: tuple[float, float] = (1.0, 28.0),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The backgrounds gratings are added to, as grey ``(size, size)`` float64 arrays in [0, 1].

    Args:
        spec: the experiment (its ``size`` and frequency mapping are used).
        names: which of :data:`BACKGROUNDS` to make: ``grey`` (uniform 0.5); ``natural`` (the
            BT.601 luma of a bundled photograph, centre square crop, area-resized to ``size``);
            ``texture`` (white Gaussian noise band-limited to ``texture_band_cpd``, a contrast
            masker with equal power per frequency in the band).
        natural_image: which bundled image (see :data:`psychovis.images.BUNDLED_IMAGES`).
        amplitude: textured backgrounds are rescaled to mean 0.5 and peak excursion
            ``amplitude`` (in (0, 0.5]), so gratings below contrast ``1 - 2 amplitude`` never clip.
        texture_band_cpd: ``(low, high)`` band of the noise texture in cycles/degree.
        seed: seed of the noise texture.

    Returns:
        Name -> background, in the order of ``names``.

    Raises:
        ParamsError: an unknown background or image, a bad amplitude or an empty band.
    """
    unknown = [name for name in names if name not in BACKGROUNDS]
    if unknown or not names:
        raise ParamsError(f"backgrounds must be a non-empty list from {list(BACKGROUNDS)}, got unknown {unknown}")
    if not 0.0 < amplitude <= 0.5:
        raise ParamsError(f"psychophysics.background_amplitude must be in (0, 0.5], got {amplitude!r}")
    size = int(spec.size)
    backgrounds: dict[str, np.ndarray] = {}
    for name in names:
        if name == "grey":
            backgrounds[name] = np.full((size, size), GREY)
        elif name == "natural":
            image = bundled_images([natural_image])[natural_image]
            luma = image.astype(np.float64) @ np.asarray(LUMA)
            height, width = luma.shape
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            crop = torch.from_numpy(np.ascontiguousarray(luma[top : top + side, left : left + side]))
            resized = F.interpolate(crop[None, None], size=(size, size), mode="area")[0, 0].numpy()
            backgrounds[name] = _normalise_texture(resized, amplitude)
        else:
            low, high = (float(value) for value in texture_band_cpd)
            if not 0 < low < high:
                raise ParamsError(
                    f"psychophysics.texture_band_cpd must be [low, high] with 0 < low < high, got {low, high}"
                )
            low_cpp, high_cpp = (float(spec.cpp(value)) for value in (low, high))
            frequency = np.fft.fftfreq(size)
            radius = np.hypot(frequency[:, None], frequency[None, :])
            band = (radius >= low_cpp) & (radius <= high_cpp)
            if not band.any():
                raise ParamsError(
                    f"psychophysics.texture_band_cpd {low, high} holds no frequency of a {size}-pixel image "
                    f"({low_cpp:.3g}..{high_cpp:.3g} cycles/pixel); widen it"
                )
            noise = np.random.default_rng(seed).standard_normal((size, size))
            texture = np.fft.ifft2(np.fft.fft2(noise) * band).real
            backgrounds[name] = _normalise_texture(texture, amplitude)
    return backgrounds


def _check_backgrounds(backgrounds: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    if not backgrounds:
        raise ParamsError("at least one background is needed")
    checked = {}
    for name, background in backgrounds.items():
        array = np.asarray(background, dtype=np.float64)
        if array.shape != (size, size):
            raise ValueError(f"background {name!r} must have shape ({size}, {size}), got {array.shape}")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"background {name!r} must be finite and in [0, 1]")
        checked[str(name)] = array
    return checked


def render_stimuli(
    backgrounds: torch.Tensor,
    window: torch.Tensor,
    frequency_cpp: torch.Tensor,
    contrast: torch.Tensor,
    phase_rad: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add vertical gratings to backgrounds: ``clip(b + 0.5 c w sin(2 pi f x + phase), 0, 1)``.

    Pixel coordinates ``x`` are centred on the image (``-(size-1)/2 .. (size-1)/2``).

    Args:
        backgrounds: ``(N, H, W)`` grey backgrounds in [0, 1].
        window: ``(H, W)`` window multiplying the grating.
        frequency_cpp: ``(N,)`` frequencies in cycles/pixel.
        contrast: ``(N,)`` Michelson contrasts.
        phase_rad: ``(N,)`` phases in radians.

    Returns:
        ``(images, clipped)``: images ``(N, 3, H, W)`` float32 (grey copied into R, G, B) and the
        fraction of each image's pixels that were clipped, ``(N,)``.
    """
    width = backgrounds.shape[-1]
    x = torch.arange(width, dtype=torch.float64, device=backgrounds.device) - (width - 1) / 2
    wave = torch.sin(2 * math.pi * frequency_cpp[:, None] * x[None, :] + phase_rad[:, None])
    raw = backgrounds.double() + (0.5 * contrast)[:, None, None] * window.double()[None] * wave[:, None, :]
    clipped = ((raw < 0) | (raw > 1)).double().mean(dim=(1, 2))
    images = raw.clamp(0.0, 1.0).float()[:, None].expand(-1, 3, -1, -1).contiguous()
    return images, clipped


def example_stimulus(
    background: np.ndarray, spec: StimulusSpec, contrast: float = 0.5, frequency_cpd: float | None = None
) -> np.ndarray:
    """One stimulus of the experiment, for figures: a grating on ``background`` (first phase).

    Args:
        background: a ``(size, size)`` grey background in [0, 1].
        spec: the experiment.
        contrast: the grating contrast (high by default, so it is visible in a thumbnail).
        frequency_cpd: the grating frequency (default: the reference frequency).

    Returns:
        The grey stimulus, ``(size, size)`` float32 in [0, 1].
    """
    frequency = spec.reference_frequency_cpd if frequency_cpd is None else frequency_cpd
    images, _ = render_stimuli(
        torch.as_tensor(np.asarray(background, dtype=np.float64))[None],
        torch.from_numpy(spec.spatial_window()),
        torch.tensor([float(spec.cpp(frequency))], dtype=torch.float64),
        torch.tensor([float(contrast)], dtype=torch.float64),
        torch.tensor([float(spec.phase_rad[0])], dtype=torch.float64),
    )
    return images[0, 0].numpy()


# ------------------------------------------------------------------------------------------ the grid


@dataclass
class DistanceGrid:
    """Every distance, on every background, frequency and contrast of the experiment.

    Attributes:
        backgrounds: background names, in order (axis 0 of the arrays).
        frequency_cpd: the grating frequencies (axis 1), and ``frequency_cpp`` in cycles/pixel.
        contrasts: the contrast grid (axis 2).
        values: distance name -> ``(backgrounds, frequencies, contrasts)`` distance of the
            stimulus from its background, averaged over phases.
        criterion: distance name -> the distance of the reference grating on grey.
        clipped_fraction: ``(backgrounds, frequencies, contrasts)`` mean fraction of clipped pixels.
        map_errors: layer -> ``(backgrounds, frequencies, contrasts, maps)`` per-map squared feature
            difference ``mean_hw (phi_c(stimulus) - phi_c(background))^2`` averaged over phases,
            for the layers of the ``PsychovisualLoss`` distances (empty when there are none).
        map_criterion: layer -> ``(maps,)`` the same for the reference grating on grey.
        map_backbone: the backbone of ``map_errors``.
    """

    backgrounds: list[str]
    frequency_cpd: np.ndarray
    frequency_cpp: np.ndarray
    contrasts: np.ndarray
    values: dict[str, np.ndarray]
    criterion: dict[str, float]
    clipped_fraction: np.ndarray
    map_errors: dict[str, np.ndarray] = field(default_factory=dict)
    map_criterion: dict[str, np.ndarray] = field(default_factory=dict)
    map_backbone: str | None = None


def _shared_plan(distances: Mapping[str, Distance]) -> tuple[str | None, dict[str, Distance], list[str]]:
    """Which distances one shared forward pass can serve: same backbone, inputs in [0, 1].

    Returns:
        ``(backbone, shared, layers)``: the backbone of the first feature distance, the
        ``PsychovisualLoss`` / ``LPIPS`` distances on it, and the union of their layers.
    """
    backbone, shared, layers = None, {}, []
    for name, distance in distances.items():
        if isinstance(distance, PsychovisualLoss) and distance.data_range == (0.0, 1.0):
            candidate, wanted = distance.extractor.spec.name, distance.layers
        elif isinstance(distance, LPIPS):
            candidate, wanted = distance.backbone, list(distance.layers)
        else:
            continue
        if backbone is None:
            backbone = candidate
        if candidate == backbone:
            shared[name] = distance
            layers.extend(layer for layer in wanted if layer not in layers)
    return backbone, shared, layers


def per_pair_distance(name: str, distance: Distance, reference: torch.Tensor, distorted: torch.Tensor) -> np.ndarray:
    """Run a distance on a batch of pairs, checking it returns one value per pair.

    Raises:
        ValueError: the distance reduced the batch (e.g. ``reduction="mean"``).
    """
    value = torch.as_tensor(distance(reference, distorted)).detach().reshape(-1)
    if value.numel() != len(reference):
        raise ValueError(
            f"distance {name!r} returned {value.numel()} values for {len(reference)} image pairs; "
            "it must return one value per image pair (e.g. reduction='none')"
        )
    return value.double().cpu().numpy()


def distance_grid(
    distances: Mapping[str, Distance],
    backgrounds: Mapping[str, np.ndarray],
    spec: StimulusSpec,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> DistanceGrid:
    """Evaluate every distance on every (background, frequency, contrast, phase) stimulus.

    Stimuli are rendered on the fly in batches of ``batch_size``; the reference grating on uniform
    grey (for the criterion) is in the same run. Feature distances (``PsychovisualLoss`` with
    inputs in [0, 1], and ``LPIPS``) on one backbone share one forward pass of a network truncated
    after their deepest layer, and the backgrounds' features are computed once; any other
    callable is called as ``distance(background batch, stimulus batch)``.

    Args:
        distances: name -> distance (e.g. from :func:`build_distances`).
        backgrounds: name -> ``(size, size)`` grey background in [0, 1] (see :func:`make_backgrounds`).
        spec: the experiment.
        batch_size: stimuli per forward pass.
        device: where to render and run.

    Returns:
        A :class:`DistanceGrid`.

    Raises:
        ParamsError: no distance, or a bad ``batch_size``.
        ValueError: a background of the wrong shape or range, or a distance returning a wrong shape.
    """
    if not distances:
        raise ParamsError("at least one distance is needed")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ParamsError(f"psychophysics.batch_size must be an integer >= 1, got {batch_size!r}")
    device = torch.device(device)
    checked = _check_backgrounds(backgrounds, spec.size)
    names = list(checked)
    n_b, n_f, n_c, n_p = len(names), len(spec.frequencies_cpd), len(spec.contrasts), spec.phases
    # Rows: every (background, frequency, contrast, phase), then the reference grating on grey.
    bi, fi, ci, pi = (grid.ravel() for grid in np.meshgrid(*map(np.arange, (n_b, n_f, n_c, n_p)), indexing="ij"))
    freq_cpp = np.concatenate([spec.frequency_cpp[fi], np.full(n_p, float(spec.cpp(spec.reference_frequency_cpd)))])
    contrast = np.concatenate([np.asarray(spec.contrasts)[ci], np.full(n_p, spec.reference_contrast)])
    phase = np.concatenate([spec.phase_rad[pi], spec.phase_rad])
    background_index = np.concatenate([bi, np.full(n_p, n_b)])  # index n_b: the uniform grey of the criterion
    rows = len(background_index)

    stack = np.stack([*(checked[name] for name in names), np.full((spec.size, spec.size), GREY)])
    background_images = torch.from_numpy(stack).to(device)
    window = torch.from_numpy(spec.spatial_window()).to(device)
    as_tensor = {
        "freq": torch.from_numpy(freq_cpp).to(device),
        "contrast": torch.from_numpy(contrast).to(device),
        "phase": torch.from_numpy(phase).to(device),
        "background": torch.from_numpy(background_index).to(device),
    }

    backbone, shared, layers = _shared_plan(distances)
    generic = {name: distance for name, distance in distances.items() if name not in shared}
    map_layers = [
        layer for layer in layers if any(isinstance(d, PsychovisualLoss) and layer in d.layers for d in shared.values())
    ]
    lpips_names = [name for name, distance in shared.items() if isinstance(distance, LPIPS)]
    out = {name: np.empty(rows) for name in distances}
    errors: dict[str, np.ndarray] = {}
    clipped = np.empty(rows)

    with torch.inference_mode():
        for module in distances.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        extractor = None
        if shared:
            extractor = FeatureExtractor(backbone, layers).to(device)
            reference_features = extractor(background_images.float()[:, None].expand(-1, 3, -1, -1).contiguous())
            channels = extractor.channels
            errors = {layer: np.empty((rows, channels[layer])) for layer in map_layers}
            normalised_reference = {
                layer: feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)
                for layer, feature in reference_features.items()
            }
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            index = slice(start, stop)
            which = as_tensor["background"][index]
            images, clip = render_stimuli(
                background_images[which],
                window,
                as_tensor["freq"][index],
                as_tensor["contrast"][index],
                as_tensor["phase"][index],
            )
            clipped[index] = clip.cpu().numpy()
            if generic:
                references = background_images[which].float()[:, None].expand(-1, 3, -1, -1).contiguous()
                for name, distance in generic.items():
                    out[name][index] = per_pair_distance(name, distance, references, images)
            if extractor is not None:
                # channels_last runs the convolutions about 20 % faster on CPU (and on GPU).
                features = extractor(images.contiguous(memory_format=torch.channels_last))
                for layer in map_layers:
                    difference = features[layer].float() - reference_features[layer][which].float()
                    errors[layer][index] = difference.pow(2).mean(dim=(2, 3)).double().cpu().numpy()
                for name in lpips_names:
                    metric = shared[name]
                    total = torch.zeros(stop - start, dtype=torch.float64, device=device)
                    for position, layer in enumerate(metric.layers):
                        feature = features[layer]
                        feature = feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)
                        difference = (feature - normalised_reference[layer][which]).pow(2)
                        head = getattr(metric, f"head{position}")
                        total += (difference * head).sum(dim=1).mean(dim=(1, 2)).double()
                    out[name][index] = total.cpu().numpy()
        for name, distance in shared.items():
            if isinstance(distance, PsychovisualLoss):
                total = np.zeros(rows)
                for layer in distance.layers:
                    weight = distance.layer_weights(layer).double().cpu().numpy()
                    total += errors[layer] @ weight / weight.size
                out[name] = total

    def by_grid(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        main = values[: n_b * n_f * n_c * n_p].reshape(n_b, n_f, n_c, n_p, *values.shape[1:]).mean(axis=3)
        return main, values[n_b * n_f * n_c * n_p :].mean(axis=0)

    values, criterion = {}, {}
    for name in distances:
        values[name], reference = by_grid(out[name])
        criterion[name] = float(reference)
    map_errors, map_criterion = {}, {}
    for layer, matrix in errors.items():
        map_errors[layer], map_criterion[layer] = by_grid(matrix)
    return DistanceGrid(
        backgrounds=names,
        frequency_cpd=np.asarray(spec.frequencies_cpd),
        frequency_cpp=spec.frequency_cpp,
        contrasts=np.asarray(spec.contrasts),
        values=values,
        criterion=criterion,
        clipped_fraction=by_grid(clipped)[0],
        map_errors=map_errors,
        map_criterion=map_criterion,
        map_backbone=backbone if map_errors else None,
    )


# ------------------------------------------------------------------------------------- thresholds


def find_thresholds(
    contrasts: np.ndarray, distances: np.ndarray, criterion: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The contrast at which each distance-vs-contrast curve first reaches its criterion.

    Between the last grid contrast below the criterion and the first at or above it, log
    contrast is interpolated linearly in log distance, which is exact for a power law
    ``d = g c^p``. A zero distance below the crossing is treated as a tiny positive one (the
    threshold then lies just below the upper grid point).

    Args:
        contrasts: the contrast grid, shape ``(C,)``, positive and strictly increasing.
        distances: curves of shape ``(..., C)``.
        criterion: the criterion, broadcastable to ``distances.shape[:-1]``.

    Returns:
        ``(threshold, monotone)``, both of shape ``distances.shape[:-1]``: the threshold contrast
        (NaN when the curve never reaches the criterion, already exceeds it at the lowest
        contrast, or the criterion is not positive and finite), and whether the curve is
        non-decreasing (drops smaller than :data:`MONOTONE_TOLERANCE` of its maximum are ignored).

    Raises:
        ValueError: a bad contrast grid or mismatched shapes.
    """
    contrasts = np.asarray(contrasts, dtype=np.float64)
    distances = np.asarray(distances, dtype=np.float64)
    if contrasts.ndim != 1 or contrasts.size < 2 or contrasts.min() <= 0 or np.any(np.diff(contrasts) <= 0):
        raise ValueError("contrasts must be a positive, strictly increasing vector of at least 2 values")
    if distances.ndim < 1 or distances.shape[-1] != contrasts.size:
        raise ValueError(f"distances must have shape (..., {contrasts.size}), got {distances.shape}")
    criterion = np.broadcast_to(np.asarray(criterion, dtype=np.float64), distances.shape[:-1])
    above = distances >= criterion[..., None]
    crossed = above.any(axis=-1)
    first = np.argmax(above, axis=-1)
    valid = crossed & (first > 0) & np.isfinite(criterion) & (criterion > 0)
    high = first[..., None]
    low = np.maximum(high - 1, 0)
    tiny = np.finfo(np.float64).tiny
    d_low = np.log(np.maximum(np.take_along_axis(distances, low, axis=-1)[..., 0], tiny))
    d_high = np.log(np.maximum(np.take_along_axis(distances, high, axis=-1)[..., 0], tiny))
    log_c = np.log(contrasts)
    c_low, c_high = log_c[low[..., 0]], log_c[high[..., 0]]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(d_high > d_low, (np.log(np.maximum(criterion, tiny)) - d_low) / (d_high - d_low), 1.0)
        threshold = np.exp(c_low + np.clip(fraction, 0.0, 1.0) * (c_high - c_low))
    threshold = np.where(valid, threshold, np.nan)
    scale = np.nanmax(np.abs(distances), axis=-1, initial=0.0, keepdims=True) if distances.size else 0.0
    monotone = np.all(np.diff(distances, axis=-1) >= -MONOTONE_TOLERANCE * scale, axis=-1)
    return threshold, monotone


def thresholds_frame(grid: DistanceGrid) -> pd.DataFrame:
    """Detection thresholds of every distance, background and frequency as a tidy frame.

    Args:
        grid: from :func:`distance_grid`.

    Returns:
        Columns ``distance, background, frequency_cpd, frequency_cpp, threshold, sensitivity``
        (``1 / threshold``), ``criterion``, ``monotone``, ``clipped_fraction`` (of the stimulus at
        the first grid contrast at or above the threshold; NaN where the threshold is).
    """
    frames = []
    n_b, n_f = len(grid.backgrounds), grid.frequency_cpd.size
    for name, values in grid.values.items():
        threshold, monotone = find_thresholds(grid.contrasts, values, grid.criterion[name])
        upper = np.clip(np.searchsorted(grid.contrasts, np.nan_to_num(threshold, nan=0.0)), 0, grid.contrasts.size - 1)
        clip = np.take_along_axis(grid.clipped_fraction, upper[..., None], axis=-1)[..., 0]
        frames.append(
            pd.DataFrame(
                {
                    "distance": name,
                    "background": np.repeat(grid.backgrounds, n_f),
                    "frequency_cpd": np.tile(grid.frequency_cpd, n_b),
                    "frequency_cpp": np.tile(grid.frequency_cpp, n_b),
                    "threshold": threshold.ravel(),
                    "sensitivity": 1.0 / threshold.ravel(),
                    "criterion": grid.criterion[name],
                    "monotone": monotone.ravel(),
                    "clipped_fraction": np.where(np.isfinite(threshold), clip, np.nan).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def measure_thresholds(
    distances: Mapping[str, Distance],
    backgrounds: Mapping[str, np.ndarray],
    spec: StimulusSpec,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Contrast detection thresholds of each distance: :func:`distance_grid` then :func:`thresholds_frame`.

    Args:
        distances: name -> distance.
        backgrounds: name -> ``(size, size)`` grey background in [0, 1].
        spec: the experiment.
        batch_size: stimuli per forward pass.
        device: where to run.

    Returns:
        The frame of :func:`thresholds_frame`.
    """
    return thresholds_frame(distance_grid(distances, backgrounds, spec, batch_size, device))


# ----------------------------------------------------------------------------------------- scores


def sensitivity_scores(
    frequency_cpd: np.ndarray, sensitivity: np.ndarray, csf: str = "mannos_sakrison_code"
) -> dict[str, float]:
    """Compare one sensitivity curve with the human CSF.

    Args:
        frequency_cpd: frequencies, positive and strictly increasing, shape ``(F,)``.
        sensitivity: the curve (``1 / threshold``), shape ``(F,)``; NaN, infinite or non-positive
            points are left out.
        csf: the human CSF model (see :data:`psychovis.csf.CSF_MODELS`).

    Returns:
        ``log_correlation``: Pearson correlation of ``log sensitivity`` with ``log CSF`` over the
        valid frequencies (0 for a curve flat to within :data:`FLAT_TOLERANCE_DECADES`, which
        shares no variation with the CSF); ``peak_frequency_cpd``: the frequency of maximum
        sensitivity, refined by a parabola through the peak and its neighbours in log-log
        coordinates (NaN for a flat curve); ``falloff_slope``: least-squares slope of log
        sensitivity vs log frequency over the valid frequencies above the peak (NaN with fewer
        than two; 0 for a flat curve); ``frequencies``: the number of valid points. All NaN with
        fewer than three valid points.

    Raises:
        ValueError: mismatched shapes or a bad frequency axis.
    """
    frequency = np.asarray(frequency_cpd, dtype=np.float64)
    values = np.asarray(sensitivity, dtype=np.float64)
    if frequency.ndim != 1 or values.shape != frequency.shape:
        raise ValueError(
            f"frequency_cpd and sensitivity must be vectors of one length, got {frequency.shape}, {values.shape}"
        )
    if frequency.size and (frequency.min() <= 0 or np.any(np.diff(frequency) <= 0)):
        raise ValueError("frequency_cpd must be positive and strictly increasing")
    valid = np.isfinite(values) & (values > 0)
    result = {"log_correlation": math.nan, "peak_frequency_cpd": math.nan, "falloff_slope": math.nan}
    result["frequencies"] = int(valid.sum())
    if valid.sum() < 3:
        return result
    log_f, log_s = np.log10(frequency[valid]), np.log10(values[valid])
    log_human = np.log10(contrast_sensitivity(frequency[valid], csf))
    if np.ptp(log_s) < FLAT_TOLERANCE_DECADES:
        result.update(log_correlation=0.0, falloff_slope=0.0)
        return result
    result["log_correlation"] = float(np.corrcoef(log_s, log_human)[0, 1])
    top = int(np.argmax(log_s))
    peak = log_f[top]
    if 0 < top < log_f.size - 1:
        x, y = log_f[top - 1 : top + 2], log_s[top - 1 : top + 2]
        curvature, slope, _ = np.polyfit(x, y, 2)
        if curvature < 0:
            peak = float(np.clip(-slope / (2 * curvature), x[0], x[2]))
    result["peak_frequency_cpd"] = float(10**peak)
    beyond = log_f > peak
    if beyond.sum() >= 2:
        result["falloff_slope"] = float(np.polyfit(log_f[beyond], log_s[beyond], 1)[0])
    return result


def score_thresholds(
    thresholds: pd.DataFrame, csf: str = "mannos_sakrison_code", include_human: bool = True
) -> pd.DataFrame:
    """Score every (distance, background) sensitivity curve against the human CSF.

    Args:
        thresholds: the frame of :func:`thresholds_frame`.
        csf: the human CSF model.
        include_human: add a row ``distance="human_csf", background="reference"`` scoring the CSF
            itself on the same frequencies (log-correlation 1; its peak and fall-off for scale).

    Returns:
        Columns ``distance, background, log_correlation, peak_frequency_cpd, falloff_slope,
        frequencies``, one row per curve.

    Raises:
        ValueError: the frame lacks a needed column.
    """
    needed = {"distance", "background", "frequency_cpd", "sensitivity"}
    if not needed <= set(thresholds.columns):
        raise ValueError(f"thresholds needs columns {sorted(needed)}, has {list(thresholds.columns)}")
    rows = []
    for (distance, background), curve in thresholds.groupby(["distance", "background"], sort=False):
        curve = curve.sort_values("frequency_cpd")
        scores = sensitivity_scores(curve["frequency_cpd"].to_numpy(), curve["sensitivity"].to_numpy(), csf)
        rows.append({"distance": distance, "background": background, **scores})
    if include_human and len(thresholds):
        frequency = np.sort(thresholds["frequency_cpd"].unique())
        human = sensitivity_scores(frequency, contrast_sensitivity(frequency, csf), csf)
        rows.append({"distance": "human_csf", "background": "reference", **human})
    return pd.DataFrame(
        rows,
        columns=["distance", "background", "log_correlation", "peak_frequency_cpd", "falloff_slope", "frequencies"],
    )


def masking_table(thresholds: pd.DataFrame, reference: str = "grey") -> pd.DataFrame:
    """Threshold elevation by each textured background: ``threshold(background) / threshold(grey)``.

    A value above 1 means the background masks the grating (it is harder to detect on it). The
    pixel MSE shows none (its distance does not depend on the background), the human observer a
    lot, most where the masker has power at the grating's frequency.

    Args:
        thresholds: the frame of :func:`thresholds_frame`.
        reference: the unmasked background.

    Returns:
        Columns ``distance, background, frequency_cpd, threshold_elevation`` for every background
        other than ``reference``; empty when there is no other background.

    Raises:
        ValueError: ``reference`` is not among the backgrounds.
    """
    if reference not in set(thresholds["background"]):
        raise ValueError(
            f"masking needs the {reference!r} background, thresholds have {sorted(set(thresholds['background']))}"
        )
    base = thresholds[thresholds["background"] == reference][["distance", "frequency_cpd", "threshold"]]
    others = thresholds[thresholds["background"] != reference][["distance", "background", "frequency_cpd", "threshold"]]
    merged = others.merge(base, on=["distance", "frequency_cpd"], suffixes=("", "_reference"))
    merged["threshold_elevation"] = merged["threshold"] / merged["threshold_reference"]
    return merged[["distance", "background", "frequency_cpd", "threshold_elevation"]].reset_index(drop=True)


# ----------------------------------------------------------------------------------- map subsets


def subset_curve(
    grid: DistanceGrid,
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int] = (8, 16, 32, 64, 128),
    seeds: int | Sequence[int] = 5,
    background: str = "grey",
    csf: str = "mannos_sakrison_code",
) -> pd.DataFrame:
    """How human-like is the "CSF" of the k top-VFSS maps, the k bottom ones, and k random ones?

    Each selection is the VGG distance restricted to its maps (a binary mask rescaled to mean 1,
    as :class:`~psychovis.loss.PsychovisualLoss` does), computed from the grid's per-map errors
    with no further forward pass, thresholded against its own criterion and scored with
    :func:`sensitivity_scores`.

    Args:
        grid: from :func:`distance_grid` with at least one ``PsychovisualLoss`` distance (its
            layers are the layers used here).
        vfss_scores: layer -> VFSS of each map, in channel order.
        ks: numbers of maps per layer (``min(k, maps)`` in a smaller layer).
        seeds: the ``randomk`` seeds, or how many (``0 .. seeds-1``).
        background: the background to score on.
        csf: the human CSF model.

    Returns:
        Columns ``k, selection, seed, log_correlation, peak_frequency_cpd, falloff_slope``: one row
        per ``topk`` and ``bottomk`` selection (``seed`` missing, ``<NA>``), one per seed for
        ``randomk``. Summarise with :func:`subset_summary`.

    Raises:
        ValueError: the grid has no per-map errors, or ``background`` is not in it.
        ParamsError: missing scores, scores of the wrong length, or a bad ``k``.
    """
    if not grid.map_errors:
        raise ValueError("the grid holds no per-map errors: include a PsychovisualLoss distance (e.g. 'vgg')")
    if background not in grid.backgrounds:
        raise ValueError(f"background {background!r} is not in the grid {grid.backgrounds}")
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise ParamsError(f"subset ks must be integers >= 1, got {list(ks)}")
    layers = list(grid.map_errors)
    for layer in layers:
        if layer not in vfss_scores:
            raise ParamsError(f"no VFSS scores for layer {layer}")
        if len(vfss_scores[layer]) != grid.map_errors[layer].shape[-1]:
            raise ParamsError(
                f"{layer} has {grid.map_errors[layer].shape[-1]} maps but {len(vfss_scores[layer])} VFSS scores"
            )
    combos = [(k, selection, None) for k in ks for selection in ("topk", "bottomk")]
    combos += [(k, "randomk", seed) for k in ks for seed in seed_list]
    b = grid.backgrounds.index(background)
    distances = np.zeros((len(combos), grid.frequency_cpd.size, grid.contrasts.size))
    criterion = np.zeros(len(combos))
    for layer in layers:
        scores = np.asarray(vfss_scores[layer], dtype=np.float64)
        masks = np.stack(
            [selection_mask(scores, selection, min(int(k), scores.size), seed or 0) for k, selection, seed in combos],
            axis=1,
        )
        weights = masks * (scores.size / masks.sum(axis=0))  # mean 1 per selection, as PsychovisualLoss rescales
        distances += np.moveaxis(grid.map_errors[layer][b] @ weights / scores.size, -1, 0)
        criterion += grid.map_criterion[layer] @ weights / scores.size
    threshold, _ = find_thresholds(grid.contrasts, distances, criterion[:, None])
    rows = []
    for (k, selection, seed), curve in zip(combos, threshold, strict=True):
        scores = sensitivity_scores(grid.frequency_cpd, 1.0 / curve, csf)
        rows.append({"k": int(k), "selection": selection, "seed": seed, **scores})
    frame = pd.DataFrame(rows).drop(columns="frequencies")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def subset_summary(subsets: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the log-correlation per ``(k, selection)``.

    Args:
        subsets: the frame of :func:`subset_curve`.

    Returns:
        Columns ``k, selection, mean, std, count`` (std 0 for a single deterministic selection).
    """
    summary = (
        subsets.groupby(["k", "selection"], sort=False)["log_correlation"].agg(["mean", "std", "count"]).reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def _json_number(value: float) -> float | None:
    """Rounded for a metrics file; NaN (an undefined score) becomes None (JSON null)."""
    return round(float(value), 5) if math.isfinite(value) else None


def summary_metrics(
    scores: pd.DataFrame, masking: pd.DataFrame | None = None, subsets: pd.DataFrame | None = None
) -> dict[str, dict[str, dict[str, float | None]]]:
    """The small nested dict for ``metrics/psychophysics.json`` (``dvc metrics``), JSON-safe.

    Args:
        scores: the frame of :func:`score_thresholds`.
        masking: optional frame of :func:`masking_table`; adds ``mean_threshold_elevation`` (the
            geometric mean over frequency of ``threshold / threshold on grey``) per background.
        subsets: optional frame of :func:`subset_curve`; adds ``subsets -> {selection}_k{k} ->
            {mean, std}`` of the log-correlation.

    Returns:
        ``distance -> background -> {log_correlation, peak_frequency_cpd, falloff_slope, ...}``
        with numbers rounded to 5 decimals and NaN as None.
    """
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in scores.itertuples(index=False):
        metrics.setdefault(str(row.distance), {})[str(row.background)] = {
            "log_correlation": _json_number(row.log_correlation),
            "peak_frequency_cpd": _json_number(row.peak_frequency_cpd),
            "falloff_slope": _json_number(row.falloff_slope),
        }
    if masking is not None and len(masking):
        elevation = masking.groupby(["distance", "background"], sort=False)["threshold_elevation"].apply(
            lambda values: float(np.exp(np.log(values).mean()))
        )
        for (distance, background), value in elevation.items():
            metrics.setdefault(str(distance), {}).setdefault(str(background), {})["mean_threshold_elevation"] = (
                _json_number(value)
            )
    if subsets is not None and len(subsets):
        metrics["subsets"] = {
            f"{row.selection}_k{row.k}": {"mean": _json_number(row.mean), "std": _json_number(row.std)}
            for row in subset_summary(subsets).itertuples(index=False)
        }
    return metrics


def load_vfss_inputs(
    layers: Sequence[str],
    section: str,
    need_weights: bool,
    vfss_path: str | Path = "data/vfss/vfss.parquet",
    weights_path: str | Path = "data/weights/vfss.safetensors",
) -> tuple[dict[str, np.ndarray], FeatureWeights | None]:
    """VFSS per map (by layer, in channel order) and, if asked, the exported VFSS weights.

    Args:
        layers: the layers a stage needs.
        section: the params section naming them (for error messages).
        need_weights: also load the exported weights (for the ``vfss`` distance).
        vfss_path: the `vfss` stage's table.
        weights_path: the `weights` stage's export.

    Raises:
        ParamsError: a layer was not probed, or has no exported weights.
    """
    table = read_parquet(vfss_path, columns=["layer", "channel", "vfss"])
    scores = {
        layer: rows.sort_values("channel")["vfss"].to_numpy() for layer, rows in table.groupby("layer", sort=False)
    }
    missing = [layer for layer in layers if layer not in scores]
    if missing:
        raise ParamsError(f"{section}.layers {missing} were not probed; add them to features.layers")
    if not need_weights:
        return scores, None
    weights = FeatureWeights.load(weights_path)
    absent = [layer for layer in layers if layer not in weights.weights]
    if absent:
        raise ParamsError(f"{section}.layers {absent} have no exported VFSS weights; add them to weights.layers")
    return scores, weights
