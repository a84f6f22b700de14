"""LPIPS v0.1 rebuilt from offline parts: the learned distance the experiments compare VFSS with.

LPIPS (Zhang et al. 2018) lives on the same VGG-16 maps as the psychovisual loss: per layer,
features are unit-normalised across channels, their squared difference is weighted per channel
by a linear head learned from human 2AFC judgements, averaged over space and summed over
layers. It matches the ``lpips`` package to float32 rounding (tested).

References:
    Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric", CVPR 2018; https://github.com/richzhang/PerceptualSimilarity (v0.1).
"""

from __future__ import annotations

import torch
from torch import nn

from psychovis.backbones import FeatureExtractor, backbone_spec, lpips_heads
from psychovis.distances.inputs import check_metric_inputs
from psychovis.errors import ParamsError

LPIPS_EPS = 1e-10
"""Added to the channel norm before dividing, as the ``lpips`` package does."""


def normalise_channels(feature: torch.Tensor) -> torch.Tensor:
    """Unit-normalise ``(N, C, H, W)`` features across channels: ``f / (||f||_2 + 1e-10)``."""
    return feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)


def head_distance(normalised_x: torch.Tensor, normalised_y: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """One layer's LPIPS term: ``mean_hw sum_c w_c (x - y)^2`` of normalised features, shape ``(N,)``."""
    return ((normalised_x - normalised_y).pow(2) * head).sum(dim=1).mean(dim=(1, 2))


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018) built only from offline parts; inputs in [0, 1].

    Per layer ``l`` of the backbone (VGG-16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3),
    features are unit-normalised across channels, ``f / (||f||_2 + 1e-10)``; the squared
    difference is weighted per channel by the linear head ``w_l`` and averaged over space;
    the layers are summed:
    ``d(x, y) = sum_l mean_hw sum_c w_lc (f_lchw(x) - f_lchw(y))^2``.

    Unlike the ``lpips`` package, inputs are in **[0, 1]** (not [-1, 1]). Its ScalingLayer on
    ``2u - 1`` equals the ImageNet mean/std normalisation of ``u`` that
    :class:`~psychovis.backbones.FeatureExtractor` applies (shift ``-0.030, -0.088, -0.188``
    and scale ``0.458, 0.448, 0.450`` are ``2 mean - 1`` and ``2 std``), so the two agree.
    The backbone is frozen; gradients flow to the inputs, so the metric also works as a loss.

    Args:
        backbone: ``"vgg16"`` (default, the paper's network) or ``"alexnet"`` (LPIPS's default).

    Example:
        >>> metric = LPIPS()
        >>> distance = metric(prediction, target)  # (N,) tensor, 0 for identical images

    References:
        Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
        Perceptual Metric", CVPR 2018; https://github.com/richzhang/PerceptualSimilarity (v0.1).
    """

    def __init__(self, backbone: str = "vgg16") -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        heads = lpips_heads(backbone)  # refuses untrained backbones with a clear error
        self.backbone = spec.name
        self.layers = tuple(spec.lpips_layers)
        self.extractor = FeatureExtractor(backbone, layers=self.layers)
        channels = self.extractor.channels
        for position, layer in enumerate(self.layers):
            weight = heads[layer].to(torch.float32)
            if weight.numel() != channels[layer]:
                raise ParamsError(f"LPIPS head for {layer} has {weight.numel()} weights, expected {channels[layer]}")
            self.register_buffer(f"head{position}", weight.view(1, -1, 1, 1), persistent=False)
        self.min_size = self.extractor.min_size
        self.eval()

    def head(self, position: int) -> torch.Tensor:
        """The linear head of the ``position``-th layer, shape ``(1, C, 1, 1)``."""
        return getattr(self, f"head{position}")

    def train(self, mode: bool = True) -> LPIPS:
        # A metric: nothing to train, and the backbone stays in eval mode.
        return super().train(False)

    def _check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> None:
        check_metric_inputs(
            f"LPIPS ({self.backbone})",
            x,
            y,
            self.head0.device,
            self.min_size,
            " (this LPIPS takes [0, 1], not the lpips package's [-1, 1]: pass (x + 1) / 2)",
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance between two image batches.

        Args:
            x: images of shape ``(N, 3, H, W)``, float in [0, 1] (H, W >= 16 for VGG-16, 31 for AlexNet).
            y: images of the same shape.

        Returns:
            Distances of shape ``(N,)``, in the backbone's dtype; 0 for identical images.

        Raises:
            ValueError: wrong type, shape, dtype, device, size or range.
        """
        self._check_inputs(x, y)
        dtype = self.head0.dtype
        batch = x.shape[0]
        features = self.extractor(torch.cat([x, y]).to(dtype))
        normalised = [normalise_channels(features[layer]) for layer in self.layers]
        return self._distance([f[:batch] for f in normalised], [f[batch:] for f in normalised])

    def prepare(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The normalised features of reference images ``y``, to compare many images with (:meth:`compare`).

        Computing them once per reference halves the cost of scoring many images against it.
        """
        self._check_inputs(y, y)
        features = self.extractor(y.to(self.head0.dtype))
        return [normalise_channels(features[layer]) for layer in self.layers]

    def compare(self, x: torch.Tensor, prepared: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS of images ``x`` against the reference of :meth:`prepare` (the same batch size, or 1).

        Equals ``forward(x, y)`` up to float rounding (one forward pass per side instead of one for both).
        """
        self._check_inputs(x, x)
        features = self.extractor(x.to(self.head0.dtype))
        return self._distance([normalise_channels(features[layer]) for layer in self.layers], prepared)

    def _distance(self, normalised_x: list[torch.Tensor], normalised_y: list[torch.Tensor]) -> torch.Tensor:
        distance = torch.zeros(normalised_x[0].shape[0], dtype=self.head0.dtype, device=normalised_x[0].device)
        for position, (fx, fy) in enumerate(zip(normalised_x, normalised_y, strict=True)):
            distance = distance + head_distance(fx, fy, self.head(position))
        return distance
