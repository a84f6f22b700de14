"""The distances the experiment stages compare, built from the `vfss` and `weights` outputs.

Separate from :mod:`psychovis.pipeline.inputs` because it needs torch and the backbone: the
analysis stages that only read tables stay light.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from psychovis.distances import Distance, build_distances
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.pipeline.inputs import VFSS_TABLE, VFSS_WEIGHTS, read_input


def layer_scores(column: str = "vfss", vfss_path: str | Path = VFSS_TABLE) -> dict[str, np.ndarray]:
    """One column of the `vfss` stage's table by layer, in channel order.

    Args:
        column: ``vfss`` (the paper's score) or ``vfss_normalised`` (VFSS over each map's mean response).
        vfss_path: the `vfss` stage's table.

    Returns:
        layer -> the column's values, one per map.
    """
    table = read_input(vfss_path, columns=["layer", "channel", column])
    return {layer: rows.sort_values("channel")[column].to_numpy() for layer, rows in table.groupby("layer", sort=False)}


def load_vfss_inputs(
    layers: Sequence[str],
    section: str,
    need_weights: bool,
    vfss_path: str | Path = VFSS_TABLE,
    weights_path: str | Path = VFSS_WEIGHTS,
) -> tuple[dict[str, np.ndarray], FeatureWeights | None]:
    """VFSS per map (by layer, in channel order) and, if asked, the exported VFSS weights.

    Args:
        layers: the layers a stage needs.
        section: the params section naming them (for error messages).
        need_weights: also load the exported weights (for the ``vfss`` distance).
        vfss_path: the `vfss` stage's table.
        weights_path: the `weights` stage's export.

    Raises:
        ParamsError: a layer was not probed, or has no exported weights.
    """
    scores = layer_scores("vfss", vfss_path)
    missing = [layer for layer in layers if layer not in scores]
    if missing:
        raise ParamsError(f"{section}.layers {missing} were not probed; add them to features.layers")
    if not need_weights:
        return scores, None
    weights = FeatureWeights.load(weights_path)
    absent = [layer for layer in layers if layer not in weights.weights]
    if absent:
        raise ParamsError(f"{section}.layers {absent} have no exported VFSS weights; add them to weights.layers")
    return scores, weights


def load_distances(
    section: str, params: dict[str, Any], base: dict[str, Any], layers: Sequence[str]
) -> tuple[dict[str, Distance], dict[str, np.ndarray]]:
    """The distances a stage's params section asks for, with the VFSS scores behind them.

    Args:
        section: the params section (``psychophysics``, ``human_judgement``); it names
            ``distances``, ``top_k`` and ``layers``.
        params: that section's validated values.
        base: the ``base`` section (seed, backbone).
        layers: the resolved layers.

    Returns:
        ``(distances, vfss_scores)``: name -> distance, and layer -> VFSS per map.
    """
    scores, weights = load_vfss_inputs(layers, section, "vfss" in params["distances"])
    distances = build_distances(
        scores,
        params["top_k"],
        layers,
        base["seed"],
        params["distances"],
        weights,
        backbone=base["backbone"],
        layers_key=f"{section}.layers",
    )
    return distances, scores
