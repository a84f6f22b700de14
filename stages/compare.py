"""Stage `compare`: is each SR method better than the baselines? Paired bootstrap differences per judge.

Every method's per-(seed, image) score is paired with each baseline's on the same seed and image;
the mean difference (positive = the method is better), its percentile bootstrap interval and the
share of pairs won make one row per method, baseline and judge, with a verdict: better, worse,
or no detectable difference (``differences.csv``: pairs as the unit, conditional on the images).

The inference with the held-out **image** as the unit (``inference.csv``, ``inference.json``): a
hierarchical bootstrap (images, then the image's seed pairs), a paired t-test on the per-image
means with Holm's correction over methods x judges per baseline, a TOST against
``compare.equivalence_margin`` on the primary judge (``compare.primary_judge``, named in advance),
a rerun on scores shifted by the measured cross-machine drift that flags ``fragile`` verdicts, and
the power of the primary judge's test from the measured per-image SD.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from psychovis import io
from psychovis.pipeline.inputs import read_input
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.sr import figures as sr_figures
from psychovis.statistics import (
    CONDITIONS_ON,
    SCORE_COLUMNS,
    compare_metrics,
    flat_metrics,
    image_level_inference,
    min_sign_test_p,
    paired_differences,
)

PER_IMAGE = "data/evaluate/per_image.parquet"
OUT = "data/compare"
VERDICT_MARKS = {"better": "+", "worse": "-", "no detectable difference": "="}


def judge_directions() -> dict[str, bool]:
    """Judge name -> whether a higher value is better, from the judges the `evaluate` stage scores with."""
    from psychovis.registry import JUDGE_RECORDS  # torch-free

    return {name: record.higher_is_better for name, record in JUDGE_RECORDS.items()}


def per_baseline(
    compare_one: Callable[..., pd.DataFrame],
    scores: pd.DataFrame,
    baselines: Sequence[str],
    higher_is_better: Mapping[str, bool],
    **options: Any,
) -> pd.DataFrame:
    """``compare_one(scores, baseline, higher_is_better, **options)`` for each baseline, concatenated."""
    tables = [compare_one(scores, baseline, higher_is_better, **options) for baseline in baselines]
    return pd.concat(tables, ignore_index=True)


def differences(
    scores: pd.DataFrame, p: Mapping[str, Any], higher_is_better: Mapping[str, bool], seed: int
) -> pd.DataFrame:
    """Every method against each baseline of ``p["baselines"]``, on one set of resamples (``seed``)."""
    options = {"resamples": p["resamples"], "seed": seed, "level": p["level"], "cluster": p["cluster"]}
    return per_baseline(paired_differences, scores, p["baselines"], higher_is_better, **options)


def inference(
    scores: pd.DataFrame, p: Mapping[str, Any], higher_is_better: Mapping[str, bool], seed: int
) -> pd.DataFrame:
    """Every method against each baseline with images as the unit (:func:`image_level_inference`), one seed."""
    options = {
        "primary_judge": p["primary_judge"],
        "margin": p["equivalence_margin"],
        "drift": p["drift"],
        "drift_halfwidths": p["drift_halfwidths"],
        "resamples": p["resamples"],
        "seed": seed,
        "level": p["level"],
        "draws": p["drift_draws"],
    }
    return per_baseline(image_level_inference, scores, p["baselines"], higher_is_better, **options)


PRIMARY_KEYS = ("verdict", "mean", "ci_low", "ci_high", "p_holm", "tost_p", "fragile", "flip_rate", "sd_image")


def primary_summary(table: pd.DataFrame, p: Mapping[str, Any]) -> dict[str, Any]:
    """The primary judge's image-level verdicts, power and drift check, JSON-safe (``data/compare/inference.json``)."""
    primary = table[table["primary"]]
    n_images = int(primary["n_images"].max()) if len(primary) else 0
    comparisons = {
        f"{row.method}_vs_{row.baseline}": {
            key: (
                bool(getattr(row, key))
                if key == "fragile"
                else str(getattr(row, key))
                if key == "verdict"
                else io.json_number(getattr(row, key))
            )
            for key in PRIMARY_KEYS
        }
        for row in primary.itertuples(index=False)
    }
    sd = primary["sd_image"].median() if len(primary) else float("nan")
    power = primary["power_at_margin"].median() if len(primary) else float("nan")
    needed = primary["images_for_power"].dropna()
    return {
        "primary_judge": p["primary_judge"],
        "unit": "held-out image",
        "conditions_on": CONDITIONS_ON,
        "n_images": n_images,
        "min_sign_test_p": min_sign_test_p(n_images),
        "equivalence_margin": p["equivalence_margin"],
        "drift": p["drift"],
        "drift_halfwidths": p["drift_halfwidths"],
        "fragile": int(table["fragile"].sum()),
        "verdicts": len(table),
        "power": {
            "median_sd_image": io.json_number(sd),
            "median_power_at_margin": io.json_number(power),
            "median_images_for_80": math.ceil(needed.median()) if len(needed) else None,
        },
        "comparisons": comparisons,
    }


def headline(images: pd.DataFrame, primary_judge: str, baseline: str) -> dict[str, dict[str, Any]]:
    """The SR headline for `dvc exp show`: per method, the primary judge's gain over the first baseline.

    ``{"<judge>_vs_<baseline>": {method: mean paired difference}, "fragile_vs_<baseline>": {method: bool}}``:
    the image-level mean (positive = the method is better, in the judge's units), and whether a rerun at
    the measured cross-machine drift can flip its verdict (then a change of that size is noise).
    """
    rows = images[images["primary"] & (images["baseline"] == baseline)]
    return {
        f"{primary_judge}_vs_{baseline}": {str(row.method): float(row.mean) for row in rows.itertuples(index=False)},
        f"fragile_vs_{baseline}": {str(row.method): bool(row.fragile) for row in rows.itertuples(index=False)},
    }


def compare(ctx: StageContext, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """The stage with the judges' directions given: read, compare, write, log; returns the table."""
    p = ctx.params["compare"]
    scores = read_input(PER_IMAGE, columns=list(SCORE_COLUMNS))
    # Checked before the MLflow run opens, so a bad baseline or a missing pair leaves no empty run.
    table = differences(scores, p, higher_is_better, ctx.params["base"]["seed"])
    images = inference(scores, p, higher_is_better, ctx.params["base"]["seed"])
    with ctx.run() as run:
        io.write_parquet(table, f"{OUT}/differences.parquet")
        io.write_csv(table, f"{OUT}/differences.csv")
        metrics = compare_metrics(table)
        io.write_json(metrics, f"{OUT}/summary.json")  # the detail; the headline below is the DVC metric
        io.write_csv(images, f"{OUT}/inference.csv")
        primary = primary_summary(images, p)
        io.write_json(primary, f"{OUT}/inference.json")
        first = p["baselines"][0]
        gains = headline(images, p["primary_judge"], first)
        io.write_headline(gains, "metrics/compare.json", digits=5, limit=2 * images["method"].nunique())
        figure = io.save_figure(sr_figures.forest_plot(table), f"{OUT}/forest.png")
        run.log_metrics(flat_metrics(metrics))
        run.log_metrics(flat_metrics({"image_level": {"fragile": primary["fragile"], "power": primary["power"]}}))
        run.log_artifact(figure, "figures")
    comparisons = table["method"] + " vs " + table["baseline"]
    verdicts = (
        table.assign(comparison=comparisons, mark=table["verdict"].map(VERDICT_MARKS))
        .pivot(index="comparison", columns="judge", values="mark")
        .reindex(index=list(dict.fromkeys(comparisons)), columns=list(dict.fromkeys(table["judge"])))
    )
    print(verdicts.to_string())
    unit = "(seed, image) pairs" if p["cluster"] is None else f"{p['cluster']}s, then pairs within"
    print(
        f"compare: + better, - worse, = no detectable difference ({100 * p['level']:g} % percentile bootstrap CI, "
        f"{p['resamples']} resamples of {unit}; n = {int(table['n'].max()) if len(table) else 0} pairs)"
    )
    print(primary_lines(images, primary))
    return table


def primary_lines(images: pd.DataFrame, primary: Mapping[str, Any]) -> str:
    """The primary judge's image-level verdicts, one line each, then the unit, power and drift check."""
    rows = images[images["primary"]]
    lines = [
        f"  {row.method} vs {row.baseline}: {row.verdict} {row.mean:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}] "
        f"Holm p {row.p_holm:.3g}, TOST p {row.tost_p:.3g}{' FRAGILE' if row.fragile else ''}"
        for row in rows.itertuples(index=False)
    ]
    power = primary["power"]
    return "\n".join(
        [
            f"compare: {primary['primary_judge']} with images as the unit ({primary['n_images']} images; "
            f"conditional on {primary['conditions_on']}):",
            *lines,
            f"compare: power at margin {primary['equivalence_margin']:g}: median {power['median_power_at_margin']} "
            f"(per-image SD {power['median_sd_image']}; 80 % needs {power['median_images_for_80']} images); "
            f"{primary['fragile']} of {primary['verdicts']} verdicts fragile under drift {primary['drift']:g}",
        ]
    )


def main(ctx: StageContext) -> None:
    compare(ctx, judge_directions())


if __name__ == "__main__":
    run_stage("compare", main)
