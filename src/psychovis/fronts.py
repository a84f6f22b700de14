"""Trade-off fronts: compare perceptual losses at matched fidelity, not at one perceptual weight.

A perceptual loss trades fidelity (PSNR-Y) for perceptual quality (e.g. LPIPS-Alex) through its
weight (``train.perceptual_weight``). A weighting that only acts as a weaker perceptual term moves
*along* the plain VGG loss's front; a better weighting lies *beyond* it (a lower LPIPS-Alex at the
same PSNR-Y). Each loss's front is its points over the swept weights (the shared warm start
included), linearly interpolated in fidelity; two fronts are compared on a grid over the fidelity
range both cover, image by image, and the images are the unit of inference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from psychovis.errors import ParamsError
from psychovis.statistics import bootstrap_indices, paired_t_p, percentile_ci

FRONT_COLUMNS = ("loss", "weight", "image")
"""The identifying columns of a fronts table (one row per loss, weight and image; seeds averaged)."""


def interpolate_front(fidelity: np.ndarray, quality: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The front's quality at fidelities ``at`` (linear in fidelity; NaN outside the front's range)."""
    fidelity, quality = np.asarray(fidelity, np.float64), np.asarray(quality, np.float64)
    order = np.argsort(fidelity, kind="stable")
    return np.interp(at, fidelity[order], quality[order], left=math.nan, right=math.nan)


def matched_difference(
    front: tuple[np.ndarray, np.ndarray],
    baseline: tuple[np.ndarray, np.ndarray],
    points: int = 11,
    lower_is_better: bool = True,
) -> float:
    """How much better ``front`` is than ``baseline`` at matched fidelity, averaged over their common range.

    Args:
        front: ``(fidelity, quality)`` points of one loss (e.g. PSNR-Y and LPIPS-Alex per weight).
        baseline: the same for the baseline loss.
        points: grid points over the fidelity range both fronts cover.
        lower_is_better: the quality measure's direction (True for LPIPS-Alex).

    Returns:
        Mean of ``baseline - front`` quality over the grid (``front - baseline`` when higher is
        better): positive = ``front`` is better at the same fidelity. NaN when the fronts' fidelity
        ranges do not overlap.
    """
    low = max(float(np.min(front[0])), float(np.min(baseline[0])))
    high = min(float(np.max(front[0])), float(np.max(baseline[0])))
    if not high > low:
        return math.nan
    grid = np.linspace(low, high, points)
    ours, theirs = interpolate_front(*front, grid), interpolate_front(*baseline, grid)
    return float(np.mean(theirs - ours if lower_is_better else ours - theirs))


def compare_fronts(
    table: pd.DataFrame,
    baseline: str,
    fidelity: str = "psnr_y",
    quality: str = "lpips_alex",
    lower_is_better: bool = True,
    points: int = 11,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every loss's front against ``baseline``'s, per image, with images as the unit of inference.

    Args:
        table: one row per :data:`FRONT_COLUMNS` (seeds averaged), with ``fidelity`` and ``quality``
            columns. The warm start belongs to every front: give it as a row of each loss (weight 0).
        baseline: the loss compared against (e.g. ``vgg``).
        fidelity, quality, lower_is_better: the two judges and the quality judge's direction.
        points: grid points of :func:`matched_difference`.
        resamples, seed, level: the percentile bootstrap over images.

    Returns:
        One row per other loss: ``images`` (with overlapping fronts), ``difference`` (mean over images,
        positive = better than the baseline at matched fidelity), ``low``/``high`` (bootstrap CI over
        images), ``p`` (paired t on the per-image differences) and ``per_image`` (a dict).

    Raises:
        ParamsError: missing columns, or ``baseline`` not in the table.
    """
    missing = [column for column in (*FRONT_COLUMNS, fidelity, quality) if column not in table]
    if missing:
        raise ParamsError(f"the fronts table lacks columns {missing}")
    if baseline not in set(table["loss"]):
        raise ParamsError(f"baseline {baseline!r} is not a loss of the table: {sorted(set(table['loss']))}")
    rows = []
    for loss in [name for name in dict.fromkeys(table["loss"]) if name != baseline]:
        per_image: dict[str, float] = {}
        for image, points_of_image in table.groupby("image", sort=False):
            ours = points_of_image[points_of_image["loss"] == loss]
            theirs = points_of_image[points_of_image["loss"] == baseline]
            if len(ours) and len(theirs):
                per_image[str(image)] = matched_difference(
                    (ours[fidelity].to_numpy(), ours[quality].to_numpy()),
                    (theirs[fidelity].to_numpy(), theirs[quality].to_numpy()),
                    points,
                    lower_is_better,
                )
        values = np.array([value for value in per_image.values() if math.isfinite(value)])
        if values.size:
            boot = values[bootstrap_indices(values.size, resamples, seed)].mean(axis=1)
            low, high = percentile_ci(boot, level)
        else:
            low = high = math.nan
        rows.append(
            {
                "loss": loss,
                "baseline": baseline,
                "images": int(values.size),
                "difference": float(values.mean()) if values.size else math.nan,
                "low": low,
                "high": high,
                "p": paired_t_p(values),
                "per_image": per_image,
            }
        )
    return pd.DataFrame(rows)
