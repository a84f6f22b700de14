"""The psychophysics headline metrics: the map-subset test against its null, under every analysis choice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from psychovis.io import json_number
from psychovis.psychophysics.robustness import CONDITION, select_condition

NULL_FIELDS = ("topk", "bottomk", "topk_percentile", "bottomk_percentile", "null_low", "null_high")
"""What ``metrics/psychophysics.json`` keeps of a row of :func:`~psychovis.psychophysics.robustness.null_summary`."""


def summary_metrics(nulls: pd.DataFrame, table: pd.DataFrame, k: int, main: Mapping[str, Any]) -> dict[str, Any]:
    """The headline dict for ``metrics/psychophysics.json`` (``dvc metrics``), JSON-safe.

    Args:
        nulls: the frame of :func:`~psychovis.psychophysics.robustness.null_summary`.
        table: the frame of :func:`~psychovis.psychophysics.robustness.robustness_table`.
        k: the map-subset size reported (the weights' top-k).
        main: the main condition: a value for every column of
            :data:`~psychovis.psychophysics.robustness.CONDITION` (the paper's choices).

    Returns:
        ``null_draws``; ``subsets_k{k}`` -> ``main``, ``nyquist_safe``, ``gain_normalised`` ->
        top-k/bottom-k log-correlation, their percentiles in the random-k null and the null's 95 %
        band; ``criterion_sweep`` -> ``c{contrast}`` -> the percentiles and the ``vgg``/``vfss``
        log-correlations; ``csfs`` -> CSF -> the same; ``distances`` -> distance -> log-correlation
        on the ``full`` and ``nyquist_safe`` ranges. Rounded to 5 decimals, NaN as None.

    Raises:
        ValueError: ``main`` does not name every condition column, or no row matches it.
    """
    if set(main) != set(CONDITION):
        raise ValueError(f"main must give {CONDITION}, got {sorted(main)}")
    at_k = nulls[nulls["k"] == k]

    def null_entry(**changes: Any) -> dict[str, float | None]:
        row = _one(at_k, {**main, **changes})
        return {field: json_number(row[field]) for field in NULL_FIELDS}

    def distance_values(names: tuple[str, ...], **changes: Any) -> dict[str, float | None]:
        rows = select_condition(table[table["kind"] == "distance"], {**main, **changes})
        rows = rows.set_index("name")["log_correlation"]
        return {name: json_number(rows[name]) for name in names if name in rows.index}

    def percentiles(**changes: Any) -> dict[str, float | None]:
        entry = null_entry(**changes)
        return {"topk_percentile": entry["topk_percentile"], "bottomk_percentile": entry["bottomk_percentile"]}

    draws = _one(at_k, main)["draws"]
    distance_names = tuple(dict.fromkeys(table.loc[table["kind"] == "distance", "name"]))
    return {
        "null_draws": int(draws),
        f"subsets_k{k}": {
            "main": null_entry(),
            "nyquist_safe": null_entry(frequency_range="nyquist_safe"),
            "gain_normalised": null_entry(control="gain_normalised"),
        },
        "criterion_sweep": {
            f"c{level:g}": {
                **percentiles(criterion_contrast=level),
                **distance_values(("vgg", "vfss"), criterion_contrast=level),
            }
            for level in sorted(table["criterion_contrast"].unique())
        },
        "csfs": {
            csf: {**percentiles(csf=csf), **distance_values(("vgg", "vfss"), csf=csf)}
            for csf in dict.fromkeys(table["csf"])
        },
        "distances": {
            name: {
                "full": distance_values((name,))[name],
                "nyquist_safe": distance_values((name,), frequency_range="nyquist_safe")[name],
            }
            for name in distance_names
        },
    }


def _one(frame: pd.DataFrame, condition: Mapping[str, Any]) -> pd.Series:
    chosen = select_condition(frame, condition)
    if chosen.empty:
        raise ValueError(f"no null summary row for {dict(condition)}")
    return chosen.iloc[0]


def headline_metrics(summary: dict[str, Any], k: int) -> dict[str, Any]:
    """The few numbers ``dvc exp show`` shows (``metrics/psychophysics.json``); the rest stays in the summary.

    Args:
        summary: the dict of :func:`summary_metrics`.
        k: its map-subset size.

    Returns:
        ``null_draws``; ``subsets_k{k}`` -> top-k/bottom-k percentiles in the null as in the paper, on the
        Nyquist-safe range and gain-normalised; ``topk_pct_by_criterion`` -> ``c{level}`` -> top-k
        percentile; ``log_corr`` -> the plain and VFSS-weighted VGG distances on both ranges.
    """
    subsets = summary[f"subsets_k{k}"]
    distances = summary["distances"]
    return {
        "null_draws": summary["null_draws"],
        f"subsets_k{k}": {
            f"{selection}_pct{suffix}": subsets[condition][f"{selection}_percentile"]
            for condition, suffix in (
                ("main", ""),
                ("nyquist_safe", "_nyquist_safe"),
                ("gain_normalised", "_gain_norm"),
            )
            for selection in ("topk", "bottomk")
        },
        "topk_pct_by_criterion": {
            level: values["topk_percentile"] for level, values in summary["criterion_sweep"].items()
        },
        "log_corr": {
            f"{name}{suffix}": distances[name][key]
            for name in ("vgg", "vfss")
            if name in distances
            for key, suffix in (("full", ""), ("nyquist_safe", "_nyquist_safe"))
        },
    }


def geometry_metrics(sweep: pd.DataFrame, csf: str, as_run: float, background: str = "grey") -> dict[str, Any]:
    """The px/deg sensitivity analysis for ``summary.json``: each distance's log-correlation per geometry.

    Args:
        sweep: the frame of :func:`~psychovis.psychophysics.thresholds.geometry_sweep`.
        csf: the human CSF.
        as_run: the geometry the stimuli were rendered at.
        background: the background read.

    Returns:
        ``px_per_degree_as_run``, ``log_correlation`` (distance -> ``"<p>ppd"`` -> value) and
        ``sign_changes``: the distances whose correlation changes sign across the sweep.
    """
    rows = sweep[(sweep["csf"] == csf) & (sweep["background"] == background)]
    correlations: dict[str, dict[str, float | None]] = {}
    sign_changes = []
    for distance, curve in rows.groupby("distance", sort=False):
        curve = curve.sort_values("px_per_degree")
        pairs = zip(curve["px_per_degree"], curve["log_correlation"], strict=True)
        correlations[str(distance)] = {f"{ppd:g}ppd": json_number(value, 4) for ppd, value in pairs}
        signs = {value > 0 for value in curve["log_correlation"] if value == value and value != 0}
        if len(signs) == 2:
            sign_changes.append(str(distance))
    return {
        "px_per_degree_as_run": json_number(as_run, 4),
        "csf": csf,
        "background": background,
        "log_correlation": correlations,
        "sign_changes": sign_changes,
    }
