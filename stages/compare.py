"""Stage `compare`: is each SR method better than the baselines? Paired bootstrap differences per judge.

Every method's per-(seed, image) score is paired with each baseline's on the same seed and image;
the mean difference (positive = the method is better), its percentile bootstrap interval and the
share of pairs won make one row per method, baseline and judge, with a verdict: better, worse,
or no detectable difference.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

from collections.abc import Mapping
from typing import Any

import pandas as pd

from psychovis import io
from psychovis.pipeline.inputs import read_input
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.sr import figures as sr_figures
from psychovis.statistics import SCORE_COLUMNS, compare_metrics, flat_metrics, paired_differences

PER_IMAGE = "data/evaluate/per_image.parquet"
OUT = "data/compare"
VERDICT_MARKS = {"better": "+", "worse": "-", "no detectable difference": "="}


def judge_directions() -> dict[str, bool]:
    """Judge name -> whether a higher value is better, from the judges the `evaluate` stage scores with."""
    from psychovis.sr.judges import JUDGES  # imported here so that the comparison itself can run without it

    return {name: bool(judge.higher_is_better) for name, judge in JUDGES.items()}


def differences(
    scores: pd.DataFrame, p: Mapping[str, Any], higher_is_better: Mapping[str, bool], seed: int
) -> pd.DataFrame:
    """Every method against each baseline of ``p["baselines"]``, on one set of resamples (``seed``)."""
    tables = [
        paired_differences(
            scores,
            baseline,
            higher_is_better,
            resamples=p["resamples"],
            seed=seed,
            level=p["level"],
            cluster=p["cluster"],
        )
        for baseline in p["baselines"]
    ]
    return pd.concat(tables, ignore_index=True)


def headline(table: pd.DataFrame, baseline: str) -> dict[str, dict[str, int]]:
    """``{"vs_<baseline>": {method: judges better - judges worse}}`` against the first baseline (`dvc exp show`)."""
    chosen = table[table["baseline"] == baseline]
    net = (chosen["verdict"] == "better").astype(int) - (chosen["verdict"] == "worse").astype(int)
    per_method = net.groupby(chosen["method"], sort=False).sum()
    return {f"vs_{baseline}": {str(method): int(value) for method, value in per_method.items()}}


def compare(ctx: StageContext, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """The stage with the judges' directions given: read, compare, write, log; returns the table."""
    p = ctx.params["compare"]
    scores = read_input(PER_IMAGE, columns=list(SCORE_COLUMNS))
    # Checked before the MLflow run opens, so a bad baseline or a missing pair leaves no empty run.
    table = differences(scores, p, higher_is_better, ctx.params["base"]["seed"])
    with ctx.run() as run:
        io.write_parquet(table, f"{OUT}/differences.parquet")
        io.write_csv(table, f"{OUT}/differences.csv")
        metrics = compare_metrics(table)
        io.write_json(metrics, f"{OUT}/summary.json")  # the detail; the headline below is the DVC metric
        io.write_headline(headline(table, p["baselines"][0]), "metrics/compare.json")
        figure = io.save_figure(sr_figures.forest_plot(table), f"{OUT}/forest.png")
        run.log_metrics(flat_metrics(metrics))
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
    return table


def main(ctx: StageContext) -> None:
    compare(ctx, judge_directions())


if __name__ == "__main__":
    run_stage("compare", main, sections=["base", "compare"])
