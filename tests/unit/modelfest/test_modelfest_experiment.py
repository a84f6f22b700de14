"""The experiment's exports: the weights fitted to people as the ``human_fitted`` scheme, and the headline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from psychovis import weights_file
from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import InvalidWeightsError, ParamsError
from psychovis.feature_weights import FeatureWeights, shaping_params
from psychovis.modelfest import experiment

PARAMS = {
    "base": {"backbone": "vgg16"},
    "modelfest": {"layers": ["relu3_2"], "fit_families": ["gabor_csf"], "weights_ridge": 1.0, "px_per_degree": 120,
                  "contrast_min": 0.001, "contrast_max": 1.0, "contrasts": 4},
}  # fmt: skip


def _result(weights: np.ndarray | None) -> experiment.Result:
    empty = pd.DataFrame()
    rows, table = [], pd.DataFrame({"layer": [], "channel": [], "weight": []})
    if weights is not None:
        table = pd.DataFrame({"layer": "relu3_2", "channel": np.arange(weights.size), "weight": weights})
        rows = [{"layer": "relu3_2", "ridge": 1.0, "reference_contrast": 0.01, "held_out_rms_db": 12.9,
                 "spearman_vfss": -0.18, "null_vfss_p": 0.7, "null_vfss_low": -0.25}]  # fmt: skip
    ladder = pd.DataFrame(
        {"observer": ["human", "constant", "vgg"], "kind": ["human", "classical", "deep"], "rms_db": [2.4, 8.6, 12.2]}
    )
    summary = {"train_families": ["gabor_csf"], "px_per_degree": 120.0, "fitted_weights": rows,
               "human_band_db": {"pooled": 2.4}, "noise_floor_of_mean_db": 0.6}  # fmt: skip
    return experiment.Result(ladder, empty, empty, empty, pd.DataFrame(), summary, None, table)


@pytest.fixture(scope="module")
def fitted() -> np.ndarray:
    weights = np.exp(np.random.default_rng(0).normal(0, 1, 256))
    return weights / weights.mean()


def test_fitted_weights_round_trip_through_the_loss(tmp_path: Path, fitted: np.ndarray, astronaut) -> None:
    metadata = shaping_params("human_fitted", PARAMS)
    exported = experiment.fitted_feature_weights(_result(fitted), "vgg16", metadata)
    path = exported.save(tmp_path / "human_fitted.safetensors")
    loaded = FeatureWeights.load(path, scheme="human_fitted")
    assert loaded.scheme == "human_fitted" and loaded.layers == ["relu3_2"]
    assert "ModelFest" in loaded.metadata["fitted_to"]
    fit = json.loads(loaded.metadata["fit"])
    assert fit["train_families"] == ["gabor_csf"] and fit["px_per_degree"] == 120.0
    assert fit["layers"] == {"relu3_2": {"ridge": 1.0, "reference_contrast": 0.01}}
    assert json.loads(loaded.metadata["params"])["modelfest.weights_ridge"] == 1.0
    criterion = PsychovisualLoss(path)
    assert criterion.scheme == "human_fitted" and criterion.provenance["fitted_to"] == loaded.metadata["fitted_to"]
    torch.testing.assert_close(criterion.layer_weights("relu3_2"), torch.from_numpy(fitted).float(), rtol=1e-5, atol=0)
    distorted = (astronaut + 0.05 * torch.randn_like(astronaut, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    in_memory = PsychovisualLoss(exported)(distorted, astronaut)
    torch.testing.assert_close(criterion(distorted, astronaut), in_memory)
    assert not torch.isclose(in_memory, PsychovisualLoss()(distorted, astronaut))  # the weights count


def test_the_header_check_refuses_it_under_another_scheme(tmp_path: Path, fitted: np.ndarray) -> None:
    path = experiment.fitted_feature_weights(_result(fitted), "vgg16").save(tmp_path / "vfss.safetensors")
    assert weights_file.check_file(path, scheme="human_fitted").scheme == "human_fitted"
    for scheme in ("vfss", "topk"):
        with pytest.raises(InvalidWeightsError, match=r"holds 'human_fitted' weights, not the '" + scheme):
            weights_file.check_file(path, scheme=scheme)
        with pytest.raises(InvalidWeightsError, match="human_fitted"):
            FeatureWeights.load(path, scheme=scheme)


def test_no_fitted_layer_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match=r"modelfest\.distances"):
        experiment.fitted_feature_weights(_result(None), "vgg16")


def test_headline_has_the_premise_test(fitted: np.ndarray) -> None:
    headline = experiment.headline_metrics(_result(fitted))
    assert headline["fitted_weights"] == {"spearman_vfss": -0.18, "null_vfss_p": 0.7}
    assert set(headline["rms_db"]) == {"constant", "vgg"}
    assert "fitted_weights" not in experiment.headline_metrics(_result(None))


def test_the_reference_geometry_is_the_geometry_aware_vgg_observer_s() -> None:
    geometry = pd.DataFrame(
        [
            {"observer": "geometry_aware_vfss", "reference_px_per_degree": 60.0, "train_rms_db": 5.0,
             "held_out_rms_db": 9.0},
            {"observer": "geometry_aware_vgg", "reference_px_per_degree": 30.0, "train_rms_db": 4.0,
             "held_out_rms_db": 15.0},
        ]
    )  # fmt: skip
    record = experiment.reference_geometry(geometry, ["gabor_csf"])
    assert record["reference_px_per_degree"] == 30.0 and record["held_out_rms_db"] == 15.0
    assert record["fit_families"] == ["gabor_csf"]
    none = experiment.reference_geometry(pd.DataFrame(), ["gabor_csf"])
    assert none["reference_px_per_degree"] is None
    assert "modelfest.sweep_distances" in none["why"] and "deep_sweep_px_per_degree" in none["why"]
