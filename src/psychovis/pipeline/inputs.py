"""Stage inputs: the upstream outputs a stage reads, from their place under ``data/``.

Only the pipeline layer (and the stage scripts) know where outputs live; the library takes
arrays, frames and paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from psychovis.errors import DataError, ParamsError, quote
from psychovis.names import LAYER_MAPS

if TYPE_CHECKING:  # pandas loads with the first table read: the paths are read before the heavy imports
    import pandas as pd

    from psychovis.io import PathLike

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
REFERENCE_GEOMETRY = Path("data/modelfest/reference_geometry.json")
"""The `modelfest` stage's reference px/deg of the geometry-aware VGG observer (the ``geometry_aware`` loss)."""


_RESPONSES = frozenset({"channel", "stimulus_id", "response"})
NUMERIC_COLUMNS: dict[str, frozenset[str]] = {
    "stimuli.parquet": frozenset(
        {"stimulus_id", "frequency_cpd", "frequency_cpp", "orientation_deg", "phase_rad", "contrast", "size"}
    ),
    "features.parquet": _RESPONSES,
    "responses.parquet": _RESPONSES,
    "other_scaling.parquet": _RESPONSES,
    "vfss.parquet": frozenset({"channel", "vfss", "mean_response", "response_range", "vfss_normalised"}),
    "per_image.parquet": frozenset({"seed"}),  # its values may be inf (PSNR of a perfect reconstruction)
}
"""Inter-stage table (by file name) -> columns that must hold finite numbers when read."""
NONNEGATIVE_COLUMNS: dict[str, frozenset[str]] = {
    "stimuli.parquet": frozenset({"frequency_cpd", "frequency_cpp", "contrast", "size"}),
    "features.parquet": frozenset({"response"}),  # spatial means of post-ReLU maps
    "responses.parquet": frozenset({"response"}),
    "other_scaling.parquet": frozenset({"response"}),
    "vfss.parquet": frozenset({"vfss", "response_range"}),  # VFSS sums CSF x |gradient|
}
"""Inter-stage table (by file name) -> numeric columns that must also be >= 0."""
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "stimuli.parquet": ("stimulus_id",),
    "features.parquet": ("layer", "channel", "stimulus_id"),
    "responses.parquet": ("layer", "channel", "stimulus_id"),
    "other_scaling.parquet": ("layer", "channel", "stimulus_id"),
    "vfss.parquet": ("layer", "channel"),
    "per_image.parquet": ("method", "seed", "image", "judge"),
}
"""Inter-stage table (by file name) -> columns that identify a row (a repeated row is corrupt)."""


def read_input(path: PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """Read an upstream stage's table, checking its columns and that numbers are finite (and signs right).

    A NaN, an infinity, a negative response or a column of text in a table passed between stages
    would otherwise flow into the results silently (e.g. NaN responses gave an all-zero VFSS).

    Args:
        path: the table, e.g. :data:`FEATURES_TABLE`.
        columns: the columns the caller needs; those listed in :data:`NUMERIC_COLUMNS` for this
            file name are checked.

    Raises:
        DataError: the file is missing, corrupt or empty, lacks a column, repeats a row, or a numeric
            column holds text, NaN, infinity or a negative value where none is possible; one line
            naming file and column.
    """
    from psychovis.io import read_parquet

    name = Path(path).name
    numeric = [column for column in columns if column in NUMERIC_COLUMNS.get(name, ())]
    frame = read_parquet(path, columns, finite=numeric, nonnegative=sorted(NONNEGATIVE_COLUMNS.get(name, ())))
    if frame.empty:
        raise DataError(f"{path} holds no rows; delete it and run `dvc repro` to rebuild it")
    key = [column for column in KEY_COLUMNS.get(name, ()) if column in frame.columns]
    if key and len(key) == len(KEY_COLUMNS[name]):
        repeated = frame.duplicated(key)
        if repeated.any():
            row = frame.loc[repeated, key].iloc[0].to_dict()
            raise DataError(
                f"{path} repeats {int(repeated.sum())} row(s) of ({', '.join(key)}), e.g. {row}; "
                "it is corrupt: delete it and run `dvc repro`"
            )
    return frame


def read_reference_geometry(layers: Sequence[str], backbone: str = "vgg16", root: PathLike = ".") -> float:
    """The network's reference px/deg that the `modelfest` stage fitted (:data:`REFERENCE_GEOMETRY`).

    Args:
        layers: the loss's layers (``train.layers``): the reference holds for the layers it was fitted at.
        backbone: the loss's backbone.
        root: the checkout whose file to read.

    Raises:
        DataError: the file is missing or is not the modelfest stage's record.
        ParamsError: no reference was fitted (the sweep that fits it is off), or it was fitted at
            other layers or on another backbone.
    """
    from psychovis.io import read_json

    path = Path(root) / REFERENCE_GEOMETRY
    record = read_json(path)
    if not isinstance(record, dict) or not {"reference_px_per_degree", "layers", "backbone"} <= set(record):
        raise DataError(f"{path} is not the modelfest stage's record; delete it and `dvc repro modelfest`")
    reference = record["reference_px_per_degree"]
    if reference is None:
        raise ParamsError(
            f"the geometry_aware loss has no reference geometry ({record.get('why', 'none was fitted')}); "
            "or leave it out: train.geometry_losses: []"
        )
    if not isinstance(reference, int | float) or not 0 < reference < float("inf"):
        raise DataError(f"{path}: reference_px_per_degree {reference!r} is not a positive number")
    if list(layers) != list(record["layers"]) or backbone != record["backbone"]:
        raise ParamsError(
            f"train.layers {list(layers)} ({backbone}): the geometry_aware loss's reference px/deg was fitted at "
            f"modelfest.layers {record['layers']} ({record['backbone']}); make the two the same"
        )
    return float(reference)


def load_probe_results(other_scaling: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(features, stimuli)``: the `features` stage's responses and the gratings they answer.

    Args:
        other_scaling: read the responses under the input scaling that ``stimuli.input_scaling``
            did not choose instead.
    """
    table = OTHER_SCALING_TABLE if other_scaling else FEATURES_TABLE
    features = read_input(table, columns=["layer", "channel", "stimulus_id", "response"])
    stimuli = read_input(STIMULI_TABLE, columns=["stimulus_id", "frequency_cpd", "frequency_cpp", "contrast"])
    check_responses_cover(features, stimuli, table, STIMULI_TABLE)
    check_layers(features, table)
    return features, stimuli


def check_layers(features: pd.DataFrame, source: PathLike) -> None:
    """Every layer of a probe table is a ReLU layer of a backbone, with no more maps than it has.

    Raises:
        DataError: a layer no backbone has (it would be scored as if it were real), or a channel index
            beyond the layer's map count.
    """
    known = {layer: maps for layers in LAYER_MAPS.values() for layer, maps in layers.items()}
    for layer, channels in features.groupby("layer", sort=False)["channel"]:
        if layer not in known:
            raise DataError(
                f"{source} holds layer {quote(layer)}, which no backbone has (known: {sorted(known)}); "
                "it was not written by the features stage: delete it and run `dvc repro`"
            )
        if int(channels.max()) >= known[layer] or int(channels.min()) < 0:
            raise DataError(
                f"{source}: layer {layer} has channel {int(channels.max())}, but that layer has {known[layer]} maps "
                f"(0 .. {known[layer] - 1}); delete it and run `dvc repro`"
            )


def check_responses_cover(features: pd.DataFrame, stimuli: pd.DataFrame, source: PathLike, table: PathLike) -> None:
    """Every map must answer every stimulus of the table, once (else its curve would have holes).

    Raises:
        DataError: ``source`` answers stimuli that ``table`` lacks, or lacks responses.
    """
    expected = set(stimuli["stimulus_id"].tolist())
    present = set(features["stimulus_id"].unique().tolist())
    if present != expected:
        extra, missing = sorted(present - expected)[:3], sorted(expected - present)[:3]
        raise DataError(
            f"{source} and {table} disagree on the stimuli (in {Path(source).name} only: {extra}, in "
            f"{Path(table).name} only: {missing}); rerun the stage that writes {source} (`dvc repro`)"
        )
    maps = features.groupby(["layer", "channel"], sort=False).ngroups
    if len(features) != maps * len(expected):
        raise DataError(
            f"{source} holds {len(features)} responses, but its {maps} maps x {len(expected)} stimuli need "
            f"{maps * len(expected)}; it is incomplete: delete it and run `dvc repro`"
        )
