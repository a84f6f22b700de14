"""Stage `human_judgement`: do the distances agree with people on TID2013, KADID-10k and BAPPS?

Runs only on data sets whose local copy ``params.yaml: human_judgement`` points at (they cannot
be downloaded here); with no path set it writes empty-but-valid outputs and a ``skipped`` metrics
file, so ``dvc repro`` passes by default. Each distance (pixel MSE, plain VGG, VFSS-weighted,
top-/bottom-/random-k VFSS maps, LPIPS) is scored by rank correlation with MOS (TID2013,
KADID-10k) and 2AFC agreement (BAPPS), with bootstrap CIs, and the map-subset curve asks whether
the k top-VFSS maps agree better with people than the k bottom or k random ones.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import time
from pathlib import Path

import pandas as pd

from psychovis import human_judgement as hj
from psychovis import io
from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.human_judgement import figures as plots
from psychovis.names import DATASETS
from psychovis.pipeline.distance_inputs import load_distances
from psychovis.pipeline.runner import StageContext, run_stage

OUT = "data/human_judgement"
METRICS = "metrics/human_judgement.json"  # the headline (`dvc exp show`)
DETAIL = f"{OUT}/summary.json"  # every data set, distance and interval
HEADLINE_DISTANCES = ("vgg", "vfss", "lpips_vgg")
SKIPPED = "no dataset path set in params.yaml human_judgement (tid2013, kadid10k, bapps)"


def headline(scored: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """``{"<data set>_<metric>": {distance: score}}``: each data set's first metric, for the key distances.

    BAPPS subsets (``bapps/cnn``, ...) stay in the detail file; their pooled ``bapps`` row is the headline.
    """
    rows = scored[scored["distance"].isin(HEADLINE_DISTANCES) & ~scored["dataset"].str.contains("/")]
    result: dict[str, dict[str, float | None]] = {}
    for dataset, frame in rows.groupby("dataset", sort=False):
        metric = frame["metric"].iloc[0]
        chosen = frame[frame["metric"] == metric]
        result[f"{dataset}_{metric}"] = {
            str(d): io.json_number(v, 4) for d, v in zip(chosen["distance"], chosen["value"], strict=True)
        }
    return result


def write_skipped() -> None:
    """The outputs of a run with no data set: empty tables, message figures, a ``skipped`` metrics file."""
    io.write_parquet(hj.empty_scores(), f"{OUT}/scores.parquet")
    io.write_parquet(hj.empty_subsets(), f"{OUT}/subsets.parquet")
    io.save_figure(plots.message_figure(f"skipped: {SKIPPED}"), f"{OUT}/scores.png")
    io.save_figure(plots.message_figure(f"skipped: {SKIPPED}"), f"{OUT}/subsets.png")
    io.write_json({"skipped": SKIPPED}, DETAIL)
    io.write_json({"skipped": SKIPPED}, METRICS)
    print(f"human_judgement: skipped: {SKIPPED}")


def read_datasets(p: dict, root: Path, seed: int = 0) -> dict:
    """Each data set whose path is set, read from its public layout (relative paths: from the repo root)."""
    frames = {}
    for name in DATASETS:
        if p[name] is None:
            continue
        path = Path(p[name]).expanduser()
        path = path if path.is_absolute() else root / path
        if name == "bapps":
            frame = hj.read_bapps_2afc(path, p["bapps_subsets"], p["bapps_split"])
        else:
            frame = hj.READERS[name](path)
        frames[name] = hj.subsample(frame, p["max_pairs"], seed=seed)
    return frames


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["human_judgement"]
    if all(p[name] is None for name in DATASETS):
        write_skipped()
        return
    datasets = read_datasets(p, ctx.root, base["seed"])  # a wrong path fails here, before any network is built
    device = ctx.device
    layers = resolve_layers(backbone_spec(base["backbone"]), p["layers"], key="human_judgement.layers")
    sizes = ", ".join(f"{name}: {len(frame)}" for name, frame in datasets.items())
    print(f"human_judgement: scoring {sizes} pairs/triplets on {device}")

    def progress(name: str, done: int, total: int) -> None:
        if done == total or done * 10 // total != (done - p["batch_size"]) * 10 // total:
            print(f"  {name}: {done}/{total} pairs", flush=True)

    distances, scores = load_distances("human_judgement", p, base, layers)
    with ctx.run() as run:
        started = time.perf_counter()
        seeds = [base["seed"] + offset for offset in range(p["subset_seeds"])]
        scored, subsets = hj.evaluate(
            datasets,
            distances,
            scores,
            layers,
            p["size"],
            p["batch_size"],
            p["bootstrap"],
            p["subset_ks"],
            seeds,
            seed=base["seed"],
            device=device,
            backbone=base["backbone"],
            progress=progress,
        )
        summary = hj.subset_summary(subsets)
        elapsed = time.perf_counter() - started

        io.write_parquet(scored, f"{OUT}/scores.parquet")
        io.write_parquet(subsets, f"{OUT}/subsets.parquet")
        metrics = hj.summary_metrics(scored)
        metrics["subsets"] = {
            f"{row.dataset}.{row.selection}_k{row.k}": {
                "mean": io.json_number(row.mean),
                "std": io.json_number(row.std),
            }
            for row in summary.itertuples(index=False)
        }
        io.write_json(metrics, DETAIL)
        io.write_headline(headline(scored), METRICS)
        figures = [
            io.save_figure(plots.scores_figure(scored), f"{OUT}/scores.png"),
            io.save_figure(plots.subsets_figure(summary), f"{OUT}/subsets.png"),
        ]
        flat = {"elapsed_s": elapsed}
        for row in scored.itertuples(index=False):
            flat[f"{row.dataset}.{row.distance}.{row.metric}"] = row.value
        run.log_metrics({key.replace("/", "."): value for key, value in flat.items()})
        for figure in figures:
            run.log_artifact(figure, "figures")
    print(scored.round(3).to_string(index=False))
    print(f"human_judgement: {len(scored)} scores and {len(subsets)} map subsets in {elapsed:.0f} s")


if __name__ == "__main__":
    run_stage("human_judgement", main)
