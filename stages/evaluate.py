"""Stage `evaluate`: bicubic, the warm start and every fine-tuned model on the held-out images, every judge."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

from psychovis import io
from psychovis.errors import ParamsError
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import WARM_START, model_path
from psychovis.sr import figures as sr_figures
from psychovis.sr.data import load_dataset
from psychovis.sr.evaluation import (
    BICUBIC,
    ScoreCache,
    file_sha256,
    reference_images,
    score,
    summary,
    super_resolve_all,
)
from psychovis.sr.training import load_models

OUT = "data/evaluate"
CACHE = f"{OUT}/cache"  # a persistent DVC output: each model's scores, keyed by its checkpoint's sha256


HEADLINE_JUDGES = ("psnr_y", "lpips_vgg")  # one fidelity and one perceptual judge per trained method


def headline(metrics: dict[str, dict[str, float | None]], judges: list[str]) -> dict[str, dict[str, float | None]]:
    """``{judge: {method: mean}}`` for two judges (the headline ones if scored, else the first two)."""
    chosen = [judge for judge in HEADLINE_JUDGES if judge in judges] or judges[:2]
    chosen = (chosen + [judge for judge in judges if judge not in chosen])[:2]
    return {judge: {method: values.get(judge) for method, values in metrics.items()} for judge in chosen}


def main(ctx: StageContext) -> None:
    train, p = ctx.params["train"], ctx.params["evaluate"]
    device = ctx.device
    if p["figure_seed"] not in train["seeds"]:
        raise ParamsError(f"evaluate.figure_seed {p['figure_seed']} is not one of train.seeds {train['seeds']}")
    # pixel (L1 continued) always runs (dvc.yaml stage train_pixel); the other baselines are listed
    # each seed's warm start is scored too (the reference every fine-tune moved from)
    listed = [*train["baseline_losses"], *train["weighted_losses"], *train["geometry_losses"]]
    losses = list(dict.fromkeys([WARM_START, "pixel", *listed]))
    paths = {(loss, seed): model_path(loss, seed) for loss in losses for seed in train["seeds"]}
    # every checkpoint's scale checked before any model runs (one of another scale failed only at scoring)
    models = load_models(paths, train["scale"], device)
    _, test_images = load_dataset(train["image_dir"], train["test_images"], train["crop_size"])
    identities = {key: file_sha256(path) for key, path in paths.items()}
    identities |= {(method, seed): method for method in (BICUBIC,) for seed in train["seeds"]}
    with ctx.run() as run:
        run.set_tags({"test_images": ",".join(test_images)})
        references = reference_images(test_images, train["scale"], p["max_size"])
        config = {"evaluate": p, "scale": train["scale"], "device": device.type}
        cache = ScoreCache(CACHE, config, references)
        # Models whose scores are cached are not run, except those the comparison figure shows.
        skip = {key for key in models if cache.has(identities[key]) and key[1] != p["figure_seed"]}
        references, outputs = super_resolve_all(models, test_images, train["scale"], p["max_size"], device, skip=skip)
        keys = [key for key in outputs if key[0] == BICUBIC] + list(models)
        per_image, per_band = score(
            references, outputs, p["judges"], train["scale"], p["border"], p["frequency_bands"], device,
            cache=cache, identities=identities, keys=keys,
        )  # fmt: skip
        print(f"evaluate: {len(set(cache.misses))} model(s) scored, {len(set(cache.hits))} read from {CACHE}")
        run.log_metrics({"models_scored": len(set(cache.misses)), "models_cached": len(set(cache.hits))})
        io.write_parquet(per_image, f"{OUT}/per_image.parquet")
        io.write_parquet(per_band, f"{OUT}/per_band.parquet")
        means = summary(per_image)
        # A perfect reconstruction has infinite PSNR: JSON gets null rather than Infinity.
        metrics = {
            method: {judge: io.json_number(value) for judge, value in row.items()} for method, row in means.iterrows()
        }
        io.write_json(metrics, f"{OUT}/scores.json")  # every judge; the headline below is the DVC metric
        io.write_headline(headline(metrics, p["judges"]), "metrics/evaluate.json", limit=2 * len(metrics))
        io.write_csv(means.reset_index(), f"{OUT}/summary.csv")
        bands = per_band.groupby(["method", "band"], sort=False, as_index=False).agg(
            low_cpp=("low_cpp", "first"),
            high_cpp=("high_cpp", "first"),
            relative_error_db=("relative_error_db", "mean"),
        )
        io.write_csv(bands, f"{OUT}/bands.csv")
        shown = {method: images for (method, seed), images in outputs.items() if seed == p["figure_seed"]}
        figures = [
            io.save_figure(sr_figures.comparison_crops(references, shown, p["figure_crop"]), f"{OUT}/comparison.png"),
            io.save_figure(sr_figures.band_errors(per_band), f"{OUT}/bands.png"),
        ]
        # One nested run per method, its judges as metrics: the MLflow UI compares methods as runs.
        for method, values in metrics.items():
            with run.child(f"evaluate@{method}", tags={"method": method}) as method_run:
                method_run.log_metrics({judge: value for judge, value in values.items() if value is not None})
        for figure in figures:
            run.log_artifact(figure, "figures")
    print(means.round(4).to_string())


if __name__ == "__main__":
    run_stage("evaluate", main)
