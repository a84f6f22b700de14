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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import piq
import torch
from torch import nn

from psychovis.distances.dists import DISTS
from psychovis.distances.lpips import LPIPS
from psychovis.errors import ParamsError, quote
from psychovis.names import JUDGES as JUDGE_NAMES
from psychovis.registry import JUDGE_RECORDS, MS_SSIM_KERNEL, MS_SSIM_MIN_SIZE, JudgeRecord
from psychovis.sr.metrics import (
    _check_border,
    _check_image,
    _check_pair,
    _shave,
    periodic_artefact_db,
    psnr_y,
    ssim_y,
)

__all__ = ["MS_SSIM_MIN_SIZE", "JudgeRecord", "Judges", "Reference"]


@dataclass
class Reference:
    """A reference image prepared once for every judge, then compared with many predictions.

    Attributes:
        image: the checked image, ``(H, W, 3)`` float64 in [0, 1].
        shaved: ``image`` without its border.
        tensor: ``shaved`` as a ``(1, 3, h, w)`` float32 tensor on the judges' device (None when
            no judge needs one).
        prepared: judge name -> what that judge computed once from the reference (e.g. the
            LPIPS features), or None.
    """

    image: np.ndarray
    shaved: np.ndarray
    tensor: torch.Tensor | None
    prepared: dict[str, Any] = field(default_factory=dict)


@dataclass
class Candidate:
    """A prediction in the forms the judges read (as :class:`Reference`, without prepared state)."""

    image: np.ndarray
    shaved: np.ndarray
    tensor: torch.Tensor | None


class _Judge:
    """A judge implementation: ``prepare`` once per reference, ``score`` per prediction."""

    tensor = False
    network: nn.Module | None = None

    def prepare(self, reference: Reference) -> Any:
        return None

    def score(self, candidate: Candidate, reference: Reference, prepared: Any) -> float:
        raise NotImplementedError


class _ArrayJudge(_Judge):
    def __init__(self, function: Callable[[Candidate, Reference], float]) -> None:
        self.function = function

    def score(self, candidate: Candidate, reference: Reference, prepared: Any) -> float:
        return float(self.function(candidate, reference))


class _TensorJudge(_Judge):
    """A piq metric on ``(1, 3, h, w)`` tensors: ``f(prediction, target) -> (1,)``."""

    tensor = True

    def __init__(self, function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.function = function

    def score(self, candidate: Candidate, reference: Reference, prepared: Any) -> float:
        return float(self.function(candidate.tensor, reference.tensor).reshape(-1)[0])


class _NetworkJudge(_Judge):
    """LPIPS or DISTS: the reference's features are computed once (``prepare``), then compared."""

    tensor = True

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def prepare(self, reference: Reference) -> Any:
        prepare = getattr(self.network, "prepare", None)
        return prepare(reference.tensor) if prepare is not None else None

    def score(self, candidate: Candidate, reference: Reference, prepared: Any) -> float:
        if prepared is None:  # a plain module (e.g. a test double): one forward on the pair
            return float(self.network(candidate.tensor, reference.tensor).reshape(-1)[0])
        return float(self.network.compare(candidate.tensor, prepared).reshape(-1)[0])


# The factories the registry names (``JudgeRecord.factory``): ``factory(scale=, border=, device=)``.


def psnr_y_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _ArrayJudge(lambda c, r: psnr_y(c.image, r.image, border))


def ssim_y_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _ArrayJudge(lambda c, r: ssim_y(c.image, r.image, border))


def artefact_db_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _ArrayJudge(lambda c, r: periodic_artefact_db(c.shaved, r.shaved, scale))


def lpips_vgg_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _NetworkJudge(LPIPS("vgg16").to(device))


def lpips_alex_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _NetworkJudge(LPIPS("alexnet").to(device))


def dists_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _NetworkJudge(DISTS().to(device))


def ms_ssim_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _TensorJudge(
        lambda x, y: piq.multi_scale_ssim(x, y, kernel_size=MS_SSIM_KERNEL, data_range=1.0, reduction="none")
    )


def haarpsi_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _TensorJudge(lambda x, y: piq.haarpsi(x, y, data_range=1.0, reduction="none"))


def vif_judge(scale: int, border: int, device: torch.device) -> _Judge:
    # VIF is asymmetric: piq takes the distorted image first and the reference second.
    return _TensorJudge(lambda x, y: piq.vif_p(x, y, data_range=1.0, reduction="none"))


def gmsd_judge(scale: int, border: int, device: torch.device) -> _Judge:
    return _TensorJudge(lambda x, y: piq.gmsd(x, y, data_range=1.0, reduction="none"))


class Judges:
    """Score image pairs with a chosen set of judges, building each network once.

    Scoring many predictions against one reference: :meth:`reference` prepares it once (the
    networks' reference features included), :meth:`score` compares a prediction with it.

    Args:
        names: judges from :data:`psychovis.registry.JUDGE_RECORDS` (any subset, no repeats);
            scores come back in this order.
        scale: the super-resolution factor (>= 2 when ``artefact_db`` is used: the artefact period).
        border: pixels shaved off each side before every judge (commonly ``scale``).
        device: where the networks and the piq metrics run (``"cpu"``, ``"cuda"``, a ``torch.device``).

    Raises:
        ParamsError: unknown or repeated judge names (the message lists the allowed ones), a bad
            ``scale`` or ``border``.

    Example:
        >>> judges = Judges(["psnr_y", "lpips_alex", "dists"], scale=4, border=4)
        >>> judges(prediction, target)  # {"psnr_y": 27.1, "lpips_alex": 0.21, "dists": 0.15}
        >>> reference = judges.reference(target)
        >>> [judges.score(p, reference) for p in predictions]  # the target's features computed once
    """

    def __init__(self, names: Sequence[str], scale: int, border: int, device: str | torch.device = "cpu") -> None:
        if isinstance(names, str):
            names = [names]
        names = tuple(names)
        unknown = [name for name in names if name not in JUDGE_RECORDS]
        if unknown or not names:
            problem = f"unknown judge(s) {unknown}" if unknown else "no judge given"
            raise ParamsError(f"{problem}; allowed: {', '.join(JUDGE_NAMES)}")
        if len(set(names)) != len(names):
            raise ParamsError(f"judges must not repeat, got {list(names)}")
        minimum_scale = 2 if any(JUDGE_RECORDS[name].min_size_per_scale for name in names) else 1
        if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < minimum_scale:
            raise ParamsError(f"scale must be an integer >= {minimum_scale}, got {quote(scale)}")
        if isinstance(border, bool) or not isinstance(border, int | np.integer) or border < 0:
            raise ParamsError(f"border must be an integer >= 0, got {quote(border)}")
        self.names = names
        self.scale = int(scale)
        self.border = int(border)
        self.device = torch.device(device)
        self.min_sizes = {name: JUDGE_RECORDS[name].minimum_side(self.scale) for name in names}
        self.min_size = max(self.min_sizes.values())
        # Built here, once: the networks are the expensive part of a judge.
        self.implementations: dict[str, _Judge] = {
            name: JUDGE_RECORDS[name].build(scale=self.scale, border=self.border, device=self.device) for name in names
        }
        self.networks: dict[str, nn.Module] = {
            name: judge.network for name, judge in self.implementations.items() if judge.network is not None
        }
        self._needs_tensors = any(judge.tensor for judge in self.implementations.values())

    @property
    def judges(self) -> tuple[JudgeRecord, ...]:
        """The chosen judges' records, in order."""
        return tuple(JUDGE_RECORDS[name] for name in self.names)

    def _forms(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
        shaved = _shave(image, self.border)
        tensor = None
        if self._needs_tensors:
            tensor = torch.from_numpy(np.ascontiguousarray(shaved.transpose(2, 0, 1)))[None]
            tensor = tensor.to(self.device, torch.float32)
        return image, shaved, tensor

    def reference(self, target: np.ndarray) -> Reference:
        """Check ``target`` and prepare it for every judge (the networks' reference features included).

        Raises:
            ParamsError: (a ``ValueError``) a bad image, or one too small for a judge once the
                border is shaved (the message names the judge).
        """
        target = _check_image(target, "target")
        if target.ndim != 3:
            raise ParamsError(f"target must have shape (H, W, 3), got {target.shape}")
        border = _check_border(self.border, target.shape)
        side = min(target.shape[:2]) - 2 * border
        if side < self.min_size:
            needy = [name for name, size in self.min_sizes.items() if size > side]
            raise ParamsError(
                f"judge(s) {needy} need images of at least {self.min_size}x{self.min_size} pixels after shaving "
                f"{border} border pixels, got {target.shape[0] - 2 * border}x{target.shape[1] - 2 * border}"
            )
        reference = Reference(*self._forms(target))
        with torch.inference_mode():
            reference.prepared = {name: judge.prepare(reference) for name, judge in self.implementations.items()}
        return reference

    def score(self, prediction: np.ndarray, reference: Reference) -> dict[str, float]:
        """Score one prediction against a prepared reference (:meth:`reference`) with every chosen judge.

        Returns:
            Judge name -> score, in the order of ``names``. ``psnr_y`` is ``inf`` for identical images.

        Raises:
            ParamsError: (a ``ValueError``) bad shapes, dtypes or ranges.
        """
        prediction, _ = _check_pair(prediction, reference.image)
        candidate = Candidate(*self._forms(prediction))
        with torch.inference_mode():
            return {
                name: judge.score(candidate, reference, reference.prepared[name])
                for name, judge in self.implementations.items()
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
        return self.score(prediction, self.reference(target))
