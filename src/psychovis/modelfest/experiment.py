"""The ModelFest experiment end to end: render, observe, fit, score, sweep px/deg.

:func:`run_experiment` is what the `modelfest` stage calls; it needs no DVC (give it distances built
by :func:`psychovis.distances.build_distances` or any callables).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from psychovis.distances.engine import Distance
from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.modelfest import data as mf_data
from psychovis.modelfest.fitted import premise_test
from psychovis.modelfest.observers import Curves, classical_curves, contrast_grid, deep_curves, fit_criteria
from psychovis.modelfest.scores import PUBLISHED_ANCHORS_DB, score_observers
from psychovis.modelfest.stimuli import FAMILIES, STIMULI, check_families, patterns

CONTROL_DISTANCES: dict[str, tuple[str, str]] = {"alexnet": ("alexnet", "relu2"), "vgg16_random": ("vgg16_random", "")}
"""Deep controls beyond the catalogue: backbone and layer of a plain (uniform) feature distance;
an empty layer means the VGG layers of the run."""
EXTRA_OBSERVERS: tuple[str, ...] = ("gain_normalised", *CONTROL_DISTANCES)


def control_distances(names: Sequence[str], layers: Sequence[str]) -> dict[str, Distance]:
    """The control distances among ``names``: AlexNet (relu2) and the untrained VGG-16 (the run's layers)."""
    out: dict[str, Distance] = {}
    for name in names:
        if name in CONTROL_DISTANCES:
            backbone, layer = CONTROL_DISTANCES[name]
            out[name] = PsychovisualLoss(backbone=backbone, layers=[layer] if layer else list(layers), reduction="none")
    return out


@dataclass
class Result:
    """Everything the stage writes."""

    ladder: pd.DataFrame
    per_stimulus: pd.DataFrame
    sweep: pd.DataFrame
    curves: pd.DataFrame
    geometry: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    people: np.ndarray | None = None
    fitted_weights: pd.DataFrame = field(default_factory=pd.DataFrame)


def _curves_table(observers: Mapping[str, Curves], ppd: float) -> pd.DataFrame:
    frames = []
    for name, curves in observers.items():
        s, c = np.meshgrid(np.arange(1, curves.values.shape[0] + 1), curves.contrasts, indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "observer": name,
                    "px_per_degree": float(ppd),
                    "stimulus": s.ravel(),
                    "contrast": c.ravel(),
                    "distance": curves.values.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def observe(
    px_per_degree: float,
    distances: Mapping[str, Distance],
    contrasts: np.ndarray,
    csfs: Sequence[str],
    batch_size: int,
    device: torch.device | str,
    gain_normalised: bool = False,
    progress: bool = True,
    maps_out: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Curves], dict[str, str]]:
    """Every observer's curves at one geometry, and each observer's kind (classical / deep)."""
    unit = patterns(px_per_degree)
    contrasts = np.asarray(contrasts)
    observers = classical_curves(unit, px_per_degree, contrasts, csfs)
    kinds = dict.fromkeys(observers, "classical")
    if distances or gain_normalised:
        deep = deep_curves(distances, unit, contrasts, batch_size, device, gain_normalised, progress, maps_out)
        observers.update(deep)
        kinds.update({name: "pixel" if name == "pixel_mse" else "deep" for name in deep})
    return observers, kinds


def geometry_aware(
    by_ppd: Mapping[float, Curves], people: np.ndarray, train_families: Sequence[str]
) -> dict[str, float]:
    """The geometry-aware observer: the network reads the stimuli at its own reference px/deg.

    The reference is chosen (with every person's criterion) on ``train_families`` only, among the
    rendered geometries; the observer is then scored on the other stimuli at that reference.

    Returns:
        ``reference_px_per_degree``, ``train_rms_db``, ``held_out_rms_db`` and ``held_out_rms_db_at_<ppd>``.
    """
    train_rms, held_out = {}, {}
    for ppd, curves in by_ppd.items():
        train_rms[ppd], held_out[ppd] = _train_and_held_out(curves, people, train_families)
    reference = min(train_rms, key=train_rms.get)
    out = {
        "reference_px_per_degree": float(reference),
        "train_rms_db": train_rms[reference],
        "held_out_rms_db": held_out[reference],
    }
    out.update({f"held_out_rms_db_at_{ppd:g}": value for ppd, value in held_out.items()})
    return out


def pyramid(by_ppd: Mapping[float, Curves], people: np.ndarray, train_families: Sequence[str]) -> dict[str, Any]:
    """The multi-scale reading: the largest of the distances read at every rendered geometry.

    No geometry is chosen (the scales are all the rendered ones, fixed in advance); as for every
    observer, only the criteria are fitted, on ``train_families``.

    Returns:
        ``scales_px_per_degree`` (the geometries read), ``train_rms_db`` and ``held_out_rms_db``.
    """
    scales = sorted(by_ppd)
    values = np.max([by_ppd[ppd].values for ppd in scales], axis=0)
    train_rms, held_out = _train_and_held_out(Curves(by_ppd[scales[0]].contrasts, values), people, train_families)
    return {
        "scales_px_per_degree": [float(ppd) for ppd in scales],
        "train_rms_db": train_rms,
        "held_out_rms_db": held_out,
    }


def _train_and_held_out(curves: Curves, people: np.ndarray, train_families: Sequence[str]) -> tuple[float, float]:
    """RMS dB on ``train_families`` (criteria fitted there) and on every other stimulus."""
    train = np.concatenate([np.asarray(FAMILIES[f]) - 1 for f in check_families(train_families)])
    test = np.setdiff1d(np.arange(people.shape[1]), train)
    fit = fit_criteria(curves, people, train)
    train_rms = float(np.sqrt(((fit.thresholds_db[:, train] - people[:, train]) ** 2).mean()))
    return train_rms, float(np.sqrt((fit.errors(people, test) ** 2).mean()))


def reference_geometry(geometry: pd.DataFrame, fit_families: Sequence[str], distance: str = "vgg") -> dict[str, Any]:
    """The reference px/deg of the geometry-aware ``distance`` observer: what the ``geometry_aware`` loss reads.

    Args:
        geometry: :attr:`Result.geometry` (one row per geometry-aware observer).
        fit_families: the stimulus families the reference was chosen on (``modelfest.fit_families``).
        distance: the deep observer whose reference the loss uses (the plain VGG distance).

    Returns:
        ``observer``, ``reference_px_per_degree`` (None when no such observer was fitted, with ``why``),
        ``fit_families``, ``train_rms_db`` and ``held_out_rms_db``.
    """
    observer = f"geometry_aware_{distance}"
    rows = geometry[geometry["observer"] == observer] if "observer" in geometry else geometry
    record: dict[str, Any] = {"observer": observer, "fit_families": list(fit_families)}
    if not len(rows):
        why = (
            f"no {observer} observer was fitted: it needs {distance!r} in modelfest.sweep_distances and at least one "
            "geometry in modelfest.deep_sweep_px_per_degree"
        )
        return record | {"reference_px_per_degree": None, "why": why}
    row = rows.iloc[0]
    # the `train_geometry` stage depends on this file: 0.01 dB keeps CPU-level low digits from retraining it
    return record | {
        "reference_px_per_degree": float(row["reference_px_per_degree"]),
        "train_rms_db": round(float(row["train_rms_db"]), 2),
        "held_out_rms_db": round(float(row["held_out_rms_db"]), 2),
    }


def run_experiment(
    p: Mapping[str, Any],
    distances: Mapping[str, Distance],
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    premise_scores: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> Result:
    """The experiment of the ``modelfest`` params section (see ``params.yaml``).

    Args:
        p: the validated section: ``px_per_degree``, ``distances``, ``csfs``, ``contrast_min``,
            ``contrast_max``, ``contrasts``, ``sweep_px_per_degree``, ``sweep_distances``,
            ``deep_sweep_px_per_degree``, ``fit_families``, ``bootstrap``, ``batch_size``.
        distances: name -> deep distance (the names of ``p["distances"]`` except ``gain_normalised``).
        seed: bootstrap seed.
        device: where the networks run.
        premise_scores: score name (``vfss``, ``vfss_normalised``) -> layer -> the score per map, for the
            fitted-weights premise test and its gain-matched nulls (None: no score correlation).
    """
    table = mf_data.read_sensitivities()
    people, ids = mf_data.threshold_matrix(table)
    repeats = mf_data.repeat_matrix(table)
    contrasts = contrast_grid(p["contrast_min"], p["contrast_max"], p["contrasts"])
    headline_ppd = float(p["px_per_degree"])
    train_families = check_families(p["fit_families"], "modelfest.fit_families")
    unknown = [name for name in p["sweep_distances"] if name not in distances]
    if unknown:
        raise ParamsError(f"modelfest.sweep_distances {unknown} must also be in modelfest.distances")
    gain = "gain_normalised" in p["distances"]
    maps: dict[str, np.ndarray] = {}
    observers, kinds = observe(
        headline_ppd, distances, contrasts, p["csfs"], p["batch_size"], device, gain, progress, maps
    )
    ladder, per_stimulus, extra = score_observers(
        observers, people, repeats, kinds, p["bootstrap"], seed, train_families
    )
    ladder.insert(2, "px_per_degree", headline_ppd)
    curves_tables = [_curves_table(observers, headline_ppd)]

    # px/deg sweep: a sensitivity analysis (the headline geometry is the data's own, never fitted)
    sweep_rows = []
    deep_by_ppd: dict[str, dict[float, Curves]] = {
        name: {headline_ppd: observers[name]} for name in p["sweep_distances"]
    }
    sweep_deep = {name: distances[name] for name in p["sweep_distances"]}
    ppds = sorted(
        set(map(float, p["sweep_px_per_degree"])) | set(map(float, p["deep_sweep_px_per_degree"])) | {headline_ppd}
    )
    for ppd in ppds:
        if ppd == headline_ppd:
            at, at_kinds = observers, kinds
        else:
            wanted = sweep_deep if ppd in map(float, p["deep_sweep_px_per_degree"]) else {}
            at, at_kinds = observe(ppd, wanted, contrasts, p["csfs"], p["batch_size"], device, False, progress)
            if ppd not in map(float, p["sweep_px_per_degree"]):
                at = {name: curves for name, curves in at.items() if at_kinds[name] != "classical"}
            curves_tables.append(_curves_table(at, ppd))
            for name in wanted:
                deep_by_ppd[name][ppd] = at[name]
        scored, _, _ = score_observers(at, people, repeats, at_kinds, 0, seed, train_families)
        scored = scored[scored["observer"] != "human"]
        keep = [n for n in scored["observer"] if at_kinds.get(n) == "classical" or n in p["sweep_distances"]]
        scored = scored[scored["observer"].isin(keep)]
        sweep_rows.append(
            scored.assign(px_per_degree=ppd)[
                ["observer", "kind", "px_per_degree", "rms_db", "rms_mean_db", "held_out_rms_db"]
            ]
        )
    sweep = pd.concat(sweep_rows, ignore_index=True)

    geometry_rows = []
    for name, by_ppd in deep_by_ppd.items():
        if len(by_ppd) > 1:
            geometry_rows.append(
                {"observer": f"geometry_aware_{name}", **geometry_aware(by_ppd, people, train_families)}
            )
            geometry_rows.append({"observer": f"pyramid_{name}", **pyramid(by_ppd, people, train_families)})
    geometry = pd.DataFrame(geometry_rows)

    train = np.concatenate([np.asarray(FAMILIES[f]) - 1 for f in train_families])
    fitted_rows, weight_frames = [], []
    score_names = list(premise_scores or {})
    for layer, errors in maps.items():
        scores = {
            name: np.asarray(by_layer[layer]) for name, by_layer in (premise_scores or {}).items() if layer in by_layer
        }
        weights, numbers = premise_test(errors, contrasts, people, train, scores, ridge=p["weights_ridge"], seed=seed)
        fitted_rows.append({"layer": layer, **numbers})
        weight_frames.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "channel": np.arange(weights.size),
                    "weight": weights,
                    **{name: scores.get(name, np.nan) for name in score_names},
                }
            )
        )
    fitted = pd.DataFrame(fitted_rows)

    families = {s.number: s.family for s in STIMULI}
    per_stimulus["family"] = per_stimulus["stimulus"].map(families)
    per_stimulus["px_per_degree"] = headline_ppd
    human = pd.DataFrame(
        {
            "observer": "people_mean",
            "stimulus": np.arange(1, people.shape[1] + 1),
            "threshold_db": people.mean(axis=0),
            "family": [families[n] for n in range(1, people.shape[1] + 1)],
            "px_per_degree": headline_ppd,
        }
    )
    per_stimulus = pd.concat([human, per_stimulus], ignore_index=True)
    summary = {
        "px_per_degree": headline_ppd,
        "observers": ladder.replace({np.nan: None}).to_dict(orient="records"),
        **extra,
        "people": ids,
        "published_anchors_db": {
            name: {"rms_db": value, "reference": ref} for name, (value, ref) in PUBLISHED_ANCHORS_DB.items()
        },
        "geometry_aware": geometry.replace({np.nan: None}).to_dict(orient="records"),
        "fitted_weights": fitted.replace({np.nan: None}).to_dict(orient="records"),
        "sweep": sweep.to_dict(orient="records"),
        "contrasts": contrasts.tolist(),
        "notes": (
            "RMS dB pooled over 16 people x 43 stimuli, one criterion per person; CIs: two-way percentile bootstrap "
            "(people and stimuli); rms_mean_db: one criterion fitted to the mean person (as the published anchors); "
            f"held_out_rms_db: criteria fitted on {train_families}, scored on the other stimuli"
        ),
    }
    empty = pd.DataFrame({column: [] for column in ["layer", "channel", "weight", *score_names]})
    weights_table = pd.concat(weight_frames, ignore_index=True) if weight_frames else empty
    curves_table = pd.concat(curves_tables, ignore_index=True)
    return Result(ladder, per_stimulus, sweep, curves_table, geometry, summary, people, weights_table)


FITTED_SCHEME = "human_fitted"
"""The weights scheme of the per-map weights fitted to people (:data:`psychovis.names.WEIGHT_SCHEMES`)."""


def fitted_feature_weights(result: Result, backbone: str, metadata: Mapping[str, str] | None = None) -> FeatureWeights:
    """The per-map weights fitted to people as the ``human_fitted`` weights scheme, every fitted layer.

    The file records its provenance: ``fitted_to`` (the data) and ``fit`` (JSON: the training
    families, and per layer the ridge and reference contrast of the fit, the px/deg the stimuli were
    rendered at), besides ``metadata`` (e.g. :func:`psychovis.feature_weights.shaping_params`).

    Args:
        result: :func:`run_experiment`'s result (its ``fitted_weights`` table and summary).
        backbone: the network whose maps were fitted (the run's ``base.backbone``).
        metadata: more string metadata to store.

    Returns:
        The weights (mean 1 per layer), ready to :meth:`~psychovis.feature_weights.FeatureWeights.save`.

    Raises:
        ParamsError: no layer was fitted (``modelfest.distances`` holds no distance on the VGG maps).
    """
    table = result.fitted_weights
    if not len(table):
        raise ParamsError("no per-map weights were fitted: modelfest.distances needs a distance on the VGG maps")
    weights = {
        str(layer): torch.tensor(rows.sort_values("channel")["weight"].to_numpy(dtype=np.float64), dtype=torch.float32)
        for layer, rows in table.groupby("layer", sort=False)
    }
    fit = {
        "train_families": list(result.summary["train_families"]),
        "px_per_degree": result.summary["px_per_degree"],
        "target": "the mean person's thresholds (dB) on the training families",
        "layers": {
            row["layer"]: {"ridge": row["ridge"], "reference_contrast": row["reference_contrast"]}
            for row in result.summary["fitted_weights"]
        },
    }
    provenance = {
        "fitted_to": "ModelFest detection thresholds of 16 people (Watson & Ahumada 2005)",
        "fit": json.dumps(fit, sort_keys=True),
    }
    return FeatureWeights(backbone, FITTED_SCHEME, weights, {**(metadata or {}), **provenance})


HEADLINE_CLASSICAL = ("constant", "pixel_energy", "energy_barten_2003", "energy_standard_spatial_observer")
HEADLINE_PREMISE = ("spearman_vfss", "null_vfss_p")
"""The premise test's headline: VFSS's Spearman with the fitted weights and its p in the gain-matched null."""


def headline_metrics(result: Result, limit: int = 16) -> dict[str, Any]:
    """The lean headline (at most ``limit`` numbers): RMS dB of the key classical and the deep observers
    at the headline geometry, the human band, the noise floor, the geometry-aware held-out errors and
    the premise test of the first fitted layer (VFSS's Spearman with the weights fitted to people, and
    its one-sided p in the gain-matched null)."""
    rms: dict[str, float | None] = {}
    ladder = result.ladder.set_index("observer")
    fixed = {"human_band_db": float(result.summary["human_band_db"]["pooled"]),
             "noise_floor_of_mean_db": float(result.summary["noise_floor_of_mean_db"])}  # fmt: skip
    held_out = {row.observer: float(row.held_out_rms_db) for row in result.geometry.itertuples()}
    premise: dict[str, float | None] = {}
    for row in result.summary.get("fitted_weights", [])[:1]:
        for key in HEADLINE_PREMISE:
            value = row.get(key)
            premise[key] = float(value) if value is not None and math.isfinite(value) else None
    room = limit - len(fixed) - len(held_out) - len(premise)
    names = [n for n in HEADLINE_CLASSICAL if n in ladder.index]
    names += [n for n in ladder.index if ladder.loc[n, "kind"] == "deep"]
    for name in names[: max(room, 0)]:
        value = float(ladder.loc[name, "rms_db"])
        rms[name] = value if math.isfinite(value) else None
    out: dict[str, Any] = {"rms_db": rms, **fixed}
    if held_out:
        out["held_out_rms_db"] = held_out
    if premise:
        out["fitted_weights"] = premise
    return out
