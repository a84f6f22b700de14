"""The weights shipped inside psychovis: complete, provenanced, in step with the pipeline, usable from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT

import psychovis
from psychovis import PsychovisualLoss
from psychovis.backbones import backbone_spec
from psychovis.distances import pretrained
from psychovis.errors import ParamsError
from psychovis.feature_weights import SHAPING_KEYS, FeatureWeights

PIPELINE_WEIGHTS = ROOT / "data" / "weights"


@pytest.mark.parametrize("name", pretrained.SHIPPED_SCHEMES)
def test_shipped_files_are_complete_and_provenanced(name: str) -> None:
    weights = FeatureWeights.load(pretrained.pretrained_path(name))  # checks coverage, finiteness, backbone
    spec = backbone_spec(weights.backbone)
    assert weights.backbone == "vgg16" and weights.scheme == name
    for layer, tensor in weights.weights.items():
        assert tensor.numel() == spec.channels[layer]
        assert bool(torch.isfinite(tensor).all()) and float(tensor.min()) >= 0
        assert float(tensor.double().sum()) == pytest.approx(1.0, abs=1e-5)  # L1-normalised, as exported
    for key in ("params", "provenance", "source_md5", "git_commit"):
        assert weights.metadata.get(key), f"{name}: no {key} in the shipped metadata"
    assert "params_hash" not in weights.metadata
    shaping = json.loads(weights.metadata["params"])
    assert set(shaping) == set(SHAPING_KEYS[name])
    assert shaping["base.backbone"] == weights.backbone
    layers_key = "weights.lpips_layers" if name == "lpips_weighted" else "weights.layers"
    assert shaping[layers_key] == weights.layers
    assert pretrained.pretrained_path(name).stat().st_size < 16_000  # a few KB


@pytest.mark.parametrize("name", pretrained.SHIPPED_SCHEMES)
def test_shipped_files_agree_with_the_pipeline_output(name: str) -> None:
    path = PIPELINE_WEIGHTS / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} not built here (run `dvc repro weights`)")
    exported, shipped = FeatureWeights.load(path), FeatureWeights.load(pretrained.pretrained_path(name))
    assert (exported.backbone, exported.layers) == (shipped.backbone, shipped.layers)
    for layer in exported.layers:
        torch.testing.assert_close(shipped.weights[layer], exported.weights[layer], rtol=1e-6, atol=1e-9)


def test_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ParamsError, match=r"vfss.*topk"):
        PsychovisualLoss.pretrained("vgg")


def test_pretrained_loss_carries_its_provenance() -> None:
    loss = PsychovisualLoss.pretrained("topk", layers=["relu3_2"])
    assert loss.scheme == "topk"
    assert loss.provenance["backbone"] == "vgg16"
    assert json.loads(loss.provenance["params"])["weights.top_k"] == int((loss.layer_weights("relu3_2") > 0).sum())


def test_pyproject_ships_the_weights_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["psychovis"]
    assert "pretrained/*.safetensors" in patterns
    assert Path(psychovis.__file__).resolve().parent / "pretrained" == pretrained.FOLDER


@pytest.mark.slow
def test_pretrained_works_from_an_empty_directory(tmp_path: Path) -> None:
    script = (
        "import torch\n"
        "from psychovis import PsychovisualLoss\n"
        "loss = PsychovisualLoss.pretrained('vfss')\n"
        "x = torch.rand(1, 3, 16, 16)\n"
        "print(float(loss(x, x)), loss.provenance['scheme'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(psychovis.__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0.0", "vfss"]
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_refreshing_the_shipped_weights_reruns_no_stage() -> None:
    """The shipped files sit outside every stage's code deps: copying a run's weights in retrains nothing."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    folder = pretrained.FOLDER.relative_to(ROOT).as_posix()
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            dep = dep if isinstance(dep, str) else next(iter(dep))
            assert not (folder + "/").startswith(dep.rstrip("/") + "/"), f"stage {name} depends on {dep}"
