"""Stage `tuning`: per-map tuning curve summary (preferred frequency, bandwidth, class)."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

from psychovis import io, plots, tuning
from psychovis.pipeline.inputs import load_probe_results
from psychovis.pipeline.runner import StageContext, run_stage

OUT = "data/tuning"


def main(ctx: StageContext) -> None:
    p = ctx.params["tuning"]
    features, stimuli = load_probe_results()
    with ctx.run() as run:
        curves = tuning.tuning_curves(features, stimuli)
        summary = tuning.summarize(curves, p["min_response"])
        per_layer = tuning.layer_summary(summary)
        io.write_parquet(summary, f"{OUT}/tuning.parquet")
        io.write_csv(per_layer, f"{OUT}/layers.csv")
        metrics = {
            row["layer"]: {
                "maps": int(row["maps"]),
                "share_band_pass": io.json_number(row["share_band_pass"], 4),
                "median_preferred_frequency_cpd": io.json_number(row["median_preferred_frequency_cpd"], 4),
            }
            for _, row in per_layer.iterrows()
        }
        metrics["classes"] = {name: int((summary["tuning_class"] == name).sum()) for name in tuning.TUNING_CLASSES}
        edge = tuning.nyquist_edge(summary)
        metrics["nyquist_edge"] = {key: io.json_number(value, 4) for key, value in edge.items()}
        io.write_json(metrics, f"{OUT}/summary.json")  # per layer, classes, Nyquist edge (the report reads it)
        # Headline for `dvc exp show`; the detail above and data/tuning/layers.csv are plain outputs.
        band_pass = summary[summary["tuning_class"] == "band-pass"]
        headline = {
            "maps": len(summary),
            "share_band_pass": float((summary["tuning_class"] == "band-pass").mean()),
            "median_preferred_cpd": float(band_pass["preferred_frequency_cpd"].median()) if len(band_pass) else None,
        }
        io.write_headline(headline, "metrics/tuning.json")
        figures = [
            io.save_figure(plots.tuning_examples(curves, summary, p["example_maps"]), f"{OUT}/examples.png"),
            io.save_figure(
                plots.layer_bars(
                    per_layer,
                    {"share_band_pass": "share band-pass", "median_preferred_frequency_cpd": "median preferred cpd"},
                    "Tuning by layer",
                ),
                f"{OUT}/layers.png",
            ),
        ]
        for layer, values in metrics.items():
            if layer in ("nyquist_edge", "classes"):
                continue
            run.log_metrics({f"{layer}.{key}": value for key, value in values.items() if key != "maps"})
        run.log_metrics({key: value for key, value in headline.items() if value is not None})
        for figure in figures:
            run.log_artifact(figure, "figures")


if __name__ == "__main__":
    run_stage("tuning", main)
