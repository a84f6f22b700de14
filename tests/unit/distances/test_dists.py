"""Tests of psychovis.distances.dists: DISTS on our offline VGG-16 against the DISTS_pytorch package."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BAD_IMAGE_PAIRS
from scipy import ndimage
from skimage import data

from psychovis.backbones import build_features
from psychovis.distances.dists import (
    DISTS,
    DISTS_CHANNELS,
    DISTS_WEIGHTS_SHA256,
    L2Pooling,
    dists_weights_path,
    load_dists_weights,
)
from psychovis.errors import WeightsError

SIZE = 64


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def crops() -> list[np.ndarray]:
    """Two real RGB crops: the astronaut's face and the coffee cup."""
    astronaut = data.astronaut()[40 : 40 + SIZE, 180 : 180 + SIZE] / 255.0
    coffee = data.coffee()[100 : 100 + SIZE, 200 : 200 + SIZE] / 255.0
    return [astronaut, coffee]


def distorted_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Each crop against blurred, noised and shifted versions of itself (6 pairs)."""
    rng = np.random.default_rng(3)
    predictions, targets = [], []
    for crop in crops():
        for distorted in (
            ndimage.gaussian_filter(crop, sigma=(1.5, 1.5, 0)),
            np.clip(crop + rng.normal(0, 0.05, crop.shape), 0, 1),
            np.roll(crop, 2, axis=1),
        ):
            predictions.append(distorted)
            targets.append(crop)
    return to_batch(predictions), to_batch(targets)


@pytest.fixture(scope="module")
def metric() -> DISTS:
    return DISTS()


@pytest.fixture(scope="module")
def reference():
    """The package's own DISTS, with torchvision's VGG-16 replaced by one holding our offline conv weights.

    ``DISTS_pytorch.DISTS_pt.DISTS.__init__`` calls ``models.vgg16(pretrained=True)``, which would
    download; it only keeps ``.features``, so the stand-in builds the rest on the meta device.
    """
    package = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    features = build_features("vgg16").state_dict()
    original = package.models.vgg16

    def offline_vgg16(*args: object, **kwargs: object) -> torch.nn.Module:
        with torch.device("meta"):
            network = original(weights=None)
        network.features.load_state_dict(features, strict=True, assign=True)
        return network

    installed = (Path(sys.prefix) / "weights.pt").is_file()  # where the package reads alpha and beta
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(package.models, "vgg16", offline_vgg16)
        model = package.DISTS(load_weights=installed)
    if not installed:
        alpha, beta = load_dists_weights()
        model.alpha.data, model.beta.data = alpha, beta
    return model.eval()


@pytest.mark.slow
def test_dists_matches_the_package(metric: DISTS, reference) -> None:
    predictions, targets = distorted_pairs()
    with torch.no_grad():
        ours = metric(predictions, targets)
        theirs = reference(predictions, targets).reshape(-1)
    assert ours.shape == (predictions.shape[0],)
    assert bool((ours > 0.01).all())
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_l2_pooling_matches_the_package() -> None:
    package = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    features = torch.rand(2, 8, 15, 16)
    ours = L2Pooling(8)(features)
    assert ours.shape == (2, 8, 8, 8)  # ceil(side / 2)
    torch.testing.assert_close(ours, package.L2pooling(channels=8)(features), atol=0, rtol=0)


def test_dists_uses_the_offline_vgg16_with_l2_pooling(metric: DISTS) -> None:
    ours = metric.body.state_dict()
    for key, value in build_features("vgg16").state_dict().items():
        index = int(key.split(".")[0])
        if index <= 29:
            torch.testing.assert_close(ours[key], value, atol=0, rtol=0)
    assert [index for index, module in enumerate(metric.body) if isinstance(module, L2Pooling)] == [4, 9, 16, 23]
    assert metric.alpha.shape == metric.beta.shape == (1, sum(DISTS_CHANNELS))
    assert float(metric.alpha.sum() + metric.beta.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_dists_zero_for_identical_and_grows_with_distortion(metric: DISTS) -> None:
    image = crops()[0]
    target = to_batch([image])
    blurred = to_batch([ndimage.gaussian_filter(image, sigma=(s, s, 0)) for s in (0.5, 1.0, 2.0, 4.0)])
    with torch.no_grad():
        assert abs(float(metric(target, target.clone())[0])) < 1e-6
        distances = metric(blurred, target.expand(4, -1, -1, -1)).tolist()
        swapped = metric(target.expand(4, -1, -1, -1), blurred).tolist()
    assert distances == sorted(distances)
    assert distances[0] > 1e-3
    np.testing.assert_allclose(distances, swapped, rtol=1e-5)  # symmetric


@pytest.mark.slow
def test_dists_gradients_reach_inputs_not_backbone(metric: DISTS) -> None:
    target = torch.rand(1, 3, 32, 32)
    prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
    metric(prediction, target).sum().backward()
    assert prediction.grad is not None and float(prediction.grad.abs().sum()) > 0
    assert all(not parameter.requires_grad for parameter in metric.parameters())
    metric.train()
    assert not metric.training and not metric.body.training


@pytest.mark.parametrize(("x", "y", "message"), BAD_IMAGE_PAIRS)
def test_dists_rejects_bad_input(metric: DISTS, x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metric(x, y)


def test_dists_weights_are_found_and_checked(tmp_path: Path) -> None:
    import hashlib

    path = dists_weights_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DISTS_WEIGHTS_SHA256
    alpha, beta = load_dists_weights(path)
    assert alpha.shape == beta.shape == (1, sum(DISTS_CHANNELS), 1, 1)

    tampered = tmp_path / "weights.pt"
    content = bytearray(path.read_bytes())
    content[-1] ^= 1
    tampered.write_bytes(bytes(content))
    with pytest.raises(WeightsError, match=r"sha256 .*pip install --force-reinstall dists-pytorch==0\.1"):
        DISTS(tampered)
    with pytest.raises(WeightsError, match=r"pip install dists-pytorch==0\.1"):
        load_dists_weights(tmp_path / "missing.pt")


def test_dists_weights_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import psychovis.distances.dists as dists_module

    monkeypatch.setattr(dists_module, "_dists_weight_candidates", lambda: [tmp_path / "weights.pt"])
    with pytest.raises(WeightsError, match=r"not found; install it with `pip install dists-pytorch==0\.1`"):
        DISTS()
