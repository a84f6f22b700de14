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
OTHER_SCALING_TABLE = Path("data/features/other_scaling.parquet")
"""The same responses under the other ``stimuli.input_scaling`` (for the VFSS sensitivity table)."""
VFSS_TABLE = Path("data/vfss/vfss.parquet")
"""The `vfss` stage's table: ``layer, channel, vfss``."""
WEIGHTS_DIR = Path("data/weights")
"""Where the `weights` stage exports one ``<scheme>.safetensors`` per scheme."""
VFSS_WEIGHTS = WEIGHTS_DIR / "vfss.safetensors"


def load_probe_results(other_scaling: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(features, stimuli)``: the `features` stage's responses and the gratings they answer.

    Args:
        other_scaling: read the responses under the input scaling that ``stimuli.input_scaling``
            did not choose instead.
    """
    table = OTHER_SCALING_TABLE if other_scaling else FEATURES_TABLE
    features = read_parquet(table, columns=["layer", "channel", "stimulus_id", "response"])
    stimuli = read_parquet(STIMULI_TABLE, columns=["stimulus_id", "frequency_cpd", "frequency_cpp", "contrast"])
    return features, stimuli
