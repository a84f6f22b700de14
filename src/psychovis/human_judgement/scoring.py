"""Score every distance, and the map-subset curve, on every data set: the `human_judgement` stage's engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from psychovis.distances.engine import Distance, selection_weights, selections, weighted_errors
from psychovis.errors import ParamsError
from psychovis.human_judgement.pairs import pair_distances
from psychovis.human_judgement.stats import SCORE_COLUMNS, rank_correlations, score_2afc, score_mos, two_afc_agreement
from psychovis.io import json_number

SUBSET_COLUMNS: tuple[str, ...] = ("dataset", "metric", "k", "selection", "seed", "value")
"""Columns of the map-subset table (one row per data set, metric, k, selection and random seed)."""


def subset_distances(
    map_errors: Mapping[str, np.ndarray],
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    seeds: int | Sequence[int] = 5,
) -> list[tuple[int, str, int | None, np.ndarray]]:
    """The VGG distance restricted to the top-k, bottom-k and random-k VFSS maps, from per-map errors.

    Each selection is a binary mask of :func:`psychovis.psychophysics.selection_mask` rescaled to
    mean 1 per layer (as :class:`~psychovis.distances.loss.PsychovisualLoss` rescales weights), so the
    distance is ``sum_layers mean_c w_c e_c``, what the loss module with those masks computes.

    Args:
        map_errors: layer -> ``(pairs, maps)`` per-map errors (from :func:`pair_distances`).
        vfss_scores: layer -> VFSS of each map, in channel order.
        ks: maps per layer (``min(k, maps)`` in a smaller layer).
        seeds: the ``randomk`` seeds, or how many (``0 .. seeds-1``).

    Returns:
        ``(k, selection, seed, distances)`` tuples: ``topk`` and ``bottomk`` per k (seed None),
        ``randomk`` per k and seed; ``distances`` of shape ``(pairs,)``.

    Raises:
        ParamsError: no per-map errors, a bad k, or VFSS scores missing or of the wrong length.
    """
    if not map_errors:
        raise ParamsError("map subsets need per-map errors: pass map_layers to pair_distances")
    chosen = selections(ks, seeds)
    pairs = next(iter(map_errors.values())).shape[0]
    totals = np.zeros((pairs, len(chosen)))
    for layer, errors in map_errors.items():
        if layer not in vfss_scores:
            raise ParamsError(f"no VFSS scores for layer {layer}")
        scores = np.asarray(vfss_scores[layer], dtype=np.float64)
        if scores.size != errors.shape[1]:
            raise ParamsError(f"{layer} has {errors.shape[1]} maps but {scores.size} VFSS scores")
        totals += weighted_errors(errors, selection_weights(scores, chosen))
    return [(k, selection, seed, totals[:, index]) for index, (k, selection, seed) in enumerate(chosen)]


def subset_scores(
    dataset: str,
    frame: pd.DataFrame,
    map_errors: Mapping[str, np.ndarray],
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    seeds: int | Sequence[int] = 5,
) -> pd.DataFrame:
    """The map-subset curve on human data: score of the k top-, bottom- and random-VFSS maps vs k.

    Args:
        dataset: the data set's name.
        frame: the reader's frame (MOS: ``score`` column; 2AFC: ``judge`` and ``subset``).
        map_errors: layer -> per-map errors; for 2AFC the ``2n`` rows are the ``(ref, p0)`` pairs
            followed by the ``(ref, p1)`` pairs.
        vfss_scores: layer -> VFSS of each map.
        ks: maps per layer.
        seeds: the ``randomk`` seeds, or how many.

    Returns:
        :data:`SUBSET_COLUMNS`: metric ``srcc`` (sign-oriented, as in :func:`score_mos`) for MOS
        data, ``2afc`` (mean over subsets of the per-subset scores) for 2AFC data; ``seed`` is
        <NA> for the deterministic selections.
    """
    records = []
    is_2afc = "judge" in frame
    for k, selection, seed, distance in subset_distances(map_errors, vfss_scores, ks, seeds):
        if is_2afc:
            n = len(frame)
            agreement = two_afc_agreement(distance[:n], distance[n:], frame["judge"].to_numpy())
            value = float(pd.Series(agreement).groupby(frame["subset"].to_numpy()).mean().mean())
            metric = "2afc"
        else:
            value, metric = -rank_correlations(distance, frame["score"].to_numpy())["srcc"], "srcc"
        records.append(
            {"dataset": dataset, "metric": metric, "k": k, "selection": selection, "seed": seed, "value": value}
        )
    result = pd.DataFrame(records, columns=list(SUBSET_COLUMNS))
    result["seed"] = result["seed"].astype("Int64")
    return result


def subset_summary(subsets: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over random seeds) per ``(dataset, metric, k, selection)``."""
    summary = (
        subsets.groupby(["dataset", "metric", "k", "selection"], sort=False)["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    return summary


SCORE_DTYPES: dict[str, str] = dict(
    zip(SCORE_COLUMNS, ("object", "object", "object", "float64", "float64", "float64", "int64"), strict=True)
)
SUBSET_DTYPES: dict[str, str] = dict(
    zip(SUBSET_COLUMNS, ("object", "object", "int64", "object", "Int64", "float64"), strict=True)
)


def _empty(dtypes: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})


def empty_scores() -> pd.DataFrame:
    """A scores table with the columns and dtypes of :func:`evaluate` and no rows."""
    return _empty(SCORE_DTYPES)


def empty_subsets() -> pd.DataFrame:
    """A map-subset table with the columns and dtypes of :func:`evaluate` and no rows."""
    return _empty(SUBSET_DTYPES)


def evaluate(
    datasets: Mapping[str, pd.DataFrame],
    distances: Mapping[str, Distance],
    vfss_scores: Mapping[str, np.ndarray] | None = None,
    layers: Sequence[str] = ("relu3_2",),
    size: int | None = 256,
    batch_size: int = 16,
    bootstrap: int = 200,
    subset_ks: Sequence[int] = (),
    subset_seeds: int | Sequence[int] = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    backbone: str = "vgg16",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every distance on every data set, and the map-subset curve.

    Args:
        datasets: name -> a reader's frame (MOS frames have ``reference, distorted, score``;
            2AFC frames ``ref, p0, p1, judge, subset``).
        distances: name -> distance (from :func:`psychovis.psychophysics.build_distances`).
        vfss_scores: layer -> VFSS of each map (needed when ``subset_ks`` is not empty).
        layers: the layers of the map-subset curve (the VGG distances' layers).
        size: common image side (see :func:`to_common_size`).
        batch_size: pairs per forward pass.
        bootstrap: resamples of the confidence intervals.
        subset_ks: k values of the map-subset curve; empty to skip it.
        subset_seeds: ``randomk`` seeds, or how many.
        seed: seed of the bootstrap.
        device: where to run.
        backbone: the backbone of the shared forward pass.
        progress: optional ``progress(dataset, done, total)``.

    Returns:
        ``(scores, subsets)``: frames with :data:`SCORE_COLUMNS` and :data:`SUBSET_COLUMNS`.

    Raises:
        DataError: an image is missing or unreadable.
        ParamsError: a frame of neither kind, or a bad parameter.
    """
    scores, subsets = [], []
    map_layers = list(layers) if subset_ks else []
    for name, frame in datasets.items():
        report = None if progress is None else (lambda done, total, name=name: progress(name, done, total))
        is_2afc = {"ref", "p0", "p1", "judge", "subset"} <= set(frame.columns)
        if is_2afc:  # each triplet is two pairs: (ref, p0) first, then (ref, p1)
            references, distorted = [*frame["ref"], *frame["ref"]], [*frame["p0"], *frame["p1"]]
        elif {"reference", "distorted", "score"} <= set(frame.columns):
            references, distorted = frame["reference"], frame["distorted"]
        else:
            raise ParamsError(f"data set {name!r} has columns {list(frame.columns)}, neither MOS nor 2AFC")
        pairs = pair_distances(references, distorted, distances, size, batch_size, device, map_layers, backbone, report)
        if is_2afc:
            n = len(frame)
            d0 = {key: value[:n] for key, value in pairs.values.items()}
            d1 = {key: value[n:] for key, value in pairs.values.items()}
            scores.append(
                score_2afc(d0, d1, frame["judge"].to_numpy(), frame["subset"].to_numpy(), bootstrap, seed, name)
            )
        else:
            scores.append(score_mos(name, pairs.values, frame["score"].to_numpy(), bootstrap, seed))
        if subset_ks:
            if vfss_scores is None:
                raise ParamsError("the map-subset curve needs VFSS scores")
            subsets.append(subset_scores(name, frame, pairs.map_errors, vfss_scores, subset_ks, subset_seeds))
    score_frame = pd.concat([empty_scores(), *scores], ignore_index=True) if scores else empty_scores()
    subset_frame = pd.concat([empty_subsets(), *subsets], ignore_index=True) if subsets else empty_subsets()
    return score_frame.astype(empty_scores().dtypes.to_dict()), subset_frame.astype(empty_subsets().dtypes.to_dict())


def summary_metrics(scores: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """``dataset -> distance -> {metric: value, metric_ci_low, metric_ci_high}`` for a metrics file, JSON-safe."""
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in scores.itertuples(index=False):
        entry = metrics.setdefault(str(row.dataset), {}).setdefault(str(row.distance), {})
        entry[str(row.metric)] = json_number(row.value)
        entry[f"{row.metric}_ci_low"] = json_number(row.ci_low)
        entry[f"{row.metric}_ci_high"] = json_number(row.ci_high)
    return metrics
