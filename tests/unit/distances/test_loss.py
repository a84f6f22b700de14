"""PsychovisualLoss: baseline equivalence, zero on identity, monotone, gradients, validation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from psychovis import FeatureWeights, PsychovisualLoss, psychovisual_loss
from psychovis.backbones import FeatureExtractor


@pytest.fixture(scope="module")
def plain() -> PsychovisualLoss:
    return PsychovisualLoss(layers=["relu2_2", "relu3_2"])


def _weights(seed: int = 0) -> FeatureWeights:
    generator = torch.Generator().manual_seed(seed)
    return FeatureWeights(
        "vgg16",
        "vfss",
        {"relu2_2": torch.rand(128, generator=generator), "relu3_2": torch.rand(256, generator=generator)},
    )


def test_uniform_weights_equal_the_plain_vgg_feature_mse(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    noisy = (astronaut + 0.05 * torch.randn_like(astronaut)).clamp(0, 1)
    extractor = FeatureExtractor("vgg16", ["relu2_2", "relu3_2"])
    a, b = extractor(noisy), extractor(astronaut)
    expected = sum(F.mse_loss(a[layer], b[layer]) for layer in ("relu2_2", "relu3_2"))
    torch.testing.assert_close(plain(noisy, astronaut), expected, rtol=1e-5, atol=1e-6)


def test_weighted_loss_uses_the_weights(astronaut: torch.Tensor) -> None:
    weights = _weights()
    loss = PsychovisualLoss(weights)
    noisy = (astronaut + 0.05 * torch.randn_like(astronaut)).clamp(0, 1)
    extractor = FeatureExtractor("vgg16", ["relu2_2", "relu3_2"])
    a, b = extractor(noisy), extractor(astronaut)
    expected = 0.0
    for layer, w in weights.weights.items():
        w = w * w.numel() / w.sum()  # rescaled to mean 1
        expected = expected + ((a[layer] - b[layer]).pow(2).mean(dim=(2, 3)) * w).mean()
    torch.testing.assert_close(loss(noisy, astronaut), expected, rtol=1e-5, atol=1e-6)
    assert not torch.isclose(loss(noisy, astronaut), PsychovisualLoss(layers=["relu2_2", "relu3_2"])(noisy, astronaut))


def test_zero_for_identical_inputs_and_grows_with_distortion(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    torch.manual_seed(0)
    noise = torch.randn_like(astronaut)
    values = [float(plain((astronaut + s * noise).clamp(0, 1), astronaut)) for s in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert values[0] == 0.0
    assert all(later > earlier for earlier, later in itertools.pairwise(values))


def test_gradient_reaches_the_input_only(astronaut: torch.Tensor) -> None:
    loss = PsychovisualLoss(_weights())
    prediction = (astronaut + 0.05).clamp(0, 1).requires_grad_(True)
    loss(prediction, astronaut).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in loss.parameters())


def test_reduction_and_data_range(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    batch = torch.cat([astronaut, astronaut.flip(-1)])
    noisy = (batch + 0.05).clamp(0, 1)
    per_image = PsychovisualLoss(layers=["relu2_2", "relu3_2"], reduction="none")(noisy, batch)
    assert per_image.shape == (2,)
    torch.testing.assert_close(plain(noisy, batch), per_image.mean())
    summed = PsychovisualLoss(layers=["relu2_2", "relu3_2"], reduction="sum")(noisy, batch)
    torch.testing.assert_close(summed, per_image.sum())
    # The same images given in [-1, 1] with data_range=(-1, 1) give the same loss.
    signed = PsychovisualLoss(layers=["relu2_2", "relu3_2"], data_range=(-1, 1))(noisy * 2 - 1, batch * 2 - 1)
    torch.testing.assert_close(signed, plain(noisy, batch), rtol=1e-4, atol=1e-5)


def test_functional_form_matches_module(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    noisy = (astronaut + 0.05).clamp(0, 1)
    torch.testing.assert_close(
        psychovisual_loss(noisy, astronaut, layers=["relu2_2", "relu3_2"]), plain(noisy, astronaut)
    )


def test_weights_round_trip_through_a_file(tmp_path, astronaut: torch.Tensor) -> None:
    weights = _weights(1)
    path = weights.save(tmp_path / "w.safetensors")
    noisy = (astronaut + 0.05).clamp(0, 1)
    torch.testing.assert_close(PsychovisualLoss(path)(noisy, astronaut), PsychovisualLoss(weights)(noisy, astronaut))
    only_one = PsychovisualLoss(path, layers=["relu3_2"])
    assert only_one.layers == ["relu3_2"]
    assert len(only_one.extractor.body) == 14  # truncated right after relu3_2 (features[13])


def test_autocast_stays_close_to_float32(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    noisy = (astronaut + 0.05).clamp(0, 1)
    reference = plain(noisy, astronaut)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = plain(noisy, astronaut)
    assert mixed.dtype == torch.float32
    assert abs(float(mixed) - float(reference)) / float(reference) < 0.1


@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), "(N, 3, H, W)"),
        (torch.rand(3, 32, 32), torch.rand(3, 32, 32), "(N, 3, H, W)"),
        (torch.randint(0, 255, (1, 3, 32, 32)), torch.randint(0, 255, (1, 3, 32, 32)), "floating-point"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 40), "shapes differ"),
        (torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255, "data_range"),
        (torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1, "data_range"),
        ([[0.0]], torch.rand(1, 3, 32, 32), "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(plain: PsychovisualLoss, prediction, target, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plain(prediction, target)


def test_bad_construction_raises() -> None:
    with pytest.raises(ValueError, match="reduction"):
        PsychovisualLoss(reduction="avg")
    with pytest.raises(ValueError, match="data_range"):
        PsychovisualLoss(data_range=(1, 0))
    with pytest.raises(ValueError, match="relu9_9"):
        PsychovisualLoss(layers=["relu9_9"])
    with pytest.raises(ValueError, match="no weights"):
        PsychovisualLoss(_weights(), layers=["relu1_1"])
