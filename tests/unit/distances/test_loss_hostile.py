"""Hostile inputs to PsychovisualLoss and its weights files (issue 23): one clear error, early."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import save_file

from psychovis import FeatureWeights, PsychovisualLoss
from psychovis.distances.inputs import check_data_range
from psychovis.errors import InvalidWeightsError, ParamsError, WeightsError
from psychovis.feature_weights import FORMAT
from psychovis.pipeline import resources


def _weights(scheme: str = "topk") -> FeatureWeights:
    return FeatureWeights("vgg16", scheme, {"relu2_2": torch.rand(128, generator=torch.Generator().manual_seed(0))})


@pytest.mark.parametrize(
    ("data_range", "expected"),
    [((0, 1e-30), "infinite or lose all precision"), ((0, 1e38), "all 0"), ((1e20, 1e20 + 1e6), "precision")],
)
def test_an_absurd_data_range_is_refused_rather_than_giving_inf_or_zero(data_range, expected):
    with pytest.raises(ParamsError, match=rf"data_range .* has width .*{expected}"):
        check_data_range(data_range)


@pytest.mark.parametrize(("data_range", "expected"), [(255.0, (0.0, 255.0)), (1, (0.0, 1.0)), ((-1, 1), (-1.0, 1.0))])
def test_a_piq_style_float_data_range_is_the_width(data_range, expected):
    assert check_data_range(data_range) == expected


def test_a_huge_input_is_refused_from_an_estimate_before_allocating(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda device="cpu": 8 << 30)
    loss = PsychovisualLoss(layers=["relu2_2"], check_range=False)
    huge = torch.zeros(1, 3, 1, 1).expand(1, 3, 8000, 8000)  # a view: no 768 MB allocated by the test
    started = time.monotonic()
    with pytest.raises(resources.ResourceError, match=r"PsychovisualLoss on 1 image\(s\) of 8000x8000 px needs about"):
        loss(huge, huge)
    assert time.monotonic() - started < 1


def test_an_ordinary_batch_passes_the_estimate():
    loss = PsychovisualLoss(layers=["relu2_2"])
    images = torch.rand(2, 3, 64, 64)
    assert float(loss(images, images)) == 0.0


def test_weights_of_another_scheme_are_refused_for_a_loss(tmp_path):
    path = _weights("topk").save(tmp_path / "vfss.safetensors")  # a topk file where vfss weights belong
    with pytest.raises(InvalidWeightsError, match=r"holds 'topk' weights, not the 'vfss' weights it was loaded for"):
        FeatureWeights.load(path, scheme="vfss")
    assert FeatureWeights.load(path, scheme="topk").scheme == "topk"


def test_a_weights_file_without_layers_is_one_clear_line(tmp_path):
    path = tmp_path / "vfss.safetensors"
    metadata = {"format": FORMAT, "backbone": "vgg16", "scheme": "vfss", "layers": json.dumps([])}
    save_file({"unused": torch.ones(1)}, str(path), metadata={"psychovis": json.dumps(metadata)})
    with pytest.raises(InvalidWeightsError, match=r"holds no layers \(layers: \[\]\)"):
        PsychovisualLoss(path)


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_weights_path_that_is_not_a_file_is_named_as_such(tmp_path, kind):
    path = {"folder": tmp_path, "device": "/dev/zero"}.get(kind)
    if kind == "fifo":
        path = tmp_path / "vfss.safetensors"
        os.mkfifo(path)
    expected = {"folder": "a folder", "fifo": r"a FIFO \(named pipe\)", "device": "a character device"}[kind]
    with pytest.raises(WeightsError, match=rf"is {expected}, not a regular file"):
        FeatureWeights.load(path)
