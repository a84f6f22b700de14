"""Per-feature-map weights as a versioned artifact (safetensors with metadata).

The `weights` stage exports one file per scheme (``vfss``: L1-normalised VFSS; ``topk``: the k
highest-VFSS maps); :class:`psychovis.distances.loss.PsychovisualLoss` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.errors import WeightsError
from psychovis.io import atomic_path

FORMAT = "psychovis.feature-weights/1"
METADATA_KEY = "psychovis"


@dataclass
class FeatureWeights:
    """Non-negative weights for the feature maps of some layers of a backbone.

    Attributes:
        backbone: backbone name (e.g. ``vgg16``).
        scheme: how the weights were derived (``vfss``, ``topk`` or ``uniform``).
        weights: layer name -> float32 tensor of shape ``(channels,)``.
        metadata: free-form string metadata (params hash, CSF model, ...).
    """

    backbone: str
    scheme: str
    weights: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = backbone_spec(self.backbone)
        resolve_layers(spec, list(self.weights), key="weights layers")
        for layer, tensor in self.weights.items():
            if tensor.ndim != 1 or not torch.isfinite(tensor).all() or (tensor < 0).any():
                raise WeightsError(f"weights for {layer} must be a finite non-negative vector")
            if float(tensor.sum()) <= 0:
                raise WeightsError(f"weights for {layer} are all zero: no feature map would count")

    @property
    def layers(self) -> list[str]:
        return list(self.weights)

    @classmethod
    def uniform(cls, backbone: str, layers: Sequence[str], channels: Mapping[str, int]) -> FeatureWeights:
        """Equal weight on every map: the plain VGG perceptual loss."""
        return cls(
            backbone, "uniform", {layer: torch.full((channels[layer],), 1.0 / channels[layer]) for layer in layers}
        )

    def save(self, path: str | Path) -> Path:
        """Write the weights atomically as safetensors, metadata included."""
        metadata = {
            **self.metadata,
            "format": FORMAT,
            "backbone": self.backbone,
            "scheme": self.scheme,
            "layers": json.dumps(self.layers),
        }
        tensors = {layer: tensor.detach().to(torch.float32).contiguous() for layer, tensor in self.weights.items()}
        # One key holding sorted JSON: safetensors writes a multi-key metadata map in arbitrary order,
        # which would make equal weights give different bytes (and DVC hashes) from run to run.
        header = {METADATA_KEY: json.dumps(metadata, sort_keys=True)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=header)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureWeights:
        """Read weights exported by the `weights` stage (or :meth:`save`).

        Raises:
            WeightsError: the file is missing, unreadable or not a psychovis weights file.
        """
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"feature weights file {path} is missing; run `dvc repro weights` to export it")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                header = dict(handle.metadata() or {})
            tensors = load_file(str(path))
            metadata = json.loads(header.get(METADATA_KEY, "{}"))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(
                f"{path} is not a readable safetensors file ({exc}); re-export it with `dvc repro weights`"
            ) from exc
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise WeightsError(f"{path} is not a psychovis feature-weights file (format {metadata.get('format')!r})")
        try:
            layers = json.loads(metadata["layers"])
            weights = {layer: tensors[layer] for layer in layers}
            backbone, scheme = metadata["backbone"], metadata["scheme"]
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{path} is a damaged psychovis feature-weights file ({exc!r}); re-export it") from exc
        extra = {key: value for key, value in metadata.items() if key not in ("format", "backbone", "scheme", "layers")}
        return cls(backbone, scheme, weights, extra)
