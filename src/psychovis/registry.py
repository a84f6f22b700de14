"""One record per judge, distance and backbone: the single place to add one (torch-free).

Each family used to be spread over several tables (a name tuple, an implementation dict, a
minimum-size dict, an ``elif`` chain, the report's labels and digits). Now one record carries
everything about an entry, and the rest of the project reads it:

- :mod:`psychovis.names` takes its vocabularies (``JUDGES``, ``DISTANCES``, ``BACKBONES``) from
  the keys here, so ``params.yaml`` is validated against the same names, without torch;
- the implementations are built through :meth:`JudgeRecord.build` / :meth:`DistanceRecord.build`,
  which import their ``"module:attribute"`` factory only when called;
- :mod:`psychovis.report` reads ``label`` and ``digits``; the `compare` stage reads
  ``higher_is_better``.

The recipe for adding an entry is in ``docs/architecture.md`` ("Adding a judge / a distance /
a backbone"); a test checks that every entry here is named there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def load(path: str) -> Any:
    """The object at ``"package.module:attribute"``, imported now (so that callers stay torch-free until then)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class JudgeRecord:
    """One image-quality judge of the `evaluate` stage.

    Attributes:
        name: its name in ``evaluate.judges`` and in the evaluation tables.
        factory: ``"module:function"`` building it: ``factory(scale=, border=, device=)`` returns an
            object with ``prepare(reference)`` and ``score(candidate, prepared)`` (see
            :mod:`psychovis.sr.judges`).
        higher_is_better: True for similarities (PSNR, SSIM, ...), False for distances (LPIPS, ...).
        label: column header in ``docs/results.md`` (`` *`` marks a judge sharing the loss's backbone).
        digits: decimals shown in the report.
        min_size: smallest image side (pixels, after shaving the border) it accepts.
        min_size_per_scale: a further minimum of this many pixels per unit of the SR scale (0: none).
        shares_loss_backbone: True when it computes on the ImageNet VGG-16 conv weights that the
            perceptual losses use, so it is not an independent judge of them.
        description: one sentence on what it measures.
    """

    name: str
    factory: str
    higher_is_better: bool
    label: str
    description: str
    digits: int = 4
    min_size: int = 1
    min_size_per_scale: int = 0
    shares_loss_backbone: bool = False

    def build(self, scale: int, border: int, device: Any) -> Any:
        """The judge's implementation (imports torch and its module now)."""
        return load(self.factory)(scale=scale, border=border, device=device)

    def minimum_side(self, scale: int) -> int:
        """Smallest accepted side at SR ``scale``."""
        return max(self.min_size, self.min_size_per_scale * int(scale))


MS_SSIM_KERNEL = 11
MS_SSIM_SCALES = 5
MS_SSIM_MIN_SIZE = (MS_SSIM_KERNEL - 1) * 2 ** (MS_SSIM_SCALES - 1) + 1
"""161: the 11-pixel window must fit the coarsest of the 5 scales (piq's rule). The held-out images
(about 300 to 600 px per side) are well above it, so MS-SSIM keeps its standard settings
(Wang et al. 2003) rather than a smaller window for small images."""
ARTEFACT_PIXELS_PER_SCALE = 11
"""``artefact_db`` needs ``11 * scale`` pixels per side (:func:`psychovis.sr.metrics.periodic_artefact_min_size`)."""

_J = "psychovis.sr.judges:"
JUDGE_RECORDS: dict[str, JudgeRecord] = {
    record.name: record
    for record in (
        JudgeRecord(
            "psnr_y",
            _J + "psnr_y_judge",
            True,
            "PSNR-Y (dB)",
            "PSNR on BT.601 luma in dB (MATLAB rgb2ycbcr convention): pixel fidelity.",
            digits=3,
        ),
        JudgeRecord(
            "ssim_y",
            _J + "ssim_y_judge",
            True,
            "SSIM-Y",
            "SSIM on luma, 11x11 Gaussian window (sigma 1.5), Wang et al.'s settings.",
        ),
        JudgeRecord(
            "lpips_vgg",
            _J + "lpips_vgg_judge",
            False,
            "LPIPS-VGG *",
            "LPIPS v0.1 on VGG-16: the very conv weights of the perceptual losses, kept for comparison only.",
            min_size=16,
            shares_loss_backbone=True,
        ),
        JudgeRecord(
            "lpips_alex",
            _J + "lpips_alex_judge",
            False,
            "LPIPS-Alex",
            "LPIPS v0.1 on AlexNet (the LPIPS default): another network and heads.",
            min_size=31,
        ),
        JudgeRecord(
            "dists",
            _J + "dists_judge",
            False,
            "DISTS *",
            "DISTS: the losses' VGG-16 conv weights, but with L2 pooling for max pooling and learned weights on "
            "per-map mean (texture) and correlation (structure) statistics, so only partly independent.",
            min_size=16,
            shares_loss_backbone=True,
        ),
        JudgeRecord(
            "ms_ssim",
            _J + "ms_ssim_judge",
            True,
            "MS-SSIM",
            f"Multi-scale SSIM on RGB (piq), {MS_SSIM_KERNEL}x{MS_SSIM_KERNEL} window, {MS_SSIM_SCALES} scales: "
            f"needs at least {MS_SSIM_MIN_SIZE} px per side.",
            min_size=MS_SSIM_MIN_SIZE,
        ),
        JudgeRecord(
            "haarpsi",
            _J + "haarpsi_judge",
            True,
            "HaarPSI",
            "HaarPSI (piq): Haar-wavelet coefficient similarity on YIQ, in [0, 1].",
            min_size=16,  # piq: the largest Haar filter (2^(scales + 1) = 16) must fit
        ),
        JudgeRecord(
            "vif",
            _J + "vif_judge",
            True,
            "VIF",
            "Visual information fidelity in the pixel domain on luma (piq.vif_p), 1 = lossless.",
            min_size=41,  # piq: the 17-tap filter over 4 scales
        ),
        JudgeRecord(
            "gmsd",
            _J + "gmsd_judge",
            False,
            "GMSD",
            "GMSD (piq): deviation of the gradient-magnitude similarity map, 0 = same.",
        ),
        JudgeRecord(
            "artefact_db",
            _J + "artefact_db_judge",
            False,
            "artefact (dB)",
            "Error power at the 1/scale aliasing frequencies over its neighbourhood, in dB: checkerboards.",
            digits=3,
            min_size_per_scale=ARTEFACT_PIXELS_PER_SCALE,
        ),
    )
}
"""The judges of the `evaluate` stage, in report order."""


@dataclass(frozen=True)
class DistanceRecord:
    """One image distance of the psychophysical and human-judgement experiments.

    Attributes:
        name: its name in ``psychophysics.distances`` / ``human_judgement.distances``.
        factory: ``"module:function"``; ``factory(name, context)`` returns the distance, where
            ``context`` is a :class:`psychovis.distances.catalogue.DistanceContext` (layers,
            weights, VFSS scores, k, seed, backbone).
        shares_loss_backbone: True when it runs on the loss's VGG-16 maps.
        description: one sentence.
        vfss_scores: when it needs VFSS scores: ``"never"``, ``"always"`` (a map selection), or
            ``"without_weights"`` (VFSS weights derived from the scores when no weights file is given).
    """

    name: str
    factory: str
    shares_loss_backbone: bool
    description: str
    vfss_scores: str = "never"

    def build(self, context: Any) -> Callable[..., Any]:
        """The distance (imports torch and its module now)."""
        return load(self.factory)(self.name, context)

    def needs_scores(self, has_weights: bool) -> bool:
        """Whether building it needs VFSS scores, given whether a weights file was given."""
        return self.vfss_scores == "always" or (self.vfss_scores == "without_weights" and not has_weights)


_D = "psychovis.distances.catalogue:"
DISTANCE_RECORDS: dict[str, DistanceRecord] = {
    record.name: record
    for record in (
        DistanceRecord("pixel_mse", _D + "build_pixel_mse", False, "Mean squared pixel difference."),
        DistanceRecord("vgg", _D + "build_vgg", True, "The plain VGG perceptual loss (uniform map weights)."),
        DistanceRecord(
            "vfss", _D + "build_vfss", True, "The VFSS-weighted VGG loss (the paper's weights).", "without_weights"
        ),
        DistanceRecord("topk", _D + "build_selection", True, "The VGG loss on the k highest-VFSS maps.", "always"),
        DistanceRecord("bottomk", _D + "build_selection", True, "The VGG loss on the k lowest-VFSS maps.", "always"),
        DistanceRecord("randomk", _D + "build_selection", True, "The VGG loss on k maps drawn at random.", "always"),
        DistanceRecord("lpips_vgg", _D + "build_lpips", True, "LPIPS v0.1 on VGG-16."),
        DistanceRecord("lpips_alex", _D + "build_lpips", False, "LPIPS v0.1 on AlexNet."),
        DistanceRecord("dists", _D + "build_dists", True, "DISTS (VGG-16 with L2 pooling, learned weights)."),
    )
}
"""The distances, in report order (the map selections are :data:`psychovis.names.SELECTIONS`)."""


@dataclass(frozen=True)
class BackboneRecord:
    """One network the probe, the loss and the distances can run on.

    Attributes:
        name: its name in ``base.backbone``.
        trained: False for an untrained control (no LPIPS heads, no shipped weights).
        description: one sentence.
        spec: ``"module:attribute"`` of its layer table (a :class:`psychovis.backbones.BackboneSpec`).
    """

    name: str
    trained: bool
    description: str
    spec: str

    def load_spec(self) -> Any:
        """The layer table (imports torch and :mod:`psychovis.backbones` now)."""
        return load(self.spec)


BACKBONE_RECORDS: dict[str, BackboneRecord] = {
    record.name: record
    for record in (
        BackboneRecord("vgg16", True, "ImageNet VGG-16 (the paper's network).", "psychovis.backbones:VGG16_SPEC"),
        BackboneRecord("alexnet", True, "ImageNet AlexNet (LPIPS's default).", "psychovis.backbones:ALEXNET_SPEC"),
        BackboneRecord(
            "vgg16_random",
            False,
            "VGG-16 architecture, untrained (seeded initialisation): the control.",
            "psychovis.backbones:VGG16_RANDOM_SPEC",
        ),
    )
}
"""Networks with offline weights (``vgg16_random``: the same architecture, untrained, as a control)."""
