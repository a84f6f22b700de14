"""Tests of psychovis.pipeline.resources: memory estimates and input sizes checked before allocating."""

import pytest
import torchvision
from torch import nn

from psychovis.backbones import min_input_size
from psychovis.errors import ParamsError
from psychovis.pipeline import resources


class _Extractor:
    """What check_probe reads of a FeatureExtractor: the truncated body and the maps per layer."""

    def __init__(self, body: nn.Sequential, channels: dict[str, int]) -> None:
        self.body, self.channels = body, channels
        self.min_size = min_input_size(body)


@pytest.fixture(scope="module")
def alexnet() -> _Extractor:
    return _Extractor(torchvision.models.alexnet(weights=None).features, {"relu5": 256})


@pytest.fixture(scope="module")
def vgg16() -> _Extractor:
    return _Extractor(torchvision.models.vgg16(weights=None).features[:16], {"relu3_3": 256})


def test_stimuli_estimate_refuses_with_the_numbers():
    resources.check_stimuli(60, 227, available=8 * 10**9)  # the paper preset: 60 x 227^2 px, ~150 MB
    with pytest.raises(resources.ResourceError) as info:
        resources.check_stimuli(29_901, 1024, available=16 * 10**9)
    message = str(info.value)
    assert "29,901 gratings of 1024x1024 px needs about 1505.0 GB" in message
    assert "only 16.0 GB is available" in message and "stimuli.size" in message


@pytest.mark.slow
def test_probe_estimate_names_the_batch_size(vgg16):
    keys = ("stimuli.size", "features.batch_size")
    resources.check_probe(vgg16, 227, 8, 60, keys, available=8 * 10**9)
    with pytest.raises(
        resources.ResourceError, match=r"a batch of 4096 stimuli of 1024x1024 px .*features\.batch_size"
    ):
        resources.check_probe(vgg16, 1024, 4096, 60, keys, available=64 * 10**9)
    with pytest.raises(resources.ResourceError, match=r"response table \(10,000,000 stimuli x 256 maps\)"):
        resources.check_probe(vgg16, 32, 1, 10_000_000, keys, available=64 * 10**9)


@pytest.mark.slow
def test_a_stimulus_too_small_for_the_backbone_says_the_minimum(alexnet):
    minimum = alexnet.min_size
    assert minimum == 63  # conv 11/4, three 3/2 max-pools: the smallest input that leaves 1x1
    resources.activation_plan(alexnet.body, minimum)
    with pytest.raises(ParamsError, match=r"atlas\.size = 32 px is too small .* at least 63"):
        resources.check_probe(alexnet, 32, 8, 10, ("atlas.size", "atlas.batch_size"))


@pytest.mark.slow
def test_activation_plan_matches_torch_shapes(vgg16):
    import torch

    for size in (16, 33, 64):
        peak, side = resources.activation_plan(vgg16.body, size)
        with torch.no_grad():
            out = vgg16.body(torch.zeros(1, 3, size, size))
        assert side == out.shape[-1]
        assert peak >= 3 * size * size + 64 * size * size


def test_available_memory_is_positive():
    assert resources.available_memory() > 0
