"""Stage inputs: the upstream outputs a stage reads, from their place under ``data/``.

Only the pipeline layer (and the stage scripts) know where outputs live; the library takes
arrays, frames and paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.io import read_parquet

VFSS_TABLE = Path("data/vfss/vfss.parquet")
"""The `vfss` stage's table: ``layer, channel, vfss``."""
WEIGHTS_DIR = Path("data/weights")
"""Where the `weights` stage exports one ``<scheme>.safetensors`` per scheme."""
VFSS_WEIGHTS = WEIGHTS_DIR / "vfss.safetensors"


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
    table = read_parquet(vfss_path, columns=["layer", "channel", "vfss"])
    scores = {
        layer: rows.sort_values("channel")["vfss"].to_numpy() for layer, rows in table.groupby("layer", sort=False)
    }
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
