"""A small EDSR-style super-resolution network, the model the perceptual losses are compared on.

The network predicts a residual on top of bicubic upsampling, and its last convolution starts
at zero, so an untrained model reproduces bicubic exactly and training only has to learn the
missing detail. That keeps short CPU training runs meaningful and makes loss comparisons start
from the same, known point.
"""

from __future__ import annotations

import torch
from torch import nn

from psychovis.errors import quote
from psychovis.names import UPSAMPLERS
from psychovis.sr.data import upsample_bicubic

SCALES: tuple[int, ...] = (2, 3, 4, 8)
"""The upscaling factors :class:`SRResNet` supports."""


class ResidualBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 with a scaled identity skip and no batch norm (EDSR).

    Args:
        channels: feature channels in and out.
        res_scale: factor on the residual branch; 0.1 keeps deep stacks stable (Lim et al., 2017).
    """

    def __init__(self, channels: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + res_scale * body(x)``."""
        return x + self.res_scale * self.body(x)


def icnr_(conv: nn.Conv2d, factor: int) -> nn.Conv2d:
    """ICNR initialisation of a sub-pixel convolution, in place: no checkerboard at the start.

    The ``factor**2`` output channels that PixelShuffle interleaves into one output channel start
    with the same kernel (and a zero bias), so the freshly initialised upsampler is a convolution
    followed by nearest-neighbour upsampling: its output has no periodic pattern of period ``factor``.

    Args:
        conv: the convolution before the PixelShuffle, ``channels * factor**2`` output channels.
        factor: the PixelShuffle factor.

    Returns:
        ``conv``, initialised.

    References:
        Aitken et al., "Checkerboard artifact free sub-pixel convolution", arXiv:1707.02937, 2017.
    """
    weight = conv.weight
    base = torch.empty(weight.shape[0] // factor**2, *weight.shape[1:], dtype=weight.dtype)
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(factor**2, dim=0))
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


def _upsampler(scale: int, channels: int, kind: str = "pixelshuffle") -> nn.Sequential:
    factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
    stages: list[nn.Module] = []
    for factor in factors:
        if kind == "resize_conv":  # nearest-neighbour resize, then a convolution (Odena et al. 2016)
            stages += [nn.Upsample(scale_factor=factor, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)]
            continue
        conv = nn.Conv2d(channels, factor**2 * channels, 3, padding=1)
        if kind == "icnr":
            icnr_(conv, factor)
        stages += [conv, nn.PixelShuffle(factor)]
    return nn.Sequential(*stages)


class SRResNet(nn.Module):
    """EDSR-style single-image super-resolution network with a global bicubic skip.

    Layout: head conv3x3 (3 -> channels); ``residual_blocks`` residual blocks (conv-ReLU-conv,
    residual scaling 0.1, no batch norm) and a body conv3x3, wrapped by a long skip from the head;
    an upsampler of x2 stages for 2, 4 and 8, one x3 stage for 3 (sub-pixel convolutions, or
    resize + convolution); a tail conv3x3 (channels -> 3). The output is the tail's output plus the bicubic
    upsampling of the input. The tail starts at zero weights and bias, so at initialisation the
    output equals :func:`psychovis.sr.data.upsample_bicubic` of the input.

    Args:
        scale: the upscaling factor, one of :data:`SCALES`.
        channels: feature channels throughout (EDSR baseline: 64; 32 trains quickly on a CPU).
        residual_blocks: number of residual blocks (EDSR baseline: 16).
        upsampler: ``pixelshuffle`` (sub-pixel convolutions, default init: EDSR), ``icnr`` (the same,
            ICNR-initialised: no checkerboard at the start, :func:`icnr_`) or ``resize_conv``
            (nearest-neighbour resize + convolution: no checkerboard by construction).

    Raises:
        ValueError: ``scale`` is not supported, or ``channels`` / ``residual_blocks`` is below 1 / 0.

    References:
        Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
        Super-Resolution", CVPR Workshops 2017 (EDSR).
        Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
        Adversarial Network", CVPR 2017 (SRResNet).
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
        Sub-Pixel Convolutional Neural Network", CVPR 2016 (PixelShuffle).
        Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016 (resize + conv).
    """

    def __init__(
        self, scale: int = 4, channels: int = 32, residual_blocks: int = 4, upsampler: str = "pixelshuffle"
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
            raise ValueError(f"scale must be one of {list(SCALES)}, got {quote(scale)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an integer >= 1, got {quote(channels)}")
        if isinstance(residual_blocks, bool) or not isinstance(residual_blocks, int) or residual_blocks < 0:
            raise ValueError(f"residual_blocks must be an integer >= 0, got {quote(residual_blocks)}")
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {list(UPSAMPLERS)}, got {quote(upsampler)}")
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(
            *(ResidualBlock(channels) for _ in range(residual_blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.upsampler = _upsampler(scale, channels, upsampler)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def _check_input(self, lr: torch.Tensor) -> None:
        if not isinstance(lr, torch.Tensor):
            raise ValueError(f"SRResNet expects a tensor of shape (N, 3, h, w), got {type(lr).__name__}")
        if lr.ndim != 4 or lr.shape[1] != 3 or lr.shape[0] < 1 or min(lr.shape[-2:]) < 1:
            raise ValueError(f"SRResNet expects a tensor of shape (N, 3, h, w), got {tuple(lr.shape)}")
        if not lr.is_floating_point():
            raise ValueError(f"SRResNet expects a float tensor in [0, 1], got dtype {lr.dtype}")

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Super-resolve a batch (unclamped, for training).

        Args:
            lr: low-resolution images (N, 3, h, w) in [0, 1].

        Returns:
            Super-resolved images (N, 3, h * scale, w * scale); values may leave [0, 1] slightly.

        Raises:
            ValueError: ``lr`` is not a float tensor of shape (N, 3, h, w).
        """
        self._check_input(lr)
        features = self.head(lr)
        features = features + self.body(features)
        return self.tail(self.upsampler(features)) + upsample_bicubic(lr, self.scale)

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        """Super-resolve for evaluation: eval mode, no gradients, whole image in one pass, clamped.

        The input is moved to the model's device and dtype; the previous train/eval mode is restored.

        Args:
            lr: low-resolution images (N, 3, h, w) or one image (3, h, w), in [0, 1].

        Returns:
            Images in [0, 1] of shape (N, 3, h * scale, w * scale), or (3, h * scale, w * scale) for
            a single image, on the model's device.

        Raises:
            ValueError: ``lr`` has the wrong shape or dtype.
        """
        single = isinstance(lr, torch.Tensor) and lr.ndim == 3
        batch = lr.unsqueeze(0) if single else lr
        self._check_input(batch)
        parameter = next(self.parameters())
        was_training = self.training
        self.eval()
        try:
            output = self(batch.to(device=parameter.device, dtype=parameter.dtype)).clamp_(0.0, 1.0)
        finally:
            self.train(was_training)
        return output[0] if single else output


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters in ``model`` (trainable or not; shared tensors counted once).

    Args:
        model: any module.

    Returns:
        The total count of parameter elements.
    """
    return sum(parameter.numel() for parameter in model.parameters())
