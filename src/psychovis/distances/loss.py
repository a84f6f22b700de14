"""The psychovisual perceptual loss: VGG feature distance with per-feature-map weights.

``PsychovisualLoss`` is the plain VGG perceptual loss when its weights are uniform, and the
paper's VFSS-weighted loss when built from the weights the `weights` stage exports, so the
baseline and the proposed loss are the same code.

Example:
    >>> from psychovis import PsychovisualLoss
    >>> criterion = PsychovisualLoss.pretrained("vfss")   # VFSS-weighted, relu3_2, shipped weights
    >>> plain = PsychovisualLoss(layers=["relu3_2"])      # uniform: plain VGG loss
    >>> loss = criterion(prediction, target)   # (N, 3, H, W) tensors in [0, 1]
    >>> loss.backward()

References:
    T. Tariq, M. Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual Metrics
    and A Novel Psychovisual Loss", arXiv:1812.00412.
    J. Johnson, A. Alahi, L. Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
    Super-Resolution", ECCV 2016.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from psychovis.backbones import FeatureExtractor, backbone_spec, resolve_layers
from psychovis.distances.engine import map_errors
from psychovis.distances.inputs import check_data_range, range_mode, validate_images, warn_at_caller
from psychovis.distances.pretrained import pretrained_path
from psychovis.errors import InvalidWeightsError, ParamsError, quote
from psychovis.feature_weights import FeatureWeights
from psychovis.weights_file import read_weights_bytes

REDUCTIONS = ("mean", "sum", "none")
DEFAULT_LAYERS = ("relu3_2",)
DEFAULT_BACKBONE = "vgg16"


class PsychovisualLoss(nn.Module):
    """Weighted VGG perceptual loss: ``sum_layers mean_c w_c * mean_hw (phi_c(x_hat) - phi_c(x))^2``.

    Weights are rescaled per layer to mean 1 (in float64), so uniform weights give exactly the
    plain VGG loss (``F.mse_loss`` of the features) and a weighted loss has the same magnitude.

    Dtype and device: the module follows its inputs. It moves itself to the inputs' device on
    the first call that needs it (as piq's losses do). The backbone runs in float32: float16,
    bfloat16 and float64 inputs are cast to float32 inside, and the loss is returned in the
    prediction's dtype, with gradients flowing back in that dtype. Under ``torch.autocast`` the
    convolutions run in the autocast dtype.

    Args:
        weights: a :class:`FeatureWeights`, or the path of one exported by the `weights` stage
            (``data/weights/vfss.safetensors``); ``None`` for uniform weights (the plain VGG
            perceptual loss). :meth:`pretrained` loads the weights shipped with psychovis.
        layers: the layers to use (default: all layers in ``weights``, or ``relu3_2``). Any
            subset of the weights' layers.
        backbone: ``vgg16`` (default) or ``alexnet``; with ``weights``, it must match theirs.
        data_range: ``(low, high)`` of the input images, e.g. ``(0, 1)``, ``(-1, 1)`` or ``(0, 255)``;
            a single number is the width, as in piq: ``data_range=255.0`` is ``(0, 255)``.
        reduction: ``mean`` | ``sum`` over the batch, or ``none`` for one value per image.
        check_range: ``True`` or ``"warn"`` (default): NaN/inf pixels raise, and clear range
            mix-ups (targets outside ``data_range``, predictions 100x off, e.g. 0-255 vs 0-1, or a
            tanh output in [-1, 1] against [0, 1] targets) give one warning per module, located at
            the caller's line; network outputs overshooting the range on both sides are fine.
            ``"strict"``: inputs more than a quarter of the range outside it raise ``ValueError``.
            ``False``: no value checks (no host sync per call; NaN inputs then give a NaN loss).
        px_per_degree: off by default. The display's pixels per degree of visual angle: with
            ``reference_px_per_degree`` the images are resampled (bilinear, antialiased) by
            ``reference_px_per_degree / px_per_degree`` before the network, so it sees them at its
            own reference geometry (the network's sensitivity is fixed in pixels, people's in degrees;
            see the `modelfest` stage, which fits the reference on a declared subset of ModelFest).
        reference_px_per_degree: the network's reference px/deg (required with ``px_per_degree``).

    Returns:
        Calling the module returns a scalar tensor (or ``(N,)`` with ``reduction="none"``).

    Raises:
        ValueError: (at construction) bad ``reduction``, ``data_range``, layers, or weights that
            do not fit the backbone; (when called) wrong type, shape, dtype, empty batch, images
            smaller than the backbone accepts, NaN/inf pixels, or (``"strict"``) out of range.

    Example:
        >>> criterion = PsychovisualLoss.pretrained("vfss").to(device)
        >>> loss = criterion(model(lr), hr)
    """

    def __init__(
        self,
        weights: FeatureWeights | str | Path | None = None,
        layers: Sequence[str] | None = None,
        backbone: str | None = None,
        data_range: tuple[float, float] | float = (0.0, 1.0),
        reduction: str = "mean",
        check_range: bool | str = "warn",
        *,
        px_per_degree: float | None = None,
        reference_px_per_degree: float | None = None,
    ) -> None:
        super().__init__()
        if (px_per_degree is None) != (reference_px_per_degree is None):
            raise ParamsError(
                "px_per_degree and reference_px_per_degree go together (the display's and the network's "
                f"px/deg), got {px_per_degree!r} and {reference_px_per_degree!r}"
            )
        for name, value in (("px_per_degree", px_per_degree), ("reference_px_per_degree", reference_px_per_degree)):
            if value is not None and not (isinstance(value, int | float) and 0 < value < float("inf")):
                raise ParamsError(f"{name} must be a positive number of pixels per degree, got {value!r}")
        self.px_per_degree = None if px_per_degree is None else float(px_per_degree)
        self.reference_px_per_degree = None if reference_px_per_degree is None else float(reference_px_per_degree)
        if reduction not in REDUCTIONS:
            raise ParamsError(f"reduction must be one of {list(REDUCTIONS)}, got {quote(reduction)}")
        self.data_range = check_data_range(data_range)
        self.range_mode = range_mode(check_range, default="warn")
        if isinstance(weights, str | Path):
            weights = FeatureWeights.load(weights)
        if weights is not None:
            if backbone is not None and backbone != weights.backbone:
                raise InvalidWeightsError(f"{weights.source} was made for {weights.backbone}, the loss uses {backbone}")
            backbone = weights.backbone
            layers = list(weights.layers) if layers is None else list(layers)
            missing = [layer for layer in layers if layer not in weights.weights]
            if missing:
                raise ParamsError(f"{weights.source} has no weights for layers {missing}; it has {weights.layers}")
        backbone = backbone or DEFAULT_BACKBONE
        spec = backbone_spec(backbone)
        self.layers = resolve_layers(spec, list(layers or DEFAULT_LAYERS), key="layers")
        self.extractor = FeatureExtractor(backbone, self.layers)
        self.min_size = self.extractor.min_size
        channels = self.extractor.channels
        if weights is None:
            weights = FeatureWeights.uniform(backbone, self.layers, channels)
        self.scheme = weights.scheme
        self.provenance: dict[str, Any] = {
            "backbone": weights.backbone,
            "scheme": weights.scheme,
            "layers": list(self.layers),
            "source": weights.source,
            **weights.metadata,
        }
        for layer in self.layers:
            if weights.weights[layer].numel() != channels[layer]:
                raise InvalidWeightsError(
                    f"{weights.source} has {weights.weights[layer].numel()} of {channels[layer]} maps of {layer}"
                )
            self.register_buffer(f"weight_{layer}", weights.normalised(layer))
        self.reduction = reduction
        self._fits: set[tuple[int, int, str, bool]] = set()  # (batch, side, device, grad) checked to fit
        self._warned = False

    @classmethod
    def pretrained(cls, name: str = "vfss", **kwargs: Any) -> PsychovisualLoss:
        """The loss with the default weights shipped inside psychovis (no pipeline run needed).

        Args:
            name: ``vfss`` (the paper's), ``topk``, ``vfss_normalised`` or ``lpips_weighted`` (``human_fitted``
                is not shipped: it comes from a `modelfest` run, ``data/weights/human_fitted.safetensors``).
            **kwargs: any other argument of :class:`PsychovisualLoss` (``layers``, ``data_range``, ...).

        Returns:
            The loss; ``.provenance`` says how its weights were made (backbone, layers, CSF, params).
        """
        return cls(pretrained_path(name), **kwargs)

    def layer_weights(self, layer: str) -> torch.Tensor:
        """The per-map weights of ``layer``, rescaled to mean 1."""
        return getattr(self, f"weight_{layer}")

    def to_reference(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` resampled from ``px_per_degree`` to ``reference_px_per_degree`` (bilinear, antialiased).

        Raises:
            ValueError: the resampled images are smaller than the backbone accepts.
        """
        scale = self.reference_px_per_degree / self.px_per_degree
        height, width = (max(1, round(side * scale)) for side in images.shape[-2:])
        if min(height, width) < self.min_size:
            raise ValueError(
                f"images of {tuple(images.shape[-2:])} px at {self.px_per_degree:g} px/deg become {height}x{width} at "
                f"{self.reference_px_per_degree:g} px/deg, smaller than the {self.min_size} px the backbone accepts"
            )
        return torch.nn.functional.interpolate(
            images, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )

    def _check_memory(self, prediction: torch.Tensor) -> None:
        """Refuse a batch whose activations would not fit, before allocating them (shapes only, no work).

        An upper bound: the largest activation of the backbone per image (for both batches), held for
        every module when gradients are recorded (the backward pass needs them all).

        Raises:
            ResourceError: (a ``ValueError``) the estimate, the memory available and what to do.
        """
        from psychovis.pipeline.resources import activation_plan, require

        batch, _, height, width = prediction.shape
        side = max(int(height), int(width))
        key = (int(batch), side, str(prediction.device), torch.is_grad_enabled() and prediction.requires_grad)
        if key in self._fits:
            return
        peak_floats, _ = activation_plan(self.extractor.body, side)
        kept = len(self.extractor.body) if key[3] else 1
        require(
            f"PsychovisualLoss on {batch} image(s) of {height}x{width} px",
            int(batch) * peak_floats * 4 * (kept + 1),
            "the image size (crop or tile the images) or the batch size",
            device=prediction.device,
        )
        if len(self._fits) < 64:
            self._fits.add(key)

    def _follow(self, device: torch.device) -> None:
        """Move the module to ``device`` if it is elsewhere (piq's behaviour), once per change of device."""
        if self.layer_weights(self.layers[0]).device != device:
            self.to(device)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss between ``prediction`` (gets gradients) and ``target`` (treated as constant)."""
        message = validate_images(prediction, target, self.data_range, self.range_mode, self.min_size)
        if message is not None and not self._warned:
            self._warned = True  # once per module: a training loop would repeat it every step
            warn_at_caller(f"PsychovisualLoss: {message}")  # the user's line, not torch's module.py
        self._check_memory(prediction)
        self._follow(prediction.device)
        dtype = prediction.dtype
        # The backbone's weights are float32: cast the inputs, not the network (see the class docstring).
        prediction, target = prediction.to(torch.float32), target.to(torch.float32)
        low, high = self.data_range
        if (low, high) != (0.0, 1.0):
            prediction = (prediction - low) / (high - low)
            target = (target - low) / (high - low)
        if self.px_per_degree is not None and self.px_per_degree != self.reference_px_per_degree:
            prediction, target = self.to_reference(prediction), self.to_reference(target)
        predicted = self.extractor(prediction)
        with torch.no_grad():
            reference = self.extractor(target)
        per_image = prediction.new_zeros(prediction.shape[0], dtype=torch.float32)
        # Elementwise, not errors @ w: keeps training bit-identical to earlier releases.
        for layer, squared in map_errors(predicted, reference, self.layers).items():
            per_image = per_image + (squared * self.layer_weights(layer)).mean(dim=1)
        if self.reduction == "mean":
            per_image = per_image.mean()
        elif self.reduction == "sum":
            per_image = per_image.sum()
        return per_image.to(dtype)


@lru_cache(maxsize=8)
def _cached_loss(
    content: bytes | None,
    source: str,
    layers: tuple[str, ...] | None,
    backbone: str | None,
    data_range: tuple[float, float],
    check_range: bool | str,
) -> PsychovisualLoss:
    # Keyed by the file's bytes, not its path: a re-exported file gives a new module.
    weights = None if content is None else FeatureWeights.from_bytes(content, source)
    return PsychovisualLoss(weights, layers, backbone, data_range, reduction="none", check_range=check_range)


def psychovisual_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: str | Path | None = None,
    layers: Sequence[str] | None = None,
    backbone: str | None = None,
    data_range: tuple[float, float] | float = (0.0, 1.0),
    reduction: str = "mean",
    check_range: bool | str = "warn",
) -> torch.Tensor:
    """Functional form of :class:`PsychovisualLoss` (the module is built once and cached).

    The cache is keyed by the weights file's content (read, a few KB, on each call), so a file
    re-exported in place is picked up.

    Args:
        prediction: images ``(N, 3, H, W)`` in ``data_range``; gradients flow to it.
        target: reference images of the same shape.
        weights: path of an exported weights file, or ``None`` for the plain VGG loss.
        layers: layers to use (see :class:`PsychovisualLoss`).
        backbone: backbone when ``weights`` is ``None`` (default ``vgg16``).
        data_range: ``(low, high)`` of the inputs.
        reduction: ``mean``, ``sum`` or ``none``.
        check_range: see :class:`PsychovisualLoss`.

    Returns:
        The loss, reduced as asked, in the prediction's dtype.
    """
    if reduction not in REDUCTIONS:
        raise ParamsError(f"reduction must be one of {list(REDUCTIONS)}, got {quote(reduction)}")
    low, high = check_data_range(data_range)
    content = None if weights is None else read_weights_bytes(weights)
    module = _cached_loss(
        content,
        str(weights),
        None if layers is None else tuple(layers),
        backbone,
        (low, high),
        check_range,
    )
    per_image = module(prediction, target)
    if reduction == "mean":
        return per_image.mean()
    return per_image.sum() if reduction == "sum" else per_image
