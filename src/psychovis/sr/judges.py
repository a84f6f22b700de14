"""The image-quality judges of the `evaluate` stage: who scores the super-resolved images, and how.

A perceptual loss built on VGG-16 features should not be judged only by a metric on the same
features: it could learn that metric's blind spots. The catalogue therefore mixes pixel measures
(PSNR-Y, SSIM-Y, MS-SSIM, VIF, GMSD, HaarPSI), learned deep metrics on another network
(LPIPS-AlexNet), the VGG-16-based metrics kept for comparison with the literature (LPIPS-VGG,
DISTS; flagged ``shares_loss_backbone``), and a measure of the periodic upsampling artefacts
that perceptual losses are known for (``artefact_db``).

Every judge scores one pair of ``(H, W, 3)`` float images in [0, 1]; all of them see the same
pixels: ``border`` pixels are shaved off each side first (PSNR-Y and SSIM-Y shave them
themselves), as SR benchmarks do, because the network's zero padding spoils the border.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 13(4), 2004 (SSIM).
    Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality assessment",
    Asilomar 2003 (MS-SSIM).
    Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric", CVPR 2018 (LPIPS).
    Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
    Similarity", IEEE TPAMI 44(5), 2022 (DISTS).
    Reisenhofer, Bosse, Kutyniok, Wiegand, "A Haar wavelet-based perceptual similarity index for
    image quality assessment", Signal Processing: Image Communication 61, 2018 (HaarPSI).
    Sheikh, Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006 (VIF).
    Xue, Zhang, Mou, Bovik, "Gradient Magnitude Similarity Deviation: A Highly Efficient Perceptual
    Image Quality Index", IEEE TIP 23(2), 2014 (GMSD).
    Kastryulin, Zakirov, Prokopenko, Dylov, "PyTorch Image Quality: Metrics for Image Quality
    Assessment", arXiv:2208.14818, 2022 (piq, which implements MS-SSIM, HaarPSI, VIF and GMSD here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import piq
import torch
from torch import nn

from psychovis.distances.dists import DISTS
from psychovis.distances.lpips import LPIPS
from psychovis.errors import ParamsError, quote
from psychovis.names import JUDGES as JUDGE_NAMES
from psychovis.sr.metrics import (
    _check_border,
    _check_pair,
    _shave,
    periodic_artefact_db,
    periodic_artefact_min_size,
    psnr_y,
    ssim_y,
)


@dataclass(frozen=True)
class Judge:
    """One image-quality judge of the evaluation.

    Attributes:
        name: its name in :data:`psychovis.names.JUDGES` and in the evaluation tables.
        higher_is_better: True for similarities (PSNR, SSIM, ...), False for distances (LPIPS, ...).
        shares_loss_backbone: True when it computes on the ImageNet VGG-16 conv weights that the
            perceptual losses use, so it is not an independent judge of them.
        description: one sentence on what it measures.
    """

    name: str
    higher_is_better: bool
    shares_loss_backbone: bool
    description: str


MS_SSIM_KERNEL = 11
MS_SSIM_SCALES = 5
MS_SSIM_MIN_SIZE = (MS_SSIM_KERNEL - 1) * 2 ** (MS_SSIM_SCALES - 1) + 1
"""161: the 11-pixel window must fit the coarsest of the 5 scales (piq's rule). The held-out images
(about 300 to 600 px per side) are well above it, so MS-SSIM keeps its standard settings
(Wang et al. 2003) rather than a smaller window for small images."""

JUDGES: dict[str, Judge] = {
    judge.name: judge
    for judge in (
        Judge("psnr_y", True, False, "PSNR on BT.601 luma in dB (MATLAB rgb2ycbcr convention): pixel fidelity."),
        Judge("ssim_y", True, False, "SSIM on luma, 11x11 Gaussian window (sigma 1.5), Wang et al.'s settings."),
        Judge(
            "lpips_vgg",
            False,
            True,
            "LPIPS v0.1 on VGG-16: the very conv weights of the perceptual losses, kept for comparison only.",
        ),
        Judge("lpips_alex", False, False, "LPIPS v0.1 on AlexNet (the LPIPS default): another network and heads."),
        Judge(
            "dists",
            False,
            True,
            "DISTS: the losses' VGG-16 conv weights, but with L2 pooling for max pooling and learned weights on "
            "per-map mean (texture) and correlation (structure) statistics, so only partly independent.",
        ),
        Judge(
            "ms_ssim",
            True,
            False,
            f"Multi-scale SSIM on RGB (piq), {MS_SSIM_KERNEL}x{MS_SSIM_KERNEL} window, {MS_SSIM_SCALES} scales: "
            f"needs at least {MS_SSIM_MIN_SIZE} px per side.",
        ),
        Judge("haarpsi", True, False, "HaarPSI (piq): Haar-wavelet coefficient similarity on YIQ, in [0, 1]."),
        Judge("vif", True, False, "Visual information fidelity in the pixel domain on luma (piq.vif_p), 1 = lossless."),
        Judge("gmsd", False, False, "GMSD (piq): deviation of the gradient-magnitude similarity map, 0 = same."),
        Judge(
            "artefact_db",
            False,
            False,
            "Error power at the 1/scale aliasing frequencies over its neighbourhood, in dB: checkerboards.",
        ),
    )
}
"""The judges, in :data:`psychovis.names.JUDGES` order."""

MIN_SIZES: dict[str, int] = {
    "lpips_vgg": 16,
    "lpips_alex": 31,
    "dists": 16,
    "ms_ssim": MS_SSIM_MIN_SIZE,
    "haarpsi": 16,  # piq: the largest Haar filter (2^(scales + 1) = 16) must fit
    "vif": 41,  # piq: the 17-tap filter over 4 scales
}
"""Smallest side, in pixels after shaving the border, that each network or piq judge accepts (PSNR/SSIM
check theirs; ``artefact_db`` needs :func:`~psychovis.sr.metrics.periodic_artefact_min_size` of the scale)."""


class Judges:
    """Score image pairs with a chosen set of judges, building each network once.

    Args:
        names: judges from :data:`JUDGES` (any subset, no repeats); scores come back in this order.
        scale: the super-resolution factor (>= 2 when ``artefact_db`` is used: the artefact period).
        border: pixels shaved off each side before every judge (commonly ``scale``).
        device: where the networks and the piq metrics run (``"cpu"``, ``"cuda"``, a ``torch.device``).

    Raises:
        ParamsError: unknown or repeated judge names (the message lists the allowed ones), a bad
            ``scale`` or ``border``.

    Example:
        >>> judges = Judges(["psnr_y", "lpips_alex", "dists"], scale=4, border=4)
        >>> judges(prediction, target)  # {"psnr_y": 27.1, "lpips_alex": 0.21, "dists": 0.15}
    """

    def __init__(self, names: Sequence[str], scale: int, border: int, device: str | torch.device = "cpu") -> None:
        if isinstance(names, str):
            names = [names]
        names = tuple(names)
        unknown = [name for name in names if name not in JUDGES]
        if unknown or not names:
            problem = f"unknown judge(s) {unknown}" if unknown else "no judge given"
            raise ParamsError(f"{problem}; allowed: {', '.join(JUDGE_NAMES)}")
        if len(set(names)) != len(names):
            raise ParamsError(f"judges must not repeat, got {list(names)}")
        minimum_scale = 2 if "artefact_db" in names else 1
        if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < minimum_scale:
            raise ParamsError(f"scale must be an integer >= {minimum_scale}, got {quote(scale)}")
        if isinstance(border, bool) or not isinstance(border, int | np.integer) or border < 0:
            raise ParamsError(f"border must be an integer >= 0, got {quote(border)}")
        self.names = names
        self.scale = int(scale)
        self.border = int(border)
        self.device = torch.device(device)
        self.min_sizes = {name: MIN_SIZES.get(name, 1) for name in names}
        if "artefact_db" in names:
            self.min_sizes["artefact_db"] = periodic_artefact_min_size(self.scale)
        self.min_size = max(self.min_sizes.values())
        # Built here, once: the networks are the expensive part of a judge.
        self.networks: dict[str, nn.Module] = {}
        if "lpips_vgg" in names:
            self.networks["lpips_vgg"] = LPIPS("vgg16").to(self.device)
        if "lpips_alex" in names:
            self.networks["lpips_alex"] = LPIPS("alexnet").to(self.device)
        if "dists" in names:
            self.networks["dists"] = DISTS().to(self.device)

    @property
    def judges(self) -> tuple[Judge, ...]:
        """The chosen judges' records, in order."""
        return tuple(JUDGES[name] for name in self.names)

    def _tensor_judges(self) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """Judges on ``(1, 3, H, W)`` tensors: ``f(prediction, target) -> (1,)``."""
        return {
            **self.networks,
            "ms_ssim": lambda x, y: piq.multi_scale_ssim(
                x, y, kernel_size=MS_SSIM_KERNEL, data_range=1.0, reduction="none"
            ),
            "haarpsi": lambda x, y: piq.haarpsi(x, y, data_range=1.0, reduction="none"),
            # VIF is asymmetric: piq takes the distorted image first and the reference second.
            "vif": lambda x, y: piq.vif_p(x, y, data_range=1.0, reduction="none"),
            "gmsd": lambda x, y: piq.gmsd(x, y, data_range=1.0, reduction="none"),
        }

    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Score one image pair with every chosen judge.

        Args:
            prediction: the super-resolved image ``(H, W, 3)``, float in [0, 1] (values up to
                :data:`~psychovis.distances.inputs.RANGE_TOLERANCE` outside are clipped).
            target: the reference image of the same shape.

        Returns:
            Judge name -> score, in the order of ``names``. ``psnr_y`` is ``inf`` for identical images.

        Raises:
            ParamsError: (a ``ValueError``) bad shapes, dtypes or ranges, or an image too small
                for a judge once the border is shaved (the message names the judge).
        """
        prediction, target = _check_pair(prediction, target)
        border = _check_border(self.border, target.shape)
        shaved_prediction, shaved_target = _shave(prediction, border), _shave(target, border)
        side = min(shaved_target.shape[:2])
        if side < self.min_size:
            needy = [name for name, size in self.min_sizes.items() if size > side]
            raise ParamsError(
                f"judge(s) {needy} need images of at least {self.min_size}x{self.min_size} pixels after shaving "
                f"{border} border pixels, got {shaved_target.shape[0]}x{shaved_target.shape[1]}"
            )
        tensor_judges = self._tensor_judges()
        needs_tensors = any(name in tensor_judges for name in self.names)
        if needs_tensors:
            x, y = (
                torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(self.device, torch.float32)
                for image in (shaved_prediction, shaved_target)
            )
        scores: dict[str, float] = {}
        for name in self.names:
            if name == "psnr_y":
                scores[name] = psnr_y(prediction, target, border)
            elif name == "ssim_y":
                scores[name] = ssim_y(prediction, target, border)
            elif name == "artefact_db":
                scores[name] = periodic_artefact_db(shaved_prediction, shaved_target, self.scale)
            else:
                with torch.no_grad():
                    scores[name] = float(tensor_judges[name](x, y).reshape(-1)[0])
        return scores
