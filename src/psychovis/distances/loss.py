"""The psychovisual perceptual loss: VGG feature distance with per-feature-map weights.

``PsychovisualLoss`` is the plain VGG perceptual loss when its weights are uniform, and the
paper's VFSS-weighted loss when built from the weights the `weights` stage exports, so the
baseline and the proposed loss are the same code.

Example:
    >>> from psychovis import PsychovisualLoss
    >>> criterion = PsychovisualLoss("data/weights/vfss.safetensors")   # VFSS-weighted, relu3_2
    >>> plain = PsychovisualLoss(layers=["relu3_2"])                     # uniform: plain VGG loss
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

import torch
from torch import nn

from psychovis.backbones import FeatureExtractor, backbone_spec, resolve_layers
from psychovis.distances.engine import map_errors
from psychovis.distances.inputs import validate_images
from psychovis.feature_weights import FeatureWeights

REDUCTIONS = ("mean", "sum", "none")
DEFAULT_LAYERS = ("relu3_2",)


class PsychovisualLoss(nn.Module):
    """Weighted VGG perceptual loss: ``sum_layers mean_c w_c * mean_hw (phi_c(x_hat) - phi_c(x))^2``.

    Weights are rescaled per layer to mean 1, so uniform weights give exactly the plain VGG
    loss (``F.mse_loss`` of the features) and a weighted loss has the same magnitude.

    Args:
        weights: a :class:`FeatureWeights`, or the path of one exported by the `weights` stage
            (``data/weights/vfss.safetensors``, ``topk.safetensors``); ``None`` for uniform weights
            (the plain VGG perceptual loss).
        layers: the layers to use (default: all layers in ``weights``, or ``relu3_2``). Any
            subset of the weights' layers.
        backbone: backbone name when ``weights`` is ``None`` (``vgg16`` or ``alexnet``).
        data_range: ``(low, high)`` of the input images, e.g. ``(0, 1)``, ``(-1, 1)`` or ``(0, 255)``.
        reduction: ``mean`` | ``sum`` over the batch, or ``none`` for one value per image.
        check_range: validate that inputs lie in ``data_range`` (costs one host sync per call).

    Returns:
        Calling the module returns a scalar tensor (or ``(N,)`` with ``reduction="none"``).

    Example:
        >>> criterion = PsychovisualLoss("data/weights/vfss.safetensors").to(device)
        >>> loss = criterion(model(lr), hr)
    """

    def __init__(
        self,
        weights: FeatureWeights | str | Path | None = None,
        layers: Sequence[str] | None = None,
        backbone: str = "vgg16",
        data_range: tuple[float, float] = (0.0, 1.0),
        reduction: str = "mean",
        check_range: bool = True,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
        low, high = (float(value) for value in data_range)
        if not high > low:
            raise ValueError(f"data_range must be (low, high) with high > low, got {data_range!r}")
        if isinstance(weights, str | Path):
            weights = FeatureWeights.load(weights)
        if weights is not None:
            backbone = weights.backbone
            layers = list(weights.layers) if layers is None else list(layers)
            missing = [layer for layer in layers if layer not in weights.weights]
            if missing:
                raise ValueError(f"layers {missing} have no weights in this file; it has {weights.layers}")
        spec = backbone_spec(backbone)
        self.layers = resolve_layers(spec, list(layers or DEFAULT_LAYERS), key="layers")
        self.extractor = FeatureExtractor(backbone, self.layers)
        channels = self.extractor.channels
        if weights is None:
            weights = FeatureWeights.uniform(backbone, self.layers, channels)
        self.scheme = weights.scheme
        for layer in self.layers:
            w = weights.weights[layer].to(torch.float32)
            if w.numel() != channels[layer]:
                raise ValueError(f"{layer} has {channels[layer]} maps but the weights have {w.numel()}")
            self.register_buffer(f"weight_{layer}", w * (w.numel() / w.sum()))
        self.data_range = (low, high)
        self.reduction = reduction
        self.check_range = check_range

    def layer_weights(self, layer: str) -> torch.Tensor:
        """The per-map weights of ``layer``, rescaled to mean 1."""
        return getattr(self, f"weight_{layer}")

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss between ``prediction`` (gets gradients) and ``target`` (treated as constant)."""
        validate_images(prediction, target, self.data_range, self.check_range)
        low, high = self.data_range
        if (low, high) != (0.0, 1.0):
            prediction = (prediction - low) / (high - low)
            target = (target - low) / (high - low)
        predicted = self.extractor(prediction)
        with torch.no_grad():
            reference = self.extractor(target)
        per_image = prediction.new_zeros(prediction.shape[0], dtype=torch.float32)
        # Elementwise, not errors @ w: keeps training bit-identical to earlier releases.
        for layer, squared in map_errors(predicted, reference, self.layers).items():
            per_image = per_image + (squared * self.layer_weights(layer)).mean(dim=1)
        if self.reduction == "mean":
            return per_image.mean()
        if self.reduction == "sum":
            return per_image.sum()
        return per_image


@lru_cache(maxsize=8)
def _cached_loss(
    weights: str | None, layers: tuple[str, ...] | None, backbone: str, data_range: tuple[float, float]
) -> PsychovisualLoss:
    return PsychovisualLoss(weights, layers, backbone, data_range, reduction="none")


def psychovisual_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: str | Path | None = None,
    layers: Sequence[str] | None = None,
    backbone: str = "vgg16",
    data_range: tuple[float, float] = (0.0, 1.0),
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`PsychovisualLoss` (the module is built once and cached).

    Args:
        prediction: images ``(N, 3, H, W)`` in ``data_range``; gradients flow to it.
        target: reference images of the same shape.
        weights: path of an exported weights file, or ``None`` for the plain VGG loss.
        layers: layers to use (see :class:`PsychovisualLoss`).
        backbone: backbone when ``weights`` is ``None``.
        data_range: ``(low, high)`` of the inputs.
        reduction: ``mean``, ``sum`` or ``none``.

    Returns:
        The loss, reduced as asked.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    module = _cached_loss(
        None if weights is None else str(weights),
        None if layers is None else tuple(layers),
        backbone,
        (float(data_range[0]), float(data_range[1])),
    ).to(prediction.device)
    per_image = module(prediction, target)
    if reduction == "mean":
        return per_image.mean()
    return per_image.sum() if reduction == "sum" else per_image
