"""DISTS rebuilt from offline parts: a structure-and-texture similarity on VGG-16 features.

DISTS (Ding et al. 2020) compares, per feature map of an L2-pooled VGG-16 (and of the RGB input
itself), the spatial means ("texture") and the spatial correlation ("structure") of the two images,
and combines them with per-map weights ``alpha`` and ``beta`` learned from human judgements. Here
the VGG-16 conv weights are our offline ImageNet weights (:func:`psychovis.backbones.build_features`,
the same as torchvision's ``IMAGENET1K_V1`` that the ``DISTS_pytorch`` package downloads) and
``alpha``/``beta`` are read from the ``weights.pt`` that the PyPI wheel ``dists-pytorch==0.1``
installs, after a sha256 check. It matches the package's forward to float32 rounding (tested).

References:
    Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
    Similarity", IEEE TPAMI 44(5), 2022 (arXiv:2004.07728); https://github.com/dingkeyan93/DISTS.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from psychovis.backbones import IMAGENET_MEAN, IMAGENET_STD, build_features
from psychovis.distances.inputs import check_metric_inputs
from psychovis.errors import WeightsError

DISTS_PACKAGE = "dists-pytorch==0.1"
DISTS_DISTRIBUTION = "DISTS_pytorch"
DISTS_WEIGHTS_FILE = "weights.pt"
DISTS_WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
"""sha256 of the ``weights.pt`` (alpha and beta, 12,288 bytes) inside the ``dists-pytorch==0.1`` wheel."""
DISTS_INSTALL_HINT = f"install it with `pip install {DISTS_PACKAGE}` (it ships the learned alpha/beta weights)"

DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
"""Maps compared per stage: the RGB input itself, then relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
DISTS_TAPS = (3, 8, 15, 22, 29)
"""torchvision ``vgg16().features`` indices of relu1_2 .. relu5_3, the stage outputs."""
DISTS_POOLS = (4, 9, 16, 23)
"""torchvision indices of the max-pools that DISTS replaces by L2 pooling."""
DISTS_C1 = 1e-6
DISTS_C2 = 1e-6
"""Stabilising constants of the texture and structure terms, as in the reference code."""
L2POOL_EPS = 1e-12
"""Added under the square root of the L2 pooling, as in the reference code (finite gradient at 0)."""


class L2Pooling(nn.Module):
    """L2 pooling: ``sqrt(g * x^2 + 1e-12)`` subsampled by 2, with a 3x3 Hann kernel ``g`` per channel.

    This is the anti-aliased replacement of VGG's max-pools in DISTS (Hénaff & Simoncelli 2016):
    the 5-tap Hann window ``[0, .5, 1, .5, 0]`` trimmed to ``[.5, 1, .5]``, its outer product
    normalised to sum 1, applied depthwise with stride 2 and padding 1, exactly as
    ``DISTS_pytorch.DISTS_pt.L2pooling(filter_size=5, stride=2)``. Output side ``ceil(side / 2)``.

    Args:
        channels: number of input channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = np.hanning(5)[1:-1]
        kernel = torch.tensor(np.outer(taps, taps), dtype=torch.float32)
        kernel = kernel / kernel.sum()
        self.register_buffer("filter", kernel[None, None].repeat(channels, 1, 1, 1), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x of shape (N, channels, H, W). Returns: (N, channels, ceil(H/2), ceil(W/2))."""
        pooled = F.conv2d(x.pow(2), self.filter.to(x.dtype), stride=2, padding=1, groups=self.channels)
        return (pooled + L2POOL_EPS).sqrt()


def _dists_weight_candidates() -> list[Path]:
    """Where ``weights.pt`` may lie: the files the installed wheel lists, then ``sys.prefix`` (its data dir)."""
    candidates: list[Path] = []
    try:
        files = importlib.metadata.distribution(DISTS_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == DISTS_WEIGHTS_FILE:
            candidates.append(Path(str(file.locate())).resolve())
    candidates.append(Path(sys.prefix) / DISTS_WEIGHTS_FILE)  # where the package itself reads it
    return list(dict.fromkeys(candidates))


def dists_weights_path() -> Path:
    """The installed DISTS ``weights.pt``.

    Returns:
        The first existing file among those the ``DISTS_pytorch`` distribution lists and
        ``sys.prefix/weights.pt``.

    Raises:
        WeightsError: no such file (the package is not installed).
    """
    for candidate in _dists_weight_candidates():
        if candidate.is_file():
            return candidate
    raise WeightsError(f"DISTS weights ({DISTS_WEIGHTS_FILE} of {DISTS_PACKAGE}) not found; {DISTS_INSTALL_HINT}")


def load_dists_weights(path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read DISTS's learned ``alpha`` and ``beta`` after checking the file's sha256.

    Args:
        path: the ``weights.pt`` to read; ``None`` finds the installed one (:func:`dists_weights_path`).

    Returns:
        ``(alpha, beta)``, float32 tensors of shape ``(1, 1475, 1, 1)`` (one weight per compared map).

    Raises:
        WeightsError: the file is missing, altered (checksum), unreadable or not the expected tensors.
    """
    path = dists_weights_path() if path is None else Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"DISTS weights file {path} cannot be read ({exc}); {DISTS_INSTALL_HINT}") from exc
    digest = hashlib.sha256(content).hexdigest()
    if digest != DISTS_WEIGHTS_SHA256:
        raise WeightsError(
            f"DISTS weights file {path} has sha256 {digest[:16]}..., expected {DISTS_WEIGHTS_SHA256[:16]}... "
            f"(altered or another version); reinstall it: `pip install --force-reinstall {DISTS_PACKAGE}`"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"DISTS weights file {path} cannot be loaded ({exc}); {DISTS_INSTALL_HINT}") from exc
    expected = (1, sum(DISTS_CHANNELS), 1, 1)
    if not isinstance(state, dict) or any(
        not isinstance(state.get(key), torch.Tensor) or tuple(state[key].shape) != expected for key in ("alpha", "beta")
    ):
        raise WeightsError(f"DISTS weights file {path} does not hold alpha and beta of shape {expected}")
    return state["alpha"].detach().float(), state["beta"].detach().float()


class DISTS(nn.Module):
    """Deep Image Structure and Texture Similarity (Ding et al. 2020); inputs in [0, 1].

    The backbone is VGG-16 (our offline ImageNet conv weights) with its max-pools replaced by
    :class:`L2Pooling`, truncated at relu5_3. Six stages are compared: the RGB input itself and
    relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (``j`` indexes all 1,475 maps). With spatial means
    ``mu``, variances ``sigma^2`` and covariance ``sigma_xy`` of each map,

    ``texture_j = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)``,
    ``structure_j = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2)``,
    ``D(x, y) = 1 - sum_j (alpha_j texture_j + beta_j structure_j) / sum_j (alpha_j + beta_j)``

    with ``c1 = c2 = 1e-6`` and the learned ``alpha``, ``beta`` of the reference release. ImageNet
    mean/std normalisation feeds the VGG; the RGB stage sees the raw [0, 1] input. The module is
    frozen and stays in eval mode; gradients flow to the inputs.

    Args:
        weights: path of the ``weights.pt`` with ``alpha``/``beta``; ``None`` (default) finds the
            one installed by ``dists-pytorch==0.1``. It is checked by sha256 either way.

    Raises:
        WeightsError: the VGG-16 or DISTS weights are missing or altered.

    Example:
        >>> metric = DISTS()
        >>> distance = metric(prediction, target)  # (N,) tensor, 0 for identical images

    References:
        Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
        Similarity", IEEE TPAMI 44(5), 2022 (arXiv:2004.07728); https://github.com/dingkeyan93/DISTS.
        Hénaff, Simoncelli, "Geodesics of learned representations", ICLR 2016 (L2 pooling).
    """

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        alpha, beta = load_dists_weights(weights)
        features = build_features("vgg16")
        modules = list(features.children())[: DISTS_TAPS[-1] + 1]
        pooled_channels = dict(zip(DISTS_POOLS, DISTS_CHANNELS[1:5], strict=True))
        for index, channels in pooled_channels.items():
            if not isinstance(modules[index], nn.MaxPool2d):
                raise WeightsError(f"VGG-16 features[{index}] is {type(modules[index]).__name__}, expected MaxPool2d")
            modules[index] = L2Pooling(channels)
        # Same indices as torchvision's `features`, so the conv weights keep their state-dict keys.
        self.body = nn.Sequential(*modules)
        for parameter in self.body.parameters():
            parameter.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # Normalised once: the package divides alpha and beta by their joint sum in every forward.
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / total).view(1, -1), persistent=False)
        self.register_buffer("beta", (beta / total).view(1, -1), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> DISTS:
        # A metric: nothing to train, and the backbone stays in eval mode.
        return super().train(False)

    def _check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # Four stride-2 poolings: relu5_3 must keep at least one pixel per side (any side >= 1
        # works arithmetically, but its variance needs more than one pixel to mean anything).
        check_metric_inputs(
            "DISTS", x, y, self.alpha.device, 16, "; rescale [0, 255] data by 1/255 or [-1, 1] data by (x + 1) / 2"
        )

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The six compared stages of a batch: the input, then relu1_2 .. relu5_3 of the L2-pooled VGG-16.

        Args:
            images: ``(N, 3, H, W)`` in [0, 1], in the metric's dtype.

        Returns:
            Six tensors ``(N, C_k, H_k, W_k)`` with ``C_k`` = :data:`DISTS_CHANNELS`.
        """
        outputs = [images]
        h = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        for index, module in enumerate(self.body):
            h = module(h)
            if index in DISTS_TAPS:
                outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS distance between two image batches.

        Args:
            x: images of shape ``(N, 3, H, W)``, float in [0, 1], H and W >= 16 (e.g. the prediction).
            y: images of the same shape (e.g. the reference).

        Returns:
            Distances of shape ``(N,)``, in the metric's dtype (float32); 0 for identical images,
            symmetric in ``x`` and ``y``, usually below 1.

        Raises:
            ValueError: wrong type, shape, dtype, device, size, range or NaN.
        """
        self._check_inputs(x, y)
        batch = x.shape[0]
        # One forward pass over both batches (the package runs two).
        stages = self.stages(torch.cat([x, y]).to(self.alpha.dtype))
        return self._distance([s[:batch] for s in stages], [_moments(s[batch:]) for s in stages])

    def prepare(self, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each stage of reference images ``y`` with its spatial mean and variance, for :meth:`compare`.

        Computing them once per reference halves the cost of scoring many images against it.
        """
        self._check_inputs(y, y)
        return [_moments(feature) for feature in self.stages(y.to(self.alpha.dtype))]

    def compare(self, x: torch.Tensor, prepared: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """DISTS of images ``x`` against the reference of :meth:`prepare`; equals ``forward`` up to float rounding."""
        self._check_inputs(x, x)
        return self._distance(self.stages(x.to(self.alpha.dtype)), prepared)

    def _distance(
        self, stages_x: list[torch.Tensor], prepared_y: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        texture, structure = [], []
        for fx, (fy, mean_y, var_y) in zip(stages_x, prepared_y, strict=True):
            _, mean_x, var_x = _moments(fx)
            # E[xy] - E[x]E[y], as the reference computes the covariance.
            covariance = (fx * fy).mean(dim=(2, 3)) - mean_x * mean_y
            texture.append((2 * mean_x * mean_y + DISTS_C1) / (mean_x.pow(2) + mean_y.pow(2) + DISTS_C1))
            structure.append((2 * covariance + DISTS_C2) / (var_x + var_y + DISTS_C2))
        similarity = (self.alpha * torch.cat(texture, dim=1)).sum(dim=1) + (
            self.beta * torch.cat(structure, dim=1)
        ).sum(dim=1)
        return 1 - similarity


def _moments(feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(feature, spatial mean, spatial variance)`` of ``(N, C, H, W)`` maps, means and variances ``(N, C)``."""
    mean = feature.mean(dim=(2, 3))
    return feature, mean, (feature - mean[..., None, None]).pow(2).mean(dim=(2, 3))
