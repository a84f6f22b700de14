"""Image pairs of a data set through every distance: images to a common size, one shared pass per batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from psychovis.backbones import FeatureExtractor
from psychovis.distances.engine import Distance, map_errors, per_pair_distance
from psychovis.distances.plan import SharedPlan
from psychovis.errors import DataError, ParamsError
from psychovis.images import read_image
from psychovis.validation import integer_at_least

PathLike = str | Path
MIN_IMAGE_SIZE = 16
"""Smallest image side read (LPIPS-VGG needs 16 pixels)."""


def to_common_size(image: np.ndarray, size: int | None) -> torch.Tensor:
    """An ``HxWx3`` image as a ``(3, size, size)`` tensor: shorter side resized to ``size``, centre crop.

    Args:
        image: float RGB in [0, 1], ``(H, W, 3)``.
        size: the output side; None keeps the native size (``(3, H, W)``).

    Returns:
        A float32 tensor in [0, 1]. Resizing is bilinear with antialiasing (when shrinking).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    if size is None:
        return tensor.contiguous()
    height, width = tensor.shape[1:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        tensor = F.interpolate(tensor[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        tensor = tensor[0].clamp(0.0, 1.0)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return tensor[:, top : top + size, left : left + size].contiguous()


class _ImageCache:
    """Read-and-resize with a small cache (references repeat across consecutive pairs)."""

    def __init__(self, size: int | None, capacity: int = 64) -> None:
        self.size, self.capacity, self.items = size, capacity, {}

    def __call__(self, path: str) -> torch.Tensor:
        if path not in self.items:
            if len(self.items) >= self.capacity:
                self.items.pop(next(iter(self.items)))
            self.items[path] = to_common_size(read_image(path, min_size=MIN_IMAGE_SIZE), self.size)
        return self.items[path]

    def batch(self, paths: Sequence[str]) -> torch.Tensor:
        tensors = [self(path) for path in paths]
        shapes = {tuple(tensor.shape) for tensor in tensors}
        if len(shapes) > 1:
            raise DataError(
                f"images of one batch differ in size {sorted(shapes)} (e.g. {paths[0]}); set human_judgement.size "
                "to resize them to a common size"
            )
        return torch.stack(tensors)


@dataclass
class PairDistances:
    """Every distance for every image pair, and the per-map feature errors behind them.

    Attributes:
        values: distance name -> ``(pairs,)`` float64 distances.
        map_errors: layer -> ``(pairs, maps)`` per-map squared feature difference
            ``mean_hw (phi_c(reference) - phi_c(distorted))^2`` (float64).
        backbone: the backbone of ``map_errors`` (None when there are none).
    """

    values: dict[str, np.ndarray]
    map_errors: dict[str, np.ndarray] = field(default_factory=dict)
    backbone: str | None = None


def pair_distances(
    references: Sequence[PathLike],
    distorted: Sequence[PathLike],
    distances: Mapping[str, Distance],
    size: int | None = 256,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    map_layers: Sequence[str] = (),
    backbone: str = "vgg16",
    progress: Callable[[int, int], None] | None = None,
) -> PairDistances:
    """Compute every distance for every ``(reference, distorted)`` image pair, in batches.

    :class:`~psychovis.distances.loss.PsychovisualLoss` distances on ``backbone`` with inputs in [0, 1]
    share one forward pass of a network truncated after the deepest of their layers and
    ``map_layers``; their values are the per-map errors times each module's own mean-1 weights,
    which is what calling the module computes. Other distances (pixel MSE, LPIPS) are called as
    ``distance(reference batch, distorted batch)``.

    Args:
        references: reference image paths, one per pair.
        distorted: distorted image paths, one per pair.
        distances: name -> distance (from :func:`psychovis.psychophysics.build_distances`).
        size: common image side (see :func:`to_common_size`); None for native sizes.
        batch_size: pairs per forward pass.
        device: where to run.
        map_layers: layers whose per-map errors are wanted besides the distances' own (for
            :func:`subset_scores`).
        backbone: the backbone of the shared pass and of ``map_layers``.
        progress: optional ``progress(done, total)`` called after each batch.

    Returns:
        A :class:`PairDistances` with per-map errors for every layer of the shared pass.

    Raises:
        ParamsError: mismatched path lists, no distance, or a bad ``batch_size`` / ``size``.
        DataError: an image is missing or unreadable, or a batch mixes sizes with ``size`` None.
        ValueError: a distance returns other than one value per pair.
    """
    references, distorted = [str(path) for path in references], [str(path) for path in distorted]
    if len(references) != len(distorted):
        raise ParamsError(f"{len(references)} references but {len(distorted)} distorted images")
    if not distances and not map_layers:
        raise ParamsError("at least one distance is needed")
    batch_size = integer_at_least("human_judgement.batch_size", batch_size)
    if size is not None:
        size = integer_at_least("human_judgement.size (or null)", size, MIN_IMAGE_SIZE)
    device = torch.device(device)
    plan = SharedPlan.of(distances, backbone, map_layers, share_lpips=False)
    layers = plan.layers
    rows = len(references)
    out = {name: np.empty(rows) for name in plan.generic}
    errors: dict[str, np.ndarray] = {}
    images = _ImageCache(size)
    with torch.inference_mode():
        for module in distances.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        extractor = FeatureExtractor(backbone, layers).to(device) if layers else None
        if extractor is not None:
            errors = {layer: np.empty((rows, maps)) for layer, maps in extractor.channels.items()}
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            reference = images.batch(references[start:stop]).to(device)
            other = images.batch(distorted[start:stop]).to(device)
            if reference.shape != other.shape:
                raise DataError(
                    f"{references[start]} and {distorted[start]} differ in size; set human_judgement.size "
                    "to resize them to a common size"
                )
            for name, distance in plan.generic.items():
                out[name][start:stop] = per_pair_distance(name, distance, reference, other)
            if extractor is not None:
                both = torch.cat([reference, other]).contiguous(memory_format=torch.channels_last)
                features = extractor(both)
                count = stop - start
                first = {layer: feature[:count] for layer, feature in features.items()}
                second = {layer: feature[count:] for layer, feature in features.items()}
                for layer, error in map_errors(first, second, layers).items():
                    errors[layer][start:stop] = error.double().cpu().numpy()
            if progress is not None:
                progress(stop, rows)
    out.update(plan.weighted_values(errors))
    return PairDistances(
        values={name: out[name] for name in distances},
        map_errors=errors,
        backbone=backbone if errors else None,
    )
