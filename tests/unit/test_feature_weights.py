"""Tests of psychovis.feature_weights: the exported per-map weights artifact."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from psychovis import feature_weights
from psychovis.errors import InvalidWeightsError, ParamsError, WeightsError
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


def _with(value: float, index: int = 3, base: torch.Tensor | None = None) -> torch.Tensor:
    tensor = torch.rand(256, generator=torch.Generator().manual_seed(0)) if base is None else base.clone()
    tensor[index] = value
    return tensor


@pytest.mark.parametrize(
    ("tensor", "match"),
    [
        (_with(-0.1), "non-negative"),
        (_with(float("nan")), "finite"),
        (_with(float("inf")), "finite"),
        (torch.zeros(256), "all zero"),
        (torch.ones(2, 128), "vector"),
        (torch.rand(100), "has 100 of 256 maps of relu3_2"),
        (torch.rand(257), "has 257 of 256 maps of relu3_2"),
    ],
)
def test_invalid_weights_raise(tensor, match):
    with pytest.raises(InvalidWeightsError, match=match) as info:
        FeatureWeights("vgg16", "vfss", {"relu3_2": tensor})
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("scale", [1e-45, 3e38])
def test_sums_are_float64(scale):
    # float32: 256 x 1e-45 sums to ~0 only by luck of denormals; 256 x 3e38 overflows to inf.
    weights = FeatureWeights("vgg16", "vfss", {"relu3_2": torch.full((256,), scale)})
    torch.testing.assert_close(weights.normalised("relu3_2"), torch.ones(256))


def test_weights_beyond_float32_are_refused_on_save(tmp_path):
    weights = FeatureWeights("vgg16", "vfss", {"relu3_2": torch.full((256,), 1e300, dtype=torch.float64)})
    with pytest.raises(InvalidWeightsError, match="float32"):
        weights.save(tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_errors_from_a_file_name_it(tmp_path):
    path = tmp_path / "vfss.safetensors"
    metadata = {"format": FORMAT, "backbone": "vgg16", "scheme": "vfss", "layers": json.dumps(["relu3_2"])}
    save_file({"relu3_2": torch.rand(100)}, str(path), metadata={"psychovis": json.dumps(metadata)})
    with pytest.raises(InvalidWeightsError, match=f"^weights file {path} has 100 of 256 maps of relu3_2"):
        FeatureWeights.load(path)
    metadata["backbone"] = "alexnet"
    save_file({"relu3_2": torch.rand(256)}, str(path), metadata={"psychovis": json.dumps(metadata)})
    with pytest.raises(ParamsError, match=r"relu3_2.*alexnet"):  # names a layer alexnet does not have
        FeatureWeights.load(path)


def test_oversize_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "vfss.safetensors"
    with path.open("wb") as handle:
        handle.truncate(3 << 30)  # sparse: 3 GB on stat, nothing on disk
    with pytest.raises(WeightsError, match=r"3,221,225,472 bytes.*a few KB"):
        FeatureWeights.load(path)


def test_shaping_params_record_only_what_shaped_each_scheme(tmp_path):
    params = {
        "base": {"backbone": "vgg16", "seed": 0, "device": "auto"},
        "weights": {"layers": ["relu3_2"], "top_k": 64, "lpips_layers": ["relu3_3"]},
        "vfss": {"csf": "mannos_sakrison_code"},
    }
    other = {**params, "weights": {**params["weights"], "top_k": 32}, "base": {**params["base"], "seed": 5}}
    scores = torch.rand(256, generator=torch.Generator().manual_seed(0))

    def written(scheme: str, values: dict) -> bytes:
        metadata = feature_weights.shaping_params(scheme, values)
        return FeatureWeights("vgg16", scheme, {"relu3_2": scores}, metadata).save(tmp_path / "w").read_bytes()

    assert written("vfss", params) == written("vfss", other)  # -S weights.top_k=32 leaves vfss unchanged
    assert written("topk", params) != written("topk", other)
    assert json.loads(feature_weights.shaping_params("topk", params)["params"]) == {
        "base.backbone": "vgg16",
        "vfss.csf": "mannos_sakrison_code",
        "weights.layers": ["relu3_2"],
        "weights.top_k": 64,
    }
    assert set(feature_weights.SHAPING_KEYS) == {"vfss", "topk", "vfss_normalised", "lpips_weighted", "human_fitted"}


def test_unknown_layer_or_backbone_raise():
    with pytest.raises(ParamsError, match="conv3_2"):
        FeatureWeights("vgg16", "vfss", {"conv3_2": torch.ones(3)})
    with pytest.raises(ParamsError, match="resnet"):
        FeatureWeights("resnet", "vfss", {"relu3_2": torch.ones(3)})


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match=r"missing.*resolved.*pretrained"):
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
