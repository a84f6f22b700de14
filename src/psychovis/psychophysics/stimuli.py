"""The stimuli of the detection experiment: windowed gratings on grey, natural and noise backgrounds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal.windows import tukey

from psychovis.errors import ParamsError, quote
from psychovis.gratings import cycles_per_pixel
from psychovis.images import bundled_images
from psychovis.names import BACKGROUNDS, WINDOWS
from psychovis.validation import integer_at_least

GREY = 0.5
LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights, used to turn a colour photograph into a grey background."""


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
        px_per_degree: the viewing geometry stated directly (``cpp = cpd / px_per_degree``); None uses
            ``mapping`` and the display above (the paper's mapping behaves as 61.8 px/deg).
        window: ``tukey`` (separable Tukey window) or ``none``.
        taper: fraction of each side of the Tukey window that tapers (0: box, 1: Hann).
        reference_frequency_cpd: frequency of the reference grating that sets the criterion.
        reference_contrast: contrast of the reference grating (the main criterion).
        criterion_contrasts: further reference contrasts whose criteria are computed too, for a
            criterion-level sweep (the main ``reference_contrast`` is always the first level).
        min_cycles: the fewest grating cycles the lowest frequency must put across the stimulus
            side; fewer and "frequency" is ill-defined (a fraction of one cycle is a luminance ramp).
    """

    size: int = 64
    frequencies_cpd: tuple[float, ...] = tuple(np.geomspace(1.0, 28.0, 10).tolist())
    contrasts: tuple[float, ...] = tuple(np.geomspace(1e-3, 1.0, 12).tolist())
    phases: int = 2
    mapping: str = "paper"
    viewing_distance_in: float = 103.35
    pixels_per_inch: float = 89.7
    px_per_degree: float | None = None
    window: str = "tukey"
    taper: float = 0.5
    reference_frequency_cpd: float = 8.0
    reference_contrast: float = 0.01
    criterion_contrasts: tuple[float, ...] = ()
    min_cycles: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "frequencies_cpd", tuple(float(f) for f in self.frequencies_cpd))
        object.__setattr__(self, "contrasts", tuple(float(c) for c in self.contrasts))
        integer_at_least("psychophysics.size", self.size, 16)
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
        integer_at_least("psychophysics.phases", self.phases)
        if self.px_per_degree is not None and not float(self.px_per_degree) > 0:
            raise ParamsError(f"psychophysics.px_per_degree must be positive or null, got {quote(self.px_per_degree)}")
        if self.window not in WINDOWS:
            raise ParamsError(f"psychophysics.window must be one of {list(WINDOWS)}, got {quote(self.window)}")
        if not 0.0 <= self.taper <= 1.0:
            raise ParamsError(f"psychophysics.window_taper must be in [0, 1], got {quote(self.taper)}")
        if not 0.0 < self.reference_contrast <= 1.0:
            raise ParamsError(
                f"psychophysics.reference_contrast must be in (0, 1], got {quote(self.reference_contrast)}"
            )
        if not self.reference_frequency_cpd > 0:
            raise ParamsError(
                f"psychophysics.reference_frequency_cpd must be positive, got {quote(self.reference_frequency_cpd)}"
            )
        if any(not 0.0 < float(c) <= 1.0 for c in self.criterion_contrasts):
            raise ParamsError(
                f"psychophysics.criterion_contrasts must be in (0, 1], got {list(self.criterion_contrasts)}"
            )
        object.__setattr__(self, "criterion_contrasts", tuple(float(c) for c in self.criterion_contrasts))
        cycles = float(self.cpp(frequencies.min())) * self.size
        if cycles < self.min_cycles:
            raise ParamsError(
                f"the lowest grating frequency puts {cycles:.2f} cycles across the {self.size}-pixel stimulus, "
                f"fewer than {self.min_cycles:g}; raise psychophysics.frequency_min_cpd or psychophysics.size"
            )
        highest = float(self.cpp(max(frequencies.max(), self.reference_frequency_cpd)))
        if highest > 0.5:
            raise ParamsError(
                f"the highest grating frequency is {highest:.3f} cycles/pixel, above Nyquist (0.5); lower "
                "psychophysics.frequency_max_cpd / reference_frequency_cpd or change the viewing geometry"
            )

    def cpp(self, frequency_cpd: np.ndarray | float) -> np.ndarray:
        """Cycles per pixel of frequencies in cycles/degree, with this spec's mapping and geometry."""
        if self.px_per_degree is not None:
            return np.asarray(frequency_cpd, dtype=np.float64) / float(self.px_per_degree)
        return cycles_per_pixel(frequency_cpd, self.mapping, self.viewing_distance_in, self.pixels_per_inch)

    @property
    def reference_contrasts(self) -> tuple[float, ...]:
        """The criterion levels: ``reference_contrast`` first, then the other ``criterion_contrasts``."""
        extra = [c for c in self.criterion_contrasts if not math.isclose(c, self.reference_contrast)]
        return (self.reference_contrast, *dict.fromkeys(extra))

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
        raise ParamsError(f"psychophysics.background_amplitude must be in (0, 0.5], got {quote(amplitude)}")
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
