"""Per-feature-map weights as a versioned artifact (safetensors with metadata).

The `weights` stage exports one file per scheme (``vfss``: L1-normalised VFSS; ``topk``: the k
highest-VFSS maps; ...), the `modelfest` stage the ``human_fitted`` weights (fitted to people's
detection thresholds); :class:`psychovis.distances.loss.PsychovisualLoss` reads them.

A weights file names its backbone and holds one weight for every map of each of its layers;
the metadata records only what shaped the file (the params keys the scheme read, the CSF), so
a parameter that does not affect a scheme leaves its file byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.errors import InvalidWeightsError, WeightsError
from psychovis.io import atomic_path
from psychovis.weights_file import FORMAT, METADATA_KEY, read_header, read_weights_bytes, reexport, require_layers

SHAPING_KEYS: dict[str, tuple[str, ...]] = {
    "vfss": ("base.backbone", "weights.layers", "vfss.csf"),
    "vfss_normalised": ("base.backbone", "weights.layers", "vfss.csf"),
    "topk": ("base.backbone", "weights.layers", "weights.top_k", "vfss.csf"),
    "lpips_weighted": ("base.backbone", "weights.lpips_layers"),
    "human_fitted": (
        "base.backbone",
        "modelfest.layers",
        "modelfest.fit_families",
        "modelfest.weights_ridge",
        "modelfest.px_per_degree",
        "modelfest.contrast_min",
        "modelfest.contrast_max",
        "modelfest.contrasts",
    ),
}
"""The params keys that shape each scheme's file (``vfss.csf`` shaped the VFSS scores it is made of)."""


def shaping_params(scheme: str, params: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The metadata recording what shaped a scheme's weights: ``{"params": <sorted JSON of its keys>}``.

    Only the keys in :data:`SHAPING_KEYS` are recorded, so changing another parameter (e.g.
    ``weights.top_k`` for the ``vfss`` file) leaves the file byte-identical.

    Args:
        scheme: a key of :data:`SHAPING_KEYS`.
        params: the params sections, e.g. ``{"base": {...}, "weights": {...}, "vfss": {...}}``.

    Returns:
        Metadata entries to store in the weights file.
    """
    values = {}
    for key in SHAPING_KEYS[scheme]:
        section, name = key.split(".")
        values[key] = params[section][name]
    return {"params": json.dumps(values, sort_keys=True)}


@dataclass
class FeatureWeights:
    """Non-negative weights for every feature map of some layers of a backbone.

    Attributes:
        backbone: backbone name (e.g. ``vgg16``).
        scheme: how the weights were derived (``vfss``, ``topk`` or ``uniform``).
        weights: layer name -> tensor of shape ``(maps of the layer,)``.
        metadata: free-form string metadata (the params that shaped the file, the CSF, provenance).
        source: where the weights came from, for error messages (a file path, or ``feature weights``).
    """

    backbone: str
    scheme: str
    weights: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = field(default="feature weights", compare=False, repr=False)

    def __post_init__(self) -> None:
        spec = backbone_spec(self.backbone)
        require_layers(list(self.weights), self.source)
        resolve_layers(spec, list(self.weights), key=f"{self.source}: layers")
        for layer, tensor in self.weights.items():
            if not isinstance(tensor, torch.Tensor) or tensor.ndim != 1:
                raise InvalidWeightsError(f"{self.source}: weights for {layer} must be a vector, one weight per map")
            if tensor.numel() != spec.channels[layer]:
                raise InvalidWeightsError(
                    f"{self.source} has {tensor.numel()} of {spec.channels[layer]} maps of {layer} "
                    f"({self.backbone}); weights must cover every map of their layer"
                )
            # float64: sums of tiny or huge float32 weights neither vanish nor overflow.
            values = tensor.detach().to(torch.float64)
            if not torch.isfinite(values).all() or (values < 0).any():
                raise InvalidWeightsError(
                    f"{self.source}: weights for {layer} must be finite and non-negative "
                    f"(found {int((~torch.isfinite(values)).sum())} non-finite, {int((values < 0).sum())} negative)"
                )
            if float(values.sum()) <= 0:
                raise InvalidWeightsError(
                    f"{self.source}: weights for {layer} are all zero: no feature map would count"
                )

    @property
    def layers(self) -> list[str]:
        return list(self.weights)

    @classmethod
    def uniform(cls, backbone: str, layers: Sequence[str], channels: Mapping[str, int]) -> FeatureWeights:
        """Equal weight on every map: the plain VGG perceptual loss."""
        return cls(
            backbone, "uniform", {layer: torch.full((channels[layer],), 1.0 / channels[layer]) for layer in layers}
        )

    def normalised(self, layer: str) -> torch.Tensor:
        """The weights of ``layer`` rescaled to mean 1, computed in float64 and returned in float32.

        Tiny uniform weights (a float32 sum that rounds to 0) and weights near the float32 maximum
        (a float32 sum that overflows) both give the same mean-1 weights as any other scaling.
        """
        values = self.weights[layer].detach().to(torch.float64)
        return (values * (values.numel() / values.sum())).to(torch.float32)

    def save(self, path: str | Path) -> Path:
        """Write the weights atomically as float32 safetensors, metadata included.

        Raises:
            InvalidWeightsError: a weight beyond float32's range (it would be stored as inf).
        """
        metadata = {
            **self.metadata,
            "format": FORMAT,
            "backbone": self.backbone,
            "scheme": self.scheme,
            "layers": json.dumps(self.layers),
        }
        tensors = {layer: tensor.detach().to(torch.float32).contiguous() for layer, tensor in self.weights.items()}
        for layer, tensor in tensors.items():
            if not torch.isfinite(tensor).all():
                raise InvalidWeightsError(
                    f"{self.source}: weights for {layer} exceed float32's range; divide them by their sum first"
                )
        # One key holding sorted JSON: safetensors writes a multi-key metadata map in arbitrary order,
        # which would make equal weights give different bytes (and DVC hashes) from run to run.
        header = {METADATA_KEY: json.dumps(metadata, sort_keys=True)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, scheme: str | None = None) -> FeatureWeights:
        """Read weights exported by the `weights` stage (or :meth:`save`).

        Args:
            path: the file.
            scheme: the scheme the caller loads them for (e.g. the training loss ``topk``): a file of
                another scheme is refused rather than trained under the wrong name.

        Raises:
            WeightsError: the file is missing, too large (checked with ``stat`` before reading),
                unreadable or not a psychovis weights file.
            InvalidWeightsError: (also a ``ValueError``) the weights are non-finite, negative, or
                do not cover every map of their layer, or were made for another ``scheme``; the
                message names the file.
        """
        return cls.from_bytes(read_weights_bytes(path), path, scheme)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path, scheme: str | None = None) -> FeatureWeights:
        """Parse the bytes of a weights file; ``path`` names it in error messages (``scheme``: see :meth:`load`)."""
        try:
            tensors = load_bytes(data)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is not a readable safetensors file ({exc}); {reexport(path)}") from exc
        header = read_header(data, path, scheme)
        weights = {layer: tensors[layer] for layer in header.layers}
        return cls(header.backbone, header.scheme, weights, dict(header.extra), source=f"weights file {path}")
