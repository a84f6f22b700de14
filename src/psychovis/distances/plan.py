"""Which distances of a catalogue one forward pass can serve, and how they are read off it.

The experiments evaluate many distances on the same image pairs. ``PsychovisualLoss`` distances
(any weights, any map selection) and ``LPIPS`` on one backbone need the same features, so
:class:`SharedPlan` groups them: the caller runs the truncated backbone once per batch, keeps the
per-map errors (:func:`psychovis.distances.engine.map_errors`), and reads every distance off them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from psychovis.backbones import FeatureExtractor
from psychovis.distances.engine import Distance, weighted_errors
from psychovis.distances.loss import PsychovisualLoss
from psychovis.distances.lpips import LPIPS, head_distance, normalise_channels


@dataclass
class SharedPlan:
    """Which distances one forward pass of one backbone serves, and on which layers.

    Attributes:
        backbone: the backbone of the shared pass (None when no distance can share it).
        weighted: name -> ``PsychovisualLoss`` distances with inputs in [0, 1] on ``backbone``.
        lpips: name -> ``LPIPS`` distances on ``backbone`` (empty unless ``share_lpips``).
        generic: every other distance, called as ``distance(reference, distorted)``.
        layers: the union of the shared distances' layers and any extra layers asked for.
        map_layers: the layers whose per-map errors are kept (those of ``weighted`` and the extra ones).
    """

    backbone: str | None
    weighted: dict[str, PsychovisualLoss] = field(default_factory=dict)
    lpips: dict[str, LPIPS] = field(default_factory=dict)
    generic: dict[str, Distance] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    map_layers: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        distances: Mapping[str, Distance],
        backbone: str | None = None,
        extra_layers: Sequence[str] = (),
        share_lpips: bool = True,
    ) -> SharedPlan:
        """Plan the shared pass for ``distances``.

        Args:
            distances: name -> distance.
            backbone: the backbone to share (default: that of the first feature distance).
            extra_layers: layers whose per-map errors are wanted besides the distances' own.
            share_lpips: serve ``LPIPS`` distances from the shared features too.
        """
        plan = cls(backbone)
        for name, distance in distances.items():
            # a loss that resamples to its reference geometry needs its own pass
            if (
                isinstance(distance, PsychovisualLoss)
                and distance.data_range == (0.0, 1.0)
                and getattr(distance, "px_per_degree", None) is None
            ):
                candidate, group = distance.extractor.spec.name, plan.weighted
            elif share_lpips and isinstance(distance, LPIPS):
                candidate, group = distance.backbone, plan.lpips
            else:
                plan.generic[name] = distance
                continue
            if plan.backbone is None:
                plan.backbone = candidate
            if candidate == plan.backbone:
                group[name] = distance
                wanted = distance.layers
                plan.layers.extend(layer for layer in wanted if layer not in plan.layers)
            else:
                plan.generic[name] = distance
        plan.layers = list(dict.fromkeys([*extra_layers, *plan.layers]))
        kept = {*extra_layers, *(layer for distance in plan.weighted.values() for layer in distance.layers)}
        plan.map_layers = [layer for layer in plan.layers if layer in kept]
        return plan

    def start(
        self, distances: Mapping[str, Distance], references: torch.Tensor, rows: int, device: torch.device
    ) -> tuple[FeatureExtractor | None, dict[str, torch.Tensor], dict[str, np.ndarray], dict[str, torch.Tensor]]:
        """Move ``distances`` to ``device`` and, when a pass is shared, build it and read the references once.

        Call inside ``torch.inference_mode()``.

        Args:
            distances: every distance of the plan.
            references: ``(R, 3, H, W)`` reference images (backgrounds, the blank) in [0, 1].
            rows: how many image pairs will be evaluated (the size of the per-map error buffers).
            device: where to run.

        Returns:
            ``(extractor, reference_features, errors, normalised_reference)``: the truncated backbone (None
            when nothing is shared), the references' features, empty ``(rows, maps)`` per-map error
            buffers of :attr:`map_layers`, and the channel-normalised reference features (for LPIPS).
        """
        for module in distances.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        if not self.shared:
            return None, {}, {}, {}
        extractor = FeatureExtractor(self.backbone, self.layers).to(device)
        reference = extractor(references)
        errors = {layer: np.empty((rows, extractor.channels[layer])) for layer in self.map_layers}
        normalised = {layer: normalise_channels(feature) for layer, feature in reference.items()}
        return extractor, reference, errors, normalised

    @property
    def shared(self) -> dict[str, Distance]:
        """The distances the shared pass serves."""
        return {**self.weighted, **self.lpips}

    def lpips_values(
        self,
        features: Mapping[str, torch.Tensor],
        normalised_reference: Mapping[str, torch.Tensor],
        reference_index: torch.Tensor | slice,
    ) -> dict[str, torch.Tensor]:
        """Each shared LPIPS distance from the features of a batch and normalised reference features.

        Returns:
            Name -> ``(N,)`` float64 distances.
        """
        values = {}
        for name, metric in self.lpips.items():
            first = features[metric.layers[0]]
            total = torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)
            for position, layer in enumerate(metric.layers):
                normalised = normalise_channels(features[layer])
                reference = normalised_reference[layer][reference_index]
                total += head_distance(normalised, reference, metric.head(position)).double()
            values[name] = total
        return values

    def weighted_values(self, errors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each shared ``PsychovisualLoss`` distance from the per-map errors of its layers (float64)."""
        values = {}
        for name, distance in self.weighted.items():
            total = np.zeros(next(iter(errors.values())).shape[0])
            for layer in distance.layers:
                total += weighted_errors(errors[layer], distance.layer_weights(layer).double().cpu().numpy())
            values[name] = total
        return values
