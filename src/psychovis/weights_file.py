"""A feature-weights file's bytes and metadata, read without torch (the header of a safetensors file).

:class:`psychovis.feature_weights.FeatureWeights` builds on this to read the tensors; a stage checks
a file's kind, size, format, ``scheme`` and ``layers`` with :func:`check_file` before its heavy
imports (:mod:`psychovis.pipeline.preflight`), so a wrong file is refused in about a second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from psychovis.errors import InvalidWeightsError, WeightsError, quote
from psychovis.files import kind

FORMAT = "psychovis.feature-weights/1"
METADATA_KEY = "psychovis"
MAX_FILE_BYTES = 16 << 20
"""Largest weights file read: every map of every VGG-16 layer is 4,224 floats (about 17 KB)."""
EXPORTED_BY = {"human_fitted": "modelfest"}
"""The stage that exports a scheme's file, where it is not `weights`."""


def export_command(path: str | Path) -> str:
    """The `dvc repro` that (re-)exports the weights file ``path`` (named ``<scheme>.safetensors``)."""
    return f"dvc repro {EXPORTED_BY.get(Path(path).stem, 'weights')}"


def reexport(path: str | Path) -> str:
    """What to do about a bad weights file ``path``."""
    return f"re-export it with `{export_command(path)}`"


@dataclass(frozen=True)
class WeightsHeader:
    """What a weights file says of itself.

    Attributes:
        backbone: the backbone its maps belong to.
        scheme: how its weights were derived (``vfss``, ``topk``, ...).
        layers: its layers, in order (each a tensor of the file).
        extra: the rest of its metadata (the params that shaped it).
    """

    backbone: str
    scheme: str
    layers: list[str]
    extra: dict[str, str] = field(default_factory=dict)


def require_layers(layers: Sequence[str], source: str) -> None:
    """A weights file (or object) covers at least one layer."""
    if not layers:
        raise InvalidWeightsError(f"{source} holds no layers (layers: []); a weights file covers at least one")


def read_weights_bytes(path: str | Path) -> bytes:
    """The bytes of a weights file, its size checked with ``stat`` before anything is read.

    Raises:
        WeightsError: missing, not a file, or larger than :data:`MAX_FILE_BYTES`.
    """
    path = Path(path)
    found = kind(path)
    if found not in (None, "a regular file"):
        raise WeightsError(f"feature weights file {path} is {found}, not a regular file; {reexport(path)}")
    try:
        size = os.stat(path).st_size
    except OSError:
        size = None
    if size is None:
        raise WeightsError(
            f"feature weights file {path} (resolved: {path.resolve()}) is missing; run `{export_command(path)}` "
            "to export it, or use PsychovisualLoss.pretrained(...) for the weights shipped with psychovis"
        )
    if size > MAX_FILE_BYTES:
        raise WeightsError(
            f"{path} has {size:,} bytes; a feature-weights file is a few KB (at most {MAX_FILE_BYTES:,}): wrong file?"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read ({exc}); {reexport(path)}") from exc


def read_header(data: bytes, path: str | Path, scheme: str | None = None) -> WeightsHeader:
    """The metadata of a weights file's bytes, checked: format, backbone, scheme, layers.

    Args:
        data: the file's bytes (:func:`read_weights_bytes`).
        path: the file, named in errors.
        scheme: the scheme the caller loads it for (e.g. the training loss ``topk``): a file of
            another scheme is refused rather than trained under the wrong name.

    Raises:
        WeightsError: not a safetensors header, not a psychovis weights file, or damaged metadata
            (a layer without its tensor, no backbone or scheme).
        InvalidWeightsError: another ``scheme``, or no layers.
    """
    try:
        size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or size > len(data) - 8:
            raise ValueError(f"a header of {size} bytes in a file of {len(data)}")
        header = json.loads(data[8 : 8 + size])
        metadata = json.loads((header.get("__metadata__") or {}).get(METADATA_KEY, "{}"))
    except (ValueError, AttributeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); {reexport(path)}") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        format_ = metadata.get("format") if isinstance(metadata, dict) else None
        raise WeightsError(f"{path} is not a psychovis feature-weights file (format {format_!r})")
    try:
        layers = json.loads(metadata["layers"])
        backbone, found = metadata["backbone"], metadata["scheme"]
        if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
            raise TypeError(f"layers {quote(layers)} is not a list of names")
        for layer in layers:
            header[layer]
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path} is a damaged psychovis feature-weights file ({exc!r}); {reexport(path)}") from exc
    require_layers(layers, f"weights file {path}")
    if scheme is not None and found != scheme:
        raise InvalidWeightsError(
            f"{path} holds {quote(found)} weights, not the {quote(scheme)} weights it was loaded for; "
            f"{reexport(path)}, or point to the {scheme}.safetensors file"
        )
    extra = {key: value for key, value in metadata.items() if key not in ("format", "backbone", "scheme", "layers")}
    return WeightsHeader(backbone, found, layers, extra)


def check_file(path: str | Path, scheme: str | None = None) -> WeightsHeader:
    """:func:`read_header` of the file at ``path`` (kind and size checked first)."""
    return read_header(read_weights_bytes(path), path, scheme)
