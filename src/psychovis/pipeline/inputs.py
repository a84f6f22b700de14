"""Stage inputs: the upstream outputs a stage reads, from their place under ``data/``.

Only the pipeline layer (and the stage scripts) know where outputs live; the library takes
arrays, frames and paths.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from psychovis.io import read_parquet

STIMULI_TABLE = Path("data/stimuli/stimuli.parquet")
"""The `stimuli` stage's table: one row per grating."""
FEATURES_TABLE = Path("data/features/features.parquet")
"""The `features` stage's table: ``layer, channel, stimulus_id, response``."""
VFSS_TABLE = Path("data/vfss/vfss.parquet")
"""The `vfss` stage's table: ``layer, channel, vfss``."""
WEIGHTS_DIR = Path("data/weights")
"""Where the `weights` stage exports one ``<scheme>.safetensors`` per scheme."""
VFSS_WEIGHTS = WEIGHTS_DIR / "vfss.safetensors"


def load_probe_results() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(features, stimuli)``: the `features` stage's responses and the gratings they answer."""
    features = read_parquet(FEATURES_TABLE, columns=["layer", "channel", "stimulus_id", "response"])
    stimuli = read_parquet(STIMULI_TABLE, columns=["stimulus_id", "frequency_cpd", "frequency_cpp", "contrast"])
    return features, stimuli
