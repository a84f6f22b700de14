"""Responses of every map of any network to the atlas gratings, as a (map, frequency, orientation) grid."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from psychovis import gratings
from psychovis.errors import DataError
from psychovis.progress import progress as progress_of


def module_responses(
    module: nn.Module,
    stimuli: pd.DataFrame,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Spatial-mean response of every map to every stimulus, for any module returning ``{layer: (N, C, H, W)}``.

    The adapter that lets a hand-built network (or any dict-returning feature model) go through
    the same atlas as the backbones. For a :class:`psychovis.backbones.FeatureExtractor` prefer
    :func:`psychovis.probe.map_responses` (same numbers, lower peak memory).

    Returns:
        ``responses`` of shape ``(n_stimuli, n_maps)`` (float32, rows in table order) and the
        ``(layer, channel)`` of each column, layers in the module's output order.
    """
    device = torch.device(device)
    module = module.to(device).eval()
    blocks: list[np.ndarray] = []
    columns: list[tuple[str, int]] | None = None
    starts = range(0, len(stimuli), batch_size)
    with torch.inference_mode():
        for start in progress_of(starts, "atlas features", unit="batch", enabled=progress):
            batch = gratings.render(stimuli.iloc[start : start + batch_size], device=device)
            outputs = module(batch)
            if not isinstance(outputs, Mapping):
                raise TypeError(f"the module must return a mapping layer -> activation, got {type(outputs).__name__}")
            means = [activation.mean(dim=(2, 3)) for activation in outputs.values()]
            if columns is None:
                columns = [(layer, c) for layer, m in zip(outputs, means, strict=True) for c in range(m.shape[1])]
            blocks.append(torch.cat(means, dim=1).float().cpu().numpy())
    if columns is None:
        raise DataError("no stimuli to probe")
    return np.concatenate(blocks, axis=0), columns


@dataclass(frozen=True)
class ResponseGrid:
    """Phase-averaged responses of many maps on a frequency x orientation grid.

    Attributes:
        frequency_cpp: increasing frequencies in cycles/pixel, ``(F,)``.
        orientation_deg: increasing orientations in degrees, ``(O,)``.
        layer: layer of each map, ``(M,)``.
        channel: channel of each map in its layer, ``(M,)``.
        responses: ``(M, F, O)``.
    """

    frequency_cpp: np.ndarray
    orientation_deg: np.ndarray
    layer: np.ndarray
    channel: np.ndarray
    responses: np.ndarray


def response_grid(
    responses: np.ndarray, columns: Sequence[tuple[str, int]], stimuli: pd.DataFrame, contrast: float | None = None
) -> ResponseGrid:
    """Arrange probe responses (rows = stimuli in ``stimuli`` order) as a phase-averaged grid.

    Args:
        responses: ``(n_stimuli, n_maps)`` as returned by the probe.
        columns: ``(layer, channel)`` of each column.
        stimuli: the stimulus table the responses were measured on (same row order).
        contrast: the contrast to use (default: the highest in the table).

    Raises:
        DataError: the table is not a full frequency x orientation x phase product at that contrast.
    """
    responses = np.asarray(responses, dtype=np.float64)
    if responses.shape != (len(stimuli), len(columns)):
        raise DataError(f"responses have shape {responses.shape}, expected ({len(stimuli)}, {len(columns)})")
    contrast = float(stimuli["contrast"].max()) if contrast is None else contrast
    chosen = np.flatnonzero(np.isclose(stimuli["contrast"].to_numpy(dtype=np.float64), contrast))
    table = stimuli.iloc[chosen]
    frequency, f_index = np.unique(table["frequency_cpp"].to_numpy(dtype=np.float64), return_inverse=True)
    orientation, o_index = np.unique(table["orientation_deg"].to_numpy(dtype=np.float64), return_inverse=True)
    _, p_index = np.unique(table["phase_rad"].to_numpy(dtype=np.float64), return_inverse=True)
    shape = (len(frequency), len(orientation), int(p_index.max()) + 1)
    cells = np.ravel_multi_index((f_index, o_index, p_index), shape)
    if len(np.unique(cells)) != len(cells) or len(cells) != math.prod(shape):
        raise DataError(
            "the atlas needs every (frequency, orientation, phase) combination exactly once at one contrast; "
            f"got {len(cells)} stimuli for a {shape} grid"
        )
    cube = np.empty((responses.shape[1], math.prod(shape)))
    cube[:, cells] = responses[chosen].T
    return ResponseGrid(
        frequency_cpp=frequency,
        orientation_deg=orientation,
        layer=np.array([layer for layer, _ in columns], dtype=object),
        channel=np.array([channel for _, channel in columns], dtype=np.int64),
        responses=cube.reshape(responses.shape[1], *shape).mean(axis=3),
    )


def grid_from_frame(frame: pd.DataFrame, stimuli: pd.DataFrame) -> ResponseGrid:
    """The grid from a tidy ``layer, channel, stimulus_id, response`` table (the atlas_features output).

    Maps are ordered by layer (in order of first appearance) then channel; rows may come in any order.
    """
    layers = pd.unique(frame["layer"].astype(str))  # layers in order of first appearance (network order)
    layer_code = pd.Categorical(frame["layer"].astype(str), categories=layers).codes.astype(np.int64)
    channel = frame["channel"].to_numpy(dtype=np.int64)
    stride = int(channel.max()) + 1
    keys, map_index = np.unique(layer_code * stride + channel, return_inverse=True)
    position = pd.Index(stimuli["stimulus_id"].to_numpy()).get_indexer(frame["stimulus_id"].to_numpy())
    if (position < 0).any():
        raise DataError("the responses refer to stimulus ids that are not in the stimulus table")
    wide = np.full((len(stimuli), len(keys)), np.nan)
    wide[position, map_index] = frame["response"].to_numpy(dtype=np.float64)
    columns = [(str(layers[key // stride]), int(key % stride)) for key in keys]
    return response_grid(wide, columns, stimuli.reset_index(drop=True))
