"""Stage `evaluate`: every trained model and bicubic on the held-out images (PSNR, SSIM, LPIPS, bands)."""

from psychovis import io
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.sr import figures as sr_figures
from psychovis.sr.data import load_dataset
from psychovis.sr.evaluation import score, super_resolve_all
from psychovis.sr.training import load_checkpoint

OUT = "data/evaluate"


def main(ctx: StageContext) -> None:
    train_params, p = ctx.params["train"], ctx.params["evaluate"]
    device = ctx.device
    models = {name: load_checkpoint(f"data/models/{name}.pt", device)[0] for name in p["models"]}
    _, test_images = load_dataset(train_params["image_dir"], train_params["test_images"], train_params["crop_size"])
    with ctx.run() as run:
        run.set_tags({"test_images": ",".join(test_images)})
        references, outputs = super_resolve_all(models, test_images, train_params["scale"], p["max_size"], device)
        per_image, per_band = score(references, outputs, p["border"], p["frequency_bands"], device)
        io.write_parquet(per_image, f"{OUT}/per_image.parquet")
        io.write_parquet(per_band, f"{OUT}/per_band.parquet")
        summary = per_image.groupby("method", sort=False)[["psnr_y", "ssim_y", "lpips_vgg"]].mean()
        metrics = {
            # A perfect reconstruction has infinite PSNR: JSON gets null rather than Infinity.
            method: {metric: io.json_number(value) for metric, value in row.items()}
            for method, row in summary.iterrows()
        }
        io.write_json(metrics, "metrics/evaluate.json")
        bands = per_band.groupby(["method", "band"], sort=False, as_index=False).agg(
            low_cpp=("low_cpp", "first"),
            high_cpp=("high_cpp", "first"),
            relative_error_db=("relative_error_db", "mean"),
        )
        io.write_csv(bands, f"{OUT}/bands.csv")
        figures = [
            io.save_figure(sr_figures.comparison_crops(references, outputs, p["figure_crop"]), f"{OUT}/comparison.png"),
            io.save_figure(sr_figures.band_errors(per_band), f"{OUT}/bands.png"),
        ]
        for method, values in metrics.items():
            run.log_metrics({f"{method}.{metric}": value for metric, value in values.items() if value is not None})
        for figure in figures:
            run.log_artifact(figure, "figures")
    print(summary.round(4).to_string())


if __name__ == "__main__":
    run_stage("evaluate", main, sections=["base", "train", "evaluate"])
