"""Refreshing the shipped weights from a pipeline run: provenance added, nothing written from a bad source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import psychovis
from psychovis.distances import pretrained
from psychovis.feature_weights import FeatureWeights
from psychovis.pipeline import shipped_weights


def test_refresh_copies_a_run_with_provenance(tmp_path: Path) -> None:
    source = tmp_path / "data" / "weights"
    source.mkdir(parents=True)
    for name in pretrained.SHIPPED_SCHEMES:
        shipped = FeatureWeights.load(pretrained.pretrained_path(name))
        metadata = {"params_hash": "0123456789abcdef", "csf": "mannos_sakrison_code"}  # an older export
        FeatureWeights(shipped.backbone, name, shipped.weights, metadata).save(source / f"{name}.safetensors")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  weights:\n    params:\n      params.yaml:\n"
        "        base: {backbone: vgg16}\n        vfss: {csf: mannos_sakrison_code}\n"
        "        weights: {layers: [relu3_2], top_k: 64, lpips_layers: [relu3_3]}\n"
    )
    folder = tmp_path / "package"
    folder.mkdir()
    written = shipped_weights.refresh(source, folder)
    assert sorted(path.name for path in written) == sorted(f"{name}.safetensors" for name in pretrained.SHIPPED_SCHEMES)
    topk = FeatureWeights.load(folder / "topk.safetensors")
    assert json.loads(topk.metadata["params"])["weights.top_k"] == 64  # recovered from dvc.lock
    assert "params_hash" not in topk.metadata
    assert "csf" not in FeatureWeights.load(folder / "lpips_weighted.safetensors").metadata


def test_refresh_writes_nothing_when_a_source_is_bad(tmp_path: Path) -> None:
    source = tmp_path / "weights"
    source.mkdir()
    (source / "vfss.safetensors").write_bytes(pretrained.pretrained_path("vfss").read_bytes())
    folder = tmp_path / "package"
    folder.mkdir()
    with pytest.raises(psychovis.errors.WeightsError, match=r"topk\.safetensors.*missing"):
        shipped_weights.refresh(source, folder)
    assert list(folder.iterdir()) == []
