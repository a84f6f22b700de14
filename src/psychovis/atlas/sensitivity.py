"""How much VFSS and its weights depend on the CSF model and viewing geometry; agreement with LPIPS heads."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from psychovis.atlas.fit import REFERENCE_CSF, REFERENCE_MAPPING
from psychovis.atlas.stimuli import cpd_per_cpp
from psychovis.csf import contrast_sensitivity
from psychovis.errors import DataError
from psychovis.vfss import l1_weights, vfss_scores


@dataclass(frozen=True)
class Variant:
    """One (CSF model, frequency mapping) choice; ``cpd_per_cpp`` is the mapping's one number."""

    csf: str
    mapping: str
    cpd_per_cpp: float

    @property
    def name(self) -> str:
        return f"{self.csf}|{self.mapping}"


def sensitivity_variants(
    csfs: Sequence[str],
    mappings: Sequence[str],
    pixels_per_degree: Sequence[float] | None = None,
    viewing_distance_in: float = 103.35,
    pixels_per_inch: float = 89.7,
) -> list[Variant]:
    """Every CSF x mapping variant; the paper default (code-form Mannos-Sakrison, ``paper``) first.

    ``physical`` is labelled with its pixels per degree; each extra ``pixels_per_degree`` adds a
    physical geometry ``physical@<ppd>ppd``.
    """
    geometries: list[tuple[str, float]] = []
    for mapping in mappings:
        factor = cpd_per_cpp(mapping, viewing_distance_in, pixels_per_inch)
        geometries.append((mapping if mapping == "paper" else f"physical@{factor:.1f}ppd", factor))
    geometries += [(f"physical@{ppd:g}ppd", float(ppd)) for ppd in pixels_per_degree or []]
    reference_factor = cpd_per_cpp("paper", viewing_distance_in, pixels_per_inch)
    variants = [Variant(REFERENCE_CSF, REFERENCE_MAPPING, reference_factor)]
    for csf in csfs:
        for mapping, factor in geometries:
            variant = Variant(csf, mapping, factor)
            if variant.name not in {v.name for v in variants}:
                variants.append(variant)
    return variants


def _rank_rows(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, axis=1)


def _corr_rows(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(values) if values.shape[1] > 1 else np.full((len(values), len(values)), np.nan)


def sensitivity_table(
    curves: np.ndarray,
    frequency_cpp: np.ndarray,
    layer: np.ndarray,
    variants: Sequence[Variant],
    top_k: int = 64,
) -> pd.DataFrame:
    """How much VFSS and the L1 weights depend on the CSF model and the geometry, per layer.

    For every pair of variants (``reference``, ``variant``) and every layer (plus ``all``, across
    all maps): ``spearman_vfss`` (rank correlation of VFSS across maps; equal to the rank
    correlation of the layer's L1 weights, which are VFSS / sum|VFSS|), ``pearson_weights``
    (linear correlation of the L1 weights), ``weight_distance`` (total variation
    ``0.5 sum |w_a - w_b|``, 0 = identical, 1 = disjoint) and ``topk_overlap`` (share of the
    reference's top-k maps also in the variant's top-k). The diagonal is 1, 1, 0, 1.
    """
    curves = np.asarray(curves, dtype=np.float64)
    scores = np.stack([vfss_scores(curves, frequency_cpp * v.cpd_per_cpp, v.csf) for v in variants])  # (V, M)
    names = [v.name for v in variants]
    layer = np.asarray(layer).astype(str)
    groups = [(name, layer == name) for name in pd.unique(layer)] + [("all", np.ones(len(layer), dtype=bool))]
    frames = []
    for group, mask in groups:
        chosen = scores[:, mask]
        weights = np.stack([l1_weights(row) for row in chosen])
        spearman = _corr_rows(_rank_rows(chosen))
        pearson = _corr_rows(weights)
        distance = 0.5 * np.abs(weights[:, None, :] - weights[None, :, :]).sum(axis=2)
        k = min(top_k, chosen.shape[1])
        top = np.argsort(-chosen, axis=1, kind="stable")[:, :k]
        member = np.zeros_like(chosen, dtype=bool)
        np.put_along_axis(member, top, True, axis=1)
        overlap = (member[:, None, :] & member[None, :, :]).sum(axis=2) / k
        a, b = np.meshgrid(np.arange(len(variants)), np.arange(len(variants)), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "layer": group,
                    "maps": int(mask.sum()),
                    "reference": np.array(names)[a.ravel()],
                    "variant": np.array(names)[b.ravel()],
                    "spearman_vfss": spearman.ravel(),
                    "pearson_weights": pearson.ravel(),
                    "weight_distance": distance.ravel(),
                    "topk_overlap": overlap.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan, int(ok.sum())
    return float(stats.spearmanr(x[ok], y[ok]).statistic), float(stats.pearsonr(x[ok], y[ok]).statistic), int(ok.sum())


def lpips_agreement(table: pd.DataFrame, heads: Mapping[str, np.ndarray], heads_name: str = "") -> pd.DataFrame:
    """Per LPIPS layer: correlation between each map's VFSS (and other tuning properties) and its LPIPS weight.

    Args:
        table: the per-map atlas table (:func:`fit_atlas`), with ``layer, channel, vfss, ...``.
        heads: layer -> LPIPS linear weight per channel (:func:`psychovis.backbones.lpips_heads`).
        heads_name: which backbone's heads (recorded in the output).

    Returns:
        One row per LPIPS layer present in ``table``: ``spearman_vfss``, ``pearson_vfss`` (all
        maps), and Spearman correlations of the LPIPS weight with ``peak_response`` (a magnitude
        control), ``preferred_frequency_cpp`` and ``circular_variance`` (reliable maps only).
    """
    rows = []
    for layer, weights in heads.items():
        maps = table[table["layer"] == layer].sort_values("channel")
        if maps.empty:
            continue
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != len(maps) or not np.array_equal(maps["channel"].to_numpy(), np.arange(len(weights))):
            raise DataError(f"LPIPS head of {layer} has {len(weights)} weights for {len(maps)} probed maps")
        reliable = maps["reliable"].to_numpy()
        s_vfss, p_vfss, n = _correlations(maps["vfss"].to_numpy(dtype=np.float64), weights)
        s_peak, _, _ = _correlations(maps["peak_response"].to_numpy(dtype=np.float64), weights)
        s_freq, _, _ = _correlations(
            np.where(reliable, maps["preferred_frequency_cpp"].to_numpy(dtype=np.float64), np.nan), weights
        )
        s_cv, _, _ = _correlations(
            np.where(reliable, maps["circular_variance"].to_numpy(dtype=np.float64), np.nan), weights
        )
        rows.append(
            {
                "layer": layer,
                "heads": heads_name,
                "maps": n,
                "spearman_vfss": s_vfss,
                "pearson_vfss": p_vfss,
                "spearman_peak_response": s_peak,
                "spearman_preferred_frequency": s_freq,
                "spearman_circular_variance": s_cv,
            }
        )
    return pd.DataFrame(rows)


def csf_curve(frequency_cpd: np.ndarray, csf: str = REFERENCE_CSF) -> np.ndarray:
    """The CSF on a frequency axis, normalised to peak 1 (for overlays)."""
    sensitivity = contrast_sensitivity(frequency_cpd, csf)
    top = np.nanmax(sensitivity)
    return sensitivity / top if top > 0 else sensitivity
