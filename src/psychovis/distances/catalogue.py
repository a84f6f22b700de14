"""The catalogue of image distances the experiments compare, built by name.

``pixel_mse``, the plain VGG loss (``vgg``), the VFSS-weighted loss (``vfss``), the top-,
bottom- and random-k VFSS map selections, LPIPS-VGG, LPIPS-Alex and DISTS: the names of
:data:`psychovis.names.DISTANCES`. The psychophysical test and the human-judgement scorer build
their distances here and evaluate them with one shared forward pass
(:mod:`psychovis.distances.engine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.distances.dists import DISTS
from psychovis.distances.engine import Distance
from psychovis.distances.inputs import validate_images
from psychovis.distances.loss import PsychovisualLoss
from psychovis.distances.lpips import LPIPS
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.names import DISTANCES
from psychovis.registry import DISTANCE_RECORDS
from psychovis.validation import integer_at_least
from psychovis.vfss import l1_weights, selection_mask


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


def build_distances(
    vfss_scores: Mapping[str, np.ndarray],
    k: int = 64,
    layers: Sequence[str] = ("relu3_2",),
    seed: int = 0,
    include: Sequence[str] = DISTANCES,
    weights: FeatureWeights | str | Path | None = None,
    backbone: str = "vgg16",
    layers_key: str = "layers",
    k_key: str = "k",
) -> dict[str, Distance]:
    """Build the image distances the psychophysical test compares.

    Args:
        vfss_scores: layer -> VFSS of each of its maps (in channel order); needed for ``topk``,
            ``bottomk``, ``randomk``, and for ``vfss`` when ``weights`` is None.
        k: maps kept per layer by the selections; at most the size of every layer (a larger ``k``
            would silently become "all maps" and mislabel the distance).
        layers: the feature layers of the VGG-based distances (LPIPS uses its own five).
        seed: seed of the ``randomk`` selection.
        include: which of :data:`DISTANCES` to build, in the order wanted:
            ``pixel_mse`` (:func:`pixel_mse`); ``vgg`` (plain :class:`~psychovis.distances.loss.PsychovisualLoss`,
            uniform weights); ``vfss`` (VFSS-weighted); ``topk``, ``bottomk``, ``randomk`` (binary
            masks of k maps, as :class:`FeatureWeights` with scheme ``topk``); ``lpips_vgg`` and
            ``lpips_alex`` (:class:`psychovis.distances.lpips.LPIPS` on VGG-16, AlexNet); ``dists``
            (:class:`psychovis.distances.dists.DISTS`). The last two are the SR evaluation's judges.
        weights: the VFSS weights for ``vfss``: a :class:`FeatureWeights`, or the path of one
            exported by the `weights` stage (``data/weights/vfss.safetensors``); None derives them
            from ``vfss_scores`` with :func:`psychovis.vfss.l1_weights` (what that stage exports).
        backbone: backbone of the VGG-based distances when ``weights`` does not fix it.
        layers_key: the parameter that named ``layers``, for error messages.
        k_key: the parameter that named ``k``, for error messages.

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
    k = integer_at_least(k_key, k)
    if isinstance(weights, str | Path):
        weights = FeatureWeights.load(weights)
    if weights is not None:
        backbone = weights.backbone
    layers = resolve_layers(backbone_spec(backbone), list(layers), key=layers_key)
    context = DistanceContext(layers, backbone, weights, vfss_scores, int(k), seed, k_key)
    needs_scores = [name for name in include if DISTANCE_RECORDS[name].needs_scores(weights is not None)]
    if needs_scores:
        missing = [layer for layer in layers if layer not in vfss_scores]
        if missing:
            raise ParamsError(f"distances {needs_scores} need VFSS scores of layer(s) {missing}; probe them first")
    return {name: DISTANCE_RECORDS[name].build(context) for name in include}


@dataclass(frozen=True)
class DistanceContext:
    """What the distance factories of :data:`psychovis.registry.DISTANCE_RECORDS` build from.

    Attributes:
        layers: the resolved feature layers of the VGG-based distances.
        backbone: their backbone.
        weights: the VFSS weights, or None to derive them from ``vfss_scores``.
        vfss_scores: layer -> VFSS of each map.
        k: maps kept per layer by the selections.
        seed: seed of the ``randomk`` selection.
        k_key: the parameter that named ``k``, for error messages.
    """

    layers: list[str]
    backbone: str
    weights: FeatureWeights | None
    vfss_scores: Mapping[str, np.ndarray]
    k: int
    seed: int
    k_key: str = "k"


# The factories the registry names (``DistanceRecord.factory``): ``factory(name, context)``.


def build_pixel_mse(name: str, context: DistanceContext) -> Distance:
    return pixel_mse


def build_vgg(name: str, context: DistanceContext) -> Distance:
    return PsychovisualLoss(layers=context.layers, backbone=context.backbone, reduction="none")


def build_vfss(name: str, context: DistanceContext) -> Distance:
    chosen = context.weights
    if chosen is None:
        chosen = FeatureWeights(
            context.backbone,
            "vfss",
            {layer: torch.from_numpy(l1_weights(context.vfss_scores[layer])).float() for layer in context.layers},
        )
    return PsychovisualLoss(chosen, layers=context.layers, reduction="none")


def build_selection(name: str, context: DistanceContext) -> Distance:
    """``topk``, ``bottomk`` or ``randomk``: a binary mask of k maps per layer, as :class:`FeatureWeights`."""
    per_layer = {}
    for layer in context.layers:
        scores = np.asarray(context.vfss_scores[layer], dtype=np.float64)
        mask = selection_mask(scores, name, context.k, context.seed, key=context.k_key)
        per_layer[layer] = torch.from_numpy(mask).float()
    metadata = {"selection": name, "k": str(context.k), "seed": str(context.seed)}
    weights = FeatureWeights(context.backbone, "topk", per_layer, metadata)
    return PsychovisualLoss(weights, layers=context.layers, reduction="none")


def build_lpips(name: str, context: DistanceContext) -> Distance:
    return LPIPS({"lpips_vgg": "vgg16", "lpips_alex": "alexnet"}[name])


def build_dists(name: str, context: DistanceContext) -> Distance:
    return DISTS()
