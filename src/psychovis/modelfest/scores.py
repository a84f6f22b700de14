"""Scores of observers against the ModelFest people: RMS dB, correlation, bootstrap CIs, human band.

Every observer gets one free criterion per person (:func:`~psychovis.modelfest.observers.fit_criteria`).
The headline is the RMS error in dB pooled over people and stimuli; its 95 % interval resamples
people and stimuli together (a two-way percentile bootstrap: each resample draws 16 people and 43
stimuli with replacement, refits every criterion, and recomputes the pooled RMS). The same
resamples serve every observer and the human band, so their intervals come from one set of worlds.

- **human band**: each person against the mean of the other 15, with one free offset (what a
  criterion is for a model), pooled RMS and the range over people;
- **noise floor of the mean**: the standard error of the 16-person mean threshold per stimulus
  (after removing each person's overall offset), RMS over stimuli: no observer can predict the
  mean better than this on average;
- **repeat floor**: the standard error of one person's mean of 4 repeats, RMS over people and stimuli.

References:
    B. Efron, R. J. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from psychovis.modelfest.observers import CriterionFit, Curves, fit_all, fit_criteria, model_db, squared_errors
from psychovis.modelfest.stimuli import FAMILIES
from psychovis.statistics import CI_LEVEL, bootstrap_counts, percentile_ci

PUBLISHED_ANCHORS_DB: dict[str, tuple[float, str]] = {
    "castleCSF": (2.48, "Ashraf, Mantiuk et al. 2024, castleCSF (fit to ModelFest, RMS error)"),
    "Barten 1999": (2.54, "Barten 1999 CSF fitted to ModelFest, as reported by Ashraf, Mantiuk et al. 2024"),
    "stelaCSF": (2.55, "Mantiuk et al. 2022 stelaCSF fitted to ModelFest, as reported by Ashraf, Mantiuk et al. 2024"),
}
"""Whole-CSF models with many fitted parameters, RMS error on the ModelFest mean (dB)."""


def human_band(people: np.ndarray) -> np.ndarray:
    """Each person's RMS dB error against the mean of the other people, with one fitted offset."""
    n = people.shape[0]
    others = (people.sum(axis=0, keepdims=True) - people) / (n - 1)
    residual = people - others
    residual -= residual.mean(axis=1, keepdims=True)
    return np.sqrt((residual**2).mean(axis=1))


def noise_floor_of_mean(people: np.ndarray) -> float:
    """RMS over stimuli of the standard error of the mean threshold (people's offsets removed), dB."""
    centred = people - people.mean(axis=1, keepdims=True)
    se = centred.std(axis=0, ddof=1) / np.sqrt(people.shape[0])
    return float(np.sqrt((se**2).mean()))


def repeat_floor(repeats: np.ndarray) -> float:
    """RMS over people and stimuli of the standard error of a person's mean of repeats (dB)."""
    se = repeats.std(axis=2, ddof=1) / np.sqrt(repeats.shape[2])
    return float(np.sqrt((se**2).mean()))


def _pooled_rms(sq: np.ndarray, person_counts: np.ndarray, stimulus_total: np.ndarray) -> np.ndarray:
    """Pooled RMS from per-person best squared-error sums ``(B, P)`` and resample counts."""
    return np.sqrt((sq * person_counts).sum(axis=1) / (person_counts.sum(axis=1) * stimulus_total))


def bootstrap_plan(n_people: int, n_stimuli: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(person counts (B, P), stimulus counts (B, S))`` of a two-way bootstrap."""
    return bootstrap_counts(n_people, resamples, seed), bootstrap_counts(n_stimuli, resamples, seed + 1)


def observer_rms_samples(
    curves: Curves, people: np.ndarray, plan: tuple[np.ndarray, np.ndarray], n_grid: int = 400
) -> np.ndarray:
    """The pooled RMS dB of one observer in every bootstrap world (criteria refitted in each)."""
    person_counts, stimulus_counts = plan
    _, model = model_db(curves, n_grid)
    best = np.stack([squared_errors(model, people, w).min(axis=0) for w in stimulus_counts])  # (B, P)
    return _pooled_rms(best, person_counts, stimulus_counts.sum(axis=1))


def human_rms_samples(people: np.ndarray, plan: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The pooled human-band RMS in every bootstrap world (offsets refitted on the drawn stimuli)."""
    person_counts, stimulus_counts = plan
    n = people.shape[0]
    others = (people.sum(axis=0, keepdims=True) - people) / (n - 1)
    residual = people - others  # (P, S)
    out = np.empty(len(stimulus_counts))
    for b, w in enumerate(stimulus_counts):
        mean = (residual * w).sum(axis=1) / w.sum()
        sq = ((residual - mean[:, None]) ** 2 * w).sum(axis=1)
        out[b] = np.sqrt((sq * person_counts[b]).sum() / (person_counts[b].sum() * w.sum()))
    return out


def family_rms(fit: CriterionFit, people: np.ndarray) -> dict[str, float]:
    """Pooled RMS dB per stimulus family at the headline criteria."""
    out = {}
    for family, members in FAMILIES.items():
        index = np.asarray(members) - 1
        out[family] = float(np.sqrt(((fit.thresholds_db[:, index] - people[:, index]) ** 2).mean()))
    return out


def held_out_rms(curves: Curves, people: np.ndarray, train_families: Sequence[str]) -> float:
    """Pooled RMS on the stimuli outside ``train_families``, criteria fitted on those families only."""
    train = np.concatenate([np.asarray(FAMILIES[f]) - 1 for f in train_families])
    test = np.setdiff1d(np.arange(people.shape[1]), train)
    fit = fit_criteria(curves, people, train)
    return float(np.sqrt((fit.errors(people, test) ** 2).mean()))


def leave_one_family_out_rms(curves: Curves, people: np.ndarray) -> float:
    """Pooled RMS with each family's criteria fitted on the other families (cross-validated)."""
    squares, count = 0.0, 0
    for members in FAMILIES.values():
        test = np.asarray(members) - 1
        train = np.setdiff1d(np.arange(people.shape[1]), test)
        errors = fit_criteria(curves, people, train).errors(people, test)
        squares += float((errors**2).sum())
        count += errors.size
    return float(np.sqrt(squares / count))


def score_observers(
    observers: Mapping[str, Curves],
    people: np.ndarray,
    repeats: np.ndarray,
    kinds: Mapping[str, str],
    resamples: int = 500,
    seed: int = 0,
    train_families: Sequence[str] = ("gabor_csf",),
    level: float = CI_LEVEL,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Score every observer, the human band and the floors.

    Args:
        observers: name -> curves.
        people: ``(P, S)`` mean thresholds (dB) per person.
        repeats: ``(P, S, R)`` thresholds per repeat.
        kinds: name -> ``classical`` / ``deep`` (the ladder's groups).
        resamples: bootstrap worlds (0: no intervals).
        seed: bootstrap seed.
        train_families: families the held-out criteria are fitted on (scored on the others).
        level: confidence level.

    Returns:
        ``(ladder, per_stimulus, extra)``: one row per observer (and ``human``) with ``rms_db``,
        ``ci_low``, ``ci_high``, ``rms_mean_db`` (criterion fitted to the mean person),
        ``pearson_r`` (model vs mean thresholds), ``held_out_rms_db``, ``cv_family_rms_db`` and
        ``rms_<family>``; the model thresholds per stimulus at the mean person's criterion; and the
        floors and band.
    """
    mean_person = people.mean(axis=0, keepdims=True)
    plan = bootstrap_plan(people.shape[0], people.shape[1], resamples, seed) if resamples else None
    rows, per_stimulus = [], []
    for name, curves in observers.items():
        fit = fit_all(curves, people)
        rms = float(np.sqrt(((fit.thresholds_db - people) ** 2).mean()))
        mean_fit = fit_all(curves, mean_person)
        mean_rms = float(np.sqrt(((mean_fit.thresholds_db - mean_person) ** 2).mean()))
        model = mean_fit.thresholds_db[0]
        r = float(np.corrcoef(model, mean_person[0])[0, 1]) if np.ptp(model) > 0 else float("nan")
        low, high = percentile_ci(observer_rms_samples(curves, people, plan), level) if plan else (np.nan, np.nan)
        row = {
            "observer": name,
            "kind": kinds.get(name, "deep"),
            "rms_db": rms,
            "ci_low": low,
            "ci_high": high,
            "rms_mean_db": mean_rms,
            "pearson_r": r,
            "held_out_rms_db": held_out_rms(curves, people, train_families),
            "cv_family_rms_db": leave_one_family_out_rms(curves, people),
        }
        row.update({f"rms_{family}": value for family, value in family_rms(fit, people).items()})
        rows.append(row)
        per_stimulus.append(
            pd.DataFrame({"observer": name, "stimulus": np.arange(1, people.shape[1] + 1), "threshold_db": model})
        )
    band = human_band(people)
    human = float(np.sqrt((band**2).mean()))
    low, high = percentile_ci(human_rms_samples(people, plan), level) if plan else (np.nan, np.nan)
    rows.append({"observer": "human", "kind": "human", "rms_db": human, "ci_low": low, "ci_high": high})
    ladder = pd.DataFrame(rows)
    extra = {
        "human_band_db": {
            "pooled": human,
            "min": float(band.min()),
            "max": float(band.max()),
            "per_person": band.tolist(),
        },
        "noise_floor_of_mean_db": noise_floor_of_mean(people),
        "repeat_floor_db": repeat_floor(repeats),
        "resamples": int(resamples),
        "level": float(level),
        "train_families": list(train_families),
    }
    return ladder, pd.concat(per_stimulus, ignore_index=True), extra
