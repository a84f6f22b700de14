"""The EDSR-style super-resolution network: shapes, bicubic start, gradients and a short fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psychovis.sr.data import downsample, upsample_bicubic
from psychovis.sr.model import SCALES, SRResNet, count_parameters


def _lr(height: int = 12, width: int = 10, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_output_shape_and_bicubic_start(scale: int) -> None:
    torch.manual_seed(0)
    model = SRResNet(scale=scale, channels=8, residual_blocks=2)
    lr = _lr()
    output = model(lr)
    assert output.shape == (2, 3, 12 * scale, 10 * scale)
    torch.testing.assert_close(output, upsample_bicubic(lr, scale), rtol=0, atol=0)


def test_architecture_follows_edsr() -> None:
    model = SRResNet()
    assert model.scale == 4
    assert not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())
    assert sum(isinstance(module, nn.PixelShuffle) for module in model.modules()) == 2
    assert sum(isinstance(module, nn.PixelShuffle) for module in SRResNet(scale=3).modules()) == 1
    assert sum(isinstance(module, nn.PixelShuffle) for module in SRResNet(scale=8).modules()) == 3
    # head 3->32, 4 blocks of two 32->32, body 32->32, 2 upsampler 32->128, tail 32->3
    expected = (3 * 9 * 32 + 32) + 9 * (32 * 9 * 32 + 32) + 2 * (32 * 9 * 128 + 128) + (32 * 9 * 3 + 3)
    assert count_parameters(model) == expected
    assert count_parameters(SRResNet(channels=64, residual_blocks=16)) > count_parameters(model)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = SRResNet(scale=2, channels=8, residual_blocks=2)
    lr, hr = _lr(batch=1), torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    # the zero tail blocks gradients to earlier layers only until its first update
    nn.functional.l1_loss(model(lr), hr).backward()
    assert model.tail.weight.grad is not None and model.tail.weight.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    nn.functional.l1_loss(model(lr), hr).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.slow
def test_short_training_beats_bicubic() -> None:
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    hr = torch.nn.functional.interpolate(hr, size=(32, 32), mode="bilinear", align_corners=False)
    hr = (hr + 0.15 * (torch.arange(32) % 2).float()).clamp(0, 1)  # fine stripes bicubic cannot restore
    lr = downsample(hr, 4)
    model = SRResNet(scale=4, channels=16, residual_blocks=2)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(nn.functional.l1_loss(upsample_bicubic(lr, 4), hr).item())
    assert losses[-1] < 0.5 * losses[0]


def test_super_resolve_clamps_restores_mode_and_takes_single_images() -> None:
    torch.manual_seed(0)
    model = SRResNet(scale=2, channels=8, residual_blocks=1)
    with torch.no_grad():
        model.tail.bias.fill_(2.0)  # push outputs far above 1
    model.train()
    lr = _lr(batch=1)
    batch = model.super_resolve(lr)
    assert batch.shape == (1, 3, 24, 20) and not batch.requires_grad
    assert batch.max() == 1.0 and batch.min() >= 0.0
    assert model.training
    single = model.super_resolve(lr[0])
    assert single.shape == (3, 24, 20)
    torch.testing.assert_close(single, batch[0])
    assert model(lr).max() > 1.0  # forward itself does not clamp
    big = model.eval().super_resolve(torch.rand(1, 3, 96, 128))
    assert big.shape == (1, 3, 192, 256) and not model.training


@pytest.mark.parametrize("scale", [1, 5, 6, 16, 0, -2, 4.0, True])
def test_unsupported_scale(scale: object) -> None:
    with pytest.raises(ValueError, match=r"scale must be one of \[2, 3, 4, 8\]"):
        SRResNet(scale=scale)  # type: ignore[arg-type]
    assert SCALES == (2, 3, 4, 8)


def test_bad_configuration_and_input() -> None:
    with pytest.raises(ValueError, match="channels"):
        SRResNet(channels=0)
    with pytest.raises(ValueError, match="residual_blocks"):
        SRResNet(residual_blocks=-1)
    model = SRResNet(scale=2, channels=4, residual_blocks=1)
    for bad in (torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 4, 8, 8), torch.rand(1, 3, 0, 8)):
        with pytest.raises(ValueError, match=r"\(N, 3, h, w\)"):
            model(bad)
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, h, w\)"):
        model.super_resolve(torch.rand(2, 8, 8))


def test_icnr_starts_without_a_sub_pixel_pattern() -> None:
    torch.manual_seed(0)
    model = SRResNet(scale=4, channels=8, residual_blocks=1, upsampler="icnr")
    # The four sub-pixels PixelShuffle interleaves start equal: each 2x2 block of a x2 stage is constant.
    first = model.upsampler[:2](torch.rand(1, 8, 6, 6))
    assert torch.allclose(first[..., 0::2, 0::2], first[..., 1::2, 1::2])
    assert model.upsampler(torch.rand(1, 8, 6, 6)).shape == (1, 8, 24, 24)


def test_resize_conv_has_no_sub_pixel_convolution() -> None:
    model = SRResNet(scale=4, channels=8, residual_blocks=1, upsampler="resize_conv")
    kinds = [type(module).__name__ for module in model.upsampler]
    assert kinds == ["Upsample", "Conv2d", "Upsample", "Conv2d"]
    assert model(torch.rand(1, 3, 6, 6)).shape == (1, 3, 24, 24)


def test_default_sub_pixel_init_has_a_pattern_and_bad_upsampler_is_refused() -> None:
    torch.manual_seed(0)
    first = SRResNet(scale=4, channels=8, residual_blocks=1).upsampler[:2](torch.rand(1, 8, 6, 6))
    assert not torch.allclose(first[..., 0::2, 0::2], first[..., 1::2, 1::2])
    with pytest.raises(ValueError, match="upsampler must be one of"):
        SRResNet(upsampler="deconv")
