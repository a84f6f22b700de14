"""PsychovisualLoss: baseline equivalence, zero on identity, monotone, gradients, guards, dtypes, training."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from psychovis import FeatureWeights, PsychovisualLoss, psychovisual_loss
from psychovis.backbones import FeatureExtractor
from psychovis.feature_weights import FORMAT


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


def _escaped(message: str) -> str:
    return message.replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), "(N, 3, H, W)"),
        (torch.rand(3, 32, 32), torch.rand(3, 32, 32), "(N, 3, H, W)"),
        (torch.randint(0, 255, (1, 3, 32, 32)), torch.randint(0, 255, (1, 3, 32, 32)), "floating-point"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 40), "shapes differ"),
        ([[0.0]], torch.rand(1, 3, 32, 32), "torch.Tensor"),
        (torch.rand(0, 3, 32, 32), torch.rand(0, 3, 32, 32), "empty batch"),
        (torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1), "at least 4x4 pixels"),
        (torch.rand(2, 3, 32, 32).index_fill(0, torch.tensor([1]), float("nan")), torch.rand(2, 3, 32, 32), "NaN"),
        (torch.rand(1, 3, 32, 32), torch.full((1, 3, 32, 32), float("inf")), "target contains NaN or infinite"),
        (torch.full((1, 3, 32, 32), -float("inf")), torch.rand(1, 3, 32, 32), "prediction contains NaN or inf"),
    ],
)
def test_bad_inputs_raise_clear_errors(plain: PsychovisualLoss, prediction, target, message: str) -> None:
    with pytest.raises(ValueError, match=_escaped(message)):
        plain(prediction, target)


@pytest.mark.parametrize(
    ("prediction", "target"),
    [
        (torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255),
        (torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1),
        (torch.rand(1, 3, 32, 32) * 1.5 - 0.4, torch.rand(1, 3, 32, 32)),
    ],
)
def test_strict_range_check_raises(prediction, target) -> None:
    strict = PsychovisualLoss(layers=["relu2_2"], check_range="strict")
    with pytest.raises(ValueError, match=r"data_range is \(0, 1\).*check_range=False"):
        strict(prediction, target)


MIXUPS = [
    pytest.param(torch.rand(2, 3, 32, 32) * 255, torch.rand(2, 3, 32, 32), (0, 1), "prediction", id="pred-0-255"),
    pytest.param(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 255, (0, 1), "target", id="target-0-255"),
    pytest.param(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1, (0, 1), "target", id="target-signed"),
    pytest.param(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), (0, 255), "1/100", id="unit-for-0-255"),
    pytest.param(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32), (0, 1), "tanh", id="pred-signed"),
    pytest.param(torch.rand(2, 3, 32, 32) * 510 - 255, torch.rand(2, 3, 32, 32) * 255, 255.0, "tanh", id="signed-255"),
]


@pytest.mark.parametrize(("prediction", "target", "data_range", "names"), MIXUPS)
def test_clear_mixups_warn_once_per_module(prediction, target, data_range, names: str) -> None:
    loss = PsychovisualLoss(layers=["relu2_2"], data_range=data_range)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = [loss(prediction, target) for _ in range(3)]
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert names in message and "check_range=False" in message and "clamp" in message
    assert all(torch.isfinite(value) for value in values)
    # A second module warns again (once per instance, not once per process).
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        PsychovisualLoss(layers=["relu2_2"], data_range=data_range)(prediction, target)
    assert len(again) == 1


@pytest.mark.parametrize(
    ("low", "high"),
    [(-0.26, 0.52), (-0.5, 1.5), (-3.0, 4.0), (0.49, 0.51)],  # untrained outputs; a near-constant one
)
def test_ordinary_network_outputs_neither_raise_nor_warn(low: float, high: float, astronaut: torch.Tensor) -> None:
    loss = PsychovisualLoss(layers=["relu2_2"])
    prediction = low + (high - low) * torch.rand_like(astronaut)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="PsychovisualLoss")
        assert torch.isfinite(loss(prediction, astronaut))


def test_a_tanh_output_against_unit_targets_warns_with_the_fix(astronaut: torch.Tensor) -> None:
    """Issue 22: a network ending in tanh ([-1, 1]) trained against [0, 1] targets was silent."""
    loss = PsychovisualLoss(layers=["relu2_2"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss(astronaut * 2 - 1, astronaut)  # the photo as a tanh output would give it
    assert len(caught) == 1 and caught[0].category is UserWarning
    message = str(caught[0].message)
    assert "tanh" in message and "(x + 1) / 2" in message and "data_range is (0, 1)" in message
    # The same output mapped to [0, 1] is silent.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="PsychovisualLoss")
        PsychovisualLoss(layers=["relu2_2"])((astronaut * 2 - 1 + 1) / 2, astronaut)


def _mixed_up(loss: nn.Module) -> list[warnings.WarningMessage]:
    """Call ``loss`` the way a training loop does, on 0-255 predictions; return the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss(torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32))  # the user's line
    return caught


def test_the_range_warning_points_at_the_callers_line() -> None:
    """Issue 22: through ``nn.Module.__call__`` the warning pointed into torch's module.py."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.endswith("# the user's line"))
    for loss in (
        PsychovisualLoss(layers=["relu2_2"]),
        functools.partial(psychovisual_loss, layers=["relu2_2"]),  # no frame of its own
    ):
        caught = _mixed_up(loss)
        assert len(caught) == 1, [str(w.message) for w in caught]
        assert (caught[0].filename, caught[0].lineno) == (__file__, line), (caught[0].filename, caught[0].lineno)


def test_a_float_data_range_is_the_width_as_in_piq(plain: PsychovisualLoss, astronaut: torch.Tensor) -> None:
    noisy = (astronaut + 0.05).clamp(0, 1)
    expected = plain(noisy, astronaut)
    for data_range in (255.0, 255):
        module = PsychovisualLoss(layers=["relu2_2", "relu3_2"], data_range=data_range)
        assert module.data_range == (0.0, 255.0)
        torch.testing.assert_close(module(noisy * 255, astronaut * 255), expected, rtol=1e-4, atol=1e-5)
        functional = psychovisual_loss(
            noisy * 255, astronaut * 255, layers=["relu2_2", "relu3_2"], data_range=data_range
        )
        torch.testing.assert_close(functional, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        PsychovisualLoss(layers=["relu2_2", "relu3_2"], data_range=1.0)(noisy, astronaut), expected
    )


def test_check_range_false_disables_the_value_checks(astronaut: torch.Tensor) -> None:
    loss = PsychovisualLoss(layers=["relu2_2"], check_range=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="PsychovisualLoss")
        assert torch.isfinite(loss(astronaut * 255, astronaut))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_follow_the_input(plain: PsychovisualLoss, astronaut: torch.Tensor, dtype) -> None:
    noisy = (astronaut + 0.05 * torch.randn_like(astronaut)).clamp(0, 1)
    reference = float(plain(noisy, astronaut))
    prediction = noisy.to(dtype).requires_grad_(True)
    value = plain(prediction, astronaut.to(dtype))
    assert value.dtype == dtype
    value.backward()
    assert prediction.grad is not None and prediction.grad.dtype == dtype
    assert bool(torch.isfinite(prediction.grad).all())
    tolerance = 1e-6 if dtype == torch.float64 else 2e-2  # inputs rounded to 8/11-bit mantissas
    assert float(value.detach()) == pytest.approx(reference, rel=tolerance)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reduction": "avg"}, "reduction"),
        ({"data_range": (1, 0)}, "high > low"),
        ({"data_range": (0, float("inf"))}, "finite"),
        ({"data_range": (float("nan"), 1)}, "finite"),
        ({"data_range": "0-255"}, "pair"),  # a single number is the width (piq style)
        ({"check_range": "sometimes"}, "check_range"),
        ({"layers": ["relu9_9"]}, "relu9_9"),
    ],
)
def test_bad_construction_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PsychovisualLoss(**kwargs)


def test_layers_missing_from_the_weights_raise() -> None:
    with pytest.raises(ValueError, match="no weights for layers"):
        PsychovisualLoss(_weights(), layers=["relu1_1"])


@pytest.mark.parametrize("scale", [1e-45, 1e-30, 3e38, 1.0])
def test_uniform_weights_at_any_scale_give_the_plain_loss(scale: float, astronaut: torch.Tensor) -> None:
    # float32 sums of these would vanish (1e-45: denormal) or overflow (3e38 x 256): the rescaling is float64.
    weights = FeatureWeights("vgg16", "vfss", {"relu3_2": torch.full((256,), scale, dtype=torch.float32)})
    noisy = (astronaut + 0.05).clamp(0, 1)
    expected = PsychovisualLoss(layers=["relu3_2"])(noisy, astronaut)
    torch.testing.assert_close(PsychovisualLoss(weights)(noisy, astronaut), expected)


def _raw_weights_file(path, backbone: str, layer: str, tensor: torch.Tensor):
    """A weights file written without FeatureWeights' checks (what a damaged or foreign export looks like)."""
    metadata = {"format": FORMAT, "backbone": backbone, "scheme": "vfss", "layers": json.dumps([layer])}
    save_file({layer: tensor}, str(path), metadata={"psychovis": json.dumps(metadata)})
    return path


@pytest.mark.parametrize(
    ("backbone", "layer", "tensor", "message"),
    [
        ("vgg16", "relu3_2", torch.rand(100), "has 100 of 256 maps of relu3_2"),
        ("vgg16", "relu3_2", torch.rand(300), "has 300 of 256 maps of relu3_2"),
        ("vgg16", "relu3_2", torch.rand(256).index_fill(0, torch.tensor([3]), float("nan")), "finite"),
        ("vgg16", "relu3_2", torch.rand(256).index_fill(0, torch.tensor([3]), float("inf")), "finite"),
        ("vgg16", "relu3_2", torch.rand(256) - 0.5, "non-negative"),
        ("vgg16", "relu3_2", torch.zeros(256), "all zero"),
    ],
)
def test_bad_weights_files_name_the_file(tmp_path, backbone, layer, tensor, message: str) -> None:
    path = _raw_weights_file(tmp_path / "vfss.safetensors", backbone, layer, tensor)
    with pytest.raises(ValueError, match=_escaped(message)) as info:
        PsychovisualLoss(path)
    assert f"weights file {path}" in str(info.value)
    assert "\n" not in str(info.value)


def test_weights_for_another_backbone_say_so(tmp_path) -> None:
    path = _raw_weights_file(tmp_path / "alex.safetensors", "alexnet", "relu3", torch.rand(384))
    with pytest.raises(ValueError, match=f"weights file {path} was made for alexnet, the loss uses vgg16"):
        PsychovisualLoss(path, backbone="vgg16")
    assert PsychovisualLoss(path).extractor.spec.name == "alexnet"  # without a backbone, the file's is used


def test_functional_cache_follows_the_file_content(tmp_path, astronaut: torch.Tensor) -> None:
    path = tmp_path / "w.safetensors"
    noisy = (astronaut + 0.05 * torch.randn_like(astronaut)).clamp(0, 1)
    _weights(1).save(path)
    first = psychovisual_loss(noisy, astronaut, path)
    stat = path.stat()
    _weights(2).save(path)  # same size; restore the mtime too, so only the content differs
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second = psychovisual_loss(noisy, astronaut, path)
    torch.testing.assert_close(second, PsychovisualLoss(_weights(2))(noisy, astronaut))
    assert not torch.isclose(first, second)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_module_follows_the_input_device(astronaut: torch.Tensor) -> None:
    loss = PsychovisualLoss(layers=["relu2_2"])
    noisy = (astronaut + 0.05).clamp(0, 1)
    expected = loss(noisy, astronaut)
    on_gpu = loss(noisy.cuda().half(), astronaut.cuda().half())  # like piq: the module moves to its inputs
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float16
    assert loss.layer_weights("relu2_2").device.type == "cuda"
    assert float(on_gpu) == pytest.approx(float(expected), rel=2e-2)
    with pytest.raises(ValueError, match="move both"):
        loss(noisy.cuda(), astronaut)


@pytest.mark.parametrize(("learning_rate", "steps"), [(1e-3, 50), (1e-2, 10)])  # 1e-2 used to fail at step 1
@pytest.mark.slow
def test_plain_conv_net_trains_with_adam_and_the_loss(
    learning_rate: float, steps: int, astronaut: torch.Tensor
) -> None:
    """Issue 15: L1 + PsychovisualLoss in an ordinary loop (untrained outputs overshoot [0, 1])."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()]
    network = nn.Sequential(*layers, nn.Conv2d(16, 3, 3, padding=1))
    criterion = PsychovisualLoss.pretrained("vfss")
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    target = astronaut[:, :, :32, :32]
    degraded = F.interpolate(F.avg_pool2d(target, 2), scale_factor=2, mode="bilinear")
    losses = []
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="PsychovisualLoss")  # an ordinary loop deserves no warning
        for _ in range(steps):
            output = network(degraded)
            loss = F.l1_loss(output, target) + 0.1 * criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < losses[0]
