"""Tests of psychovis.probe: spatial-mean responses of feature maps to stimuli."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from psychovis import gratings, probe, tuning
from psychovis.backbones import FeatureExtractor
from psychovis.errors import ParamsError

LAYERS = ["relu1_1", "relu2_1"]


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor("vgg16", LAYERS)


@pytest.fixture(scope="module")
def stimuli():
    table = gratings.stimulus_table(size=32, frequencies_cpd=[1.1, 6.1, 15.1], phases_rad=[0.0, math.pi / 2])
    return table.assign(stimulus_id=table["stimulus_id"] + 100)  # ids need not be row numbers


@pytest.fixture(scope="module")
def probed(extractor, stimuli):
    return probe.map_responses(extractor, stimuli, batch_size=3, progress=False)


def _render_by_hand(table: pd.DataFrame) -> torch.Tensor:
    size = int(table["size"].iloc[0])
    coords = np.arange(size) - (size - 1) / 2
    x, y = np.meshgrid(coords, coords)
    r = np.hypot(x, y)
    images = [
        0.5 + 0.5 * row.contrast * np.sin(2 * np.pi * row.frequency_cpp * r - row.phase_rad)
        for row in table.itertuples()
    ]
    grey = torch.tensor(np.stack(images), dtype=torch.float32)
    return grey[:, None].repeat(1, 3, 1, 1)


def test_map_responses_are_spatial_means(extractor, stimuli, probed):
    responses, columns = probed
    assert responses.shape == (6, 64 + 128)
    assert responses.dtype == np.float32
    assert columns == [("relu1_1", c) for c in range(64)] + [("relu2_1", c) for c in range(128)]
    with torch.no_grad():
        outputs = extractor(_render_by_hand(stimuli))
    expected = torch.cat([outputs[layer].mean(dim=(2, 3)) for layer in LAYERS], dim=1).numpy()
    np.testing.assert_allclose(responses, expected, rtol=1e-4, atol=1e-5)
    # Post-ReLU means are non-negative, and the stimuli do drive the maps.
    assert responses.min() >= 0.0
    assert np.count_nonzero(responses.std(axis=0) > 1e-4) > 100


def test_no_grey_baseline_subtracted(extractor, stimuli):
    grey = stimuli.iloc[[0]].assign(contrast=0.0)
    baseline, _ = probe.map_responses(extractor, grey, progress=False)
    # A uniform grey image drives ReLU maps too; the paper does not subtract it, nor does the probe
    # (a subtracted baseline would make the grey image's own responses all zero).
    assert baseline.max() > 0.01


@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_batch_size_does_not_change_results(extractor, stimuli, probed, batch_size):
    responses, columns = probe.map_responses(extractor, stimuli, batch_size=batch_size, progress=False)
    assert columns == probed[1]
    np.testing.assert_allclose(responses, probed[0], rtol=1e-5, atol=1e-6)


def test_responses_frame(stimuli, probed):
    responses, columns = probed
    ids = stimuli["stimulus_id"].to_numpy()
    frame = probe.responses_frame(responses, columns, ids)
    assert list(frame.columns) == list(probe.RESPONSE_COLUMNS)
    assert frame.shape == (6 * 192, 4)
    assert frame["channel"].dtype == np.int32
    assert frame["stimulus_id"].dtype == np.int64
    assert frame["response"].dtype == np.float32
    # Map-major, stimuli in table order within each map.
    assert list(frame["layer"].iloc[:6]) == ["relu1_1"] * 6
    assert list(frame["stimulus_id"].iloc[:6]) == list(ids)
    assert list(frame["channel"].iloc[6:12]) == [1] * 6
    assert list(frame["layer"].iloc[-1:]) == ["relu2_1"]
    for map_index, stimulus_index in [(0, 0), (5, 3), (64, 2), (191, 5)]:
        row = frame.iloc[map_index * 6 + stimulus_index]
        assert (row["layer"], row["channel"]) == columns[map_index]
        assert row["stimulus_id"] == ids[stimulus_index]
        assert row["response"] == responses[stimulus_index, map_index]


def test_frame_feeds_the_tuning_curves(stimuli, probed):
    responses, columns = probed
    frame = probe.responses_frame(responses, columns, stimuli["stimulus_id"].to_numpy())
    curves = tuning.tuning_curves(frame, stimuli)
    assert [(layer, channel) for layer, channel in zip(curves.layer, curves.channel, strict=True)] == columns
    # Mean over the two phases of each of the three frequencies.
    expected = responses.reshape(3, 2, -1).mean(axis=1).T
    np.testing.assert_allclose(curves.responses, expected, rtol=1e-6)


def test_matlab_literal_scaling_is_the_stimulus_scaled_by_1_over_255(extractor, stimuli):
    """``matlab_literal`` feeds the network what MATLAB's vgg16 would see of an unscaled [0, 1] image."""
    literal, _ = probe.map_responses(extractor, stimuli, batch_size=6, progress=False, input_scaling="matlab_literal")
    with torch.inference_mode():
        images = _render_by_hand(stimuli) / 255.0
        by_hand = probe._spatial_means(extractor, images).numpy()
    np.testing.assert_allclose(literal, by_hand, rtol=1e-4, atol=1e-6)
    default, _ = probe.map_responses(extractor, stimuli, batch_size=6, progress=False)
    assert not np.allclose(literal, default, rtol=0.1)
    with pytest.raises(ParamsError, match=r"stimuli.input_scaling must be one of \['imagenet', 'matlab_literal'\]"):
        probe.map_responses(extractor, stimuli, progress=False, input_scaling="caffe")
