"""Tests of psychovis.feature_weights: the exported per-map weights artifact."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from psychovis import feature_weights
from psychovis.errors import ParamsError, WeightsError
from psychovis.feature_weights import FORMAT, FeatureWeights


@pytest.fixture
def weights():
    generator = torch.Generator().manual_seed(0)
    return FeatureWeights(
        "vgg16",
        "vfss",
        {
            "relu3_2": torch.rand(256, generator=generator, dtype=torch.float64),
            "relu1_2": torch.rand(64, generator=generator),
        },
        {"params_hash": "0123456789abcdef", "csf": "mannos_sakrison_code"},
    )


def test_round_trip_with_metadata(tmp_path, weights):
    path = weights.save(tmp_path / "out" / "vfss.safetensors")
    assert path.is_file()
    loaded = FeatureWeights.load(path)
    assert loaded.backbone == "vgg16"
    assert loaded.scheme == "vfss"
    assert loaded.layers == ["relu3_2", "relu1_2"]  # the order given, not sorted
    assert loaded.metadata == {"params_hash": "0123456789abcdef", "csf": "mannos_sakrison_code"}
    for layer, tensor in weights.weights.items():
        assert loaded.weights[layer].dtype == torch.float32
        torch.testing.assert_close(loaded.weights[layer], tensor.float(), rtol=0, atol=0)


def test_saved_metadata_is_self_describing(tmp_path, weights):
    from safetensors import safe_open

    path = weights.save(tmp_path / "vfss.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["psychovis"])
    assert metadata["format"] == FORMAT
    assert metadata["backbone"] == "vgg16"
    assert json.loads(metadata["layers"]) == ["relu3_2", "relu1_2"]


def test_uniform():
    uniform = FeatureWeights.uniform("vgg16", ["relu1_2", "relu3_2"], {"relu1_2": 64, "relu3_2": 256, "x": 1})
    assert uniform.scheme == "uniform"
    assert uniform.layers == ["relu1_2", "relu3_2"]
    torch.testing.assert_close(uniform.weights["relu1_2"], torch.full((64,), 1 / 64))
    torch.testing.assert_close(uniform.weights["relu3_2"], torch.full((256,), 1 / 256))
    assert float(uniform.weights["relu3_2"].sum()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("tensor", "match"),
    [
        (torch.tensor([0.5, -0.1, 0.6]), "non-negative"),
        (torch.tensor([0.5, float("nan"), 0.5]), "finite"),
        (torch.tensor([0.5, float("inf"), 0.5]), "finite"),
        (torch.zeros(3), "all zero"),
        (torch.ones(2, 3), "vector"),
    ],
)
def test_invalid_weights_raise(tensor, match):
    with pytest.raises(WeightsError, match=match):
        FeatureWeights("vgg16", "vfss", {"relu3_2": tensor})


def test_unknown_layer_or_backbone_raise():
    with pytest.raises(ParamsError, match="conv3_2"):
        FeatureWeights("vgg16", "vfss", {"conv3_2": torch.ones(3)})
    with pytest.raises(ParamsError, match="resnet"):
        FeatureWeights("resnet", "vfss", {"relu3_2": torch.ones(3)})


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="missing"):
        FeatureWeights.load(tmp_path / "vfss.safetensors")


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"relu3_2": torch.ones(256)}, str(path))
    with pytest.raises(WeightsError, match="not a psychovis"):
        FeatureWeights.load(path)
    save_file({"relu3_2": torch.ones(256)}, str(path), metadata={"psychovis": json.dumps({"format": "something-else"})})
    with pytest.raises(WeightsError, match="not a psychovis"):
        FeatureWeights.load(path)


@pytest.mark.parametrize("data", [b"", b"garbage" * 100, b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}"])
def test_garbage_file(tmp_path, data):
    path = tmp_path / "vfss.safetensors"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        FeatureWeights.load(path)


@pytest.mark.parametrize(
    "metadata",
    [
        {"format": FORMAT, "backbone": "vgg16", "scheme": "vfss"},  # no layers
        {"format": FORMAT, "backbone": "vgg16", "scheme": "vfss", "layers": "not json"},
        {"format": FORMAT, "backbone": "vgg16", "scheme": "vfss", "layers": '["relu1_2"]'},  # tensor absent
        {"format": FORMAT, "scheme": "vfss", "layers": '["relu3_2"]'},  # no backbone
    ],
)
def test_damaged_psychovis_file(tmp_path, metadata):
    path = tmp_path / "vfss.safetensors"
    save_file({"relu3_2": torch.ones(256)}, str(path), metadata={"psychovis": json.dumps(metadata)})
    with pytest.raises(WeightsError, match="damaged"):
        FeatureWeights.load(path)


def test_equal_weights_give_identical_bytes(tmp_path, weights):
    first = weights.save(tmp_path / "a.safetensors").read_bytes()
    assert weights.save(tmp_path / "b.safetensors").read_bytes() == first


def test_save_is_atomic(tmp_path, weights, monkeypatch):
    path = weights.save(tmp_path / "vfss.safetensors")
    before = path.read_bytes()

    def failing_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(feature_weights, "save_file", failing_save)
    with pytest.raises(RuntimeError):
        weights.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vfss.safetensors"]
