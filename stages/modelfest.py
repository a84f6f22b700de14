"""Stage `modelfest`: every distance as an observer of the ModelFest detection experiment.

Renders the 43 ModelFest stimuli at ``modelfest.px_per_degree`` (the data's own 120 by default),
finds each observer's threshold (the contrast where its distance to the blank reaches a criterion,
one criterion per person fitted to the RMS dB error), and scores classical observers (constant,
contrast energy, CSF-filtered energy) and deep ones (the distance catalogue) against the 16 people,
with bootstrap CIs, the human band and the noise floor; then a px/deg sweep as a sensitivity analysis.
Per-map weights fitted to people are tested against VFSS (with a gain-matched null) and exported as
the ``human_fitted`` weights scheme (``data/weights/human_fitted.safetensors``, a loss of `train`); the
geometry-aware VGG observer's reference px/deg goes to ``data/modelfest/reference_geometry.json`` (the
``geometry_aware`` loss of `train_geometry`).
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import time

from psychovis import io
from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.feature_weights import shaping_params
from psychovis.modelfest import experiment
from psychovis.modelfest import figures as plots
from psychovis.names import DISTANCES
from psychovis.pipeline.distance_inputs import layer_scores, load_distances
from psychovis.pipeline.inputs import REFERENCE_GEOMETRY, WEIGHTS_DIR
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.statistics import flat_metrics

OUT = "data/modelfest"


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["modelfest"]
    layers = resolve_layers(backbone_spec(base["backbone"]), p["layers"], key="modelfest.layers")
    catalogue = [name for name in p["distances"] if name in DISTANCES]
    distances, premise = {}, None
    if catalogue:
        # p["top_k"] read through the traced mapping: the copy below would hide the read from the params trace
        wanted = {**p, "distances": catalogue, "top_k": p["top_k"], "layers": p["layers"]}
        distances, scores = load_distances("modelfest", wanted, base, layers)
        premise = {"vfss": scores, "vfss_normalised": layer_scores("vfss_normalised")}
    distances.update(experiment.control_distances(p["distances"], layers))
    with ctx.run() as run:
        started = time.perf_counter()
        result = experiment.run_experiment(p, distances, base["seed"], ctx.device, premise_scores=premise)
        elapsed = time.perf_counter() - started
        io.write_parquet(result.ladder, f"{OUT}/ladder.parquet")
        io.write_parquet(result.per_stimulus, f"{OUT}/thresholds.parquet")
        io.write_parquet(result.sweep, f"{OUT}/sweep.parquet")
        io.write_parquet(result.curves, f"{OUT}/curves.parquet")
        io.write_parquet(result.fitted_weights, f"{OUT}/fitted_weights.parquet")
        io.write_csv(
            result.sweep.rename(columns={"observer": "distance"}).assign(background="modelfest")[
                ["distance", "background", "px_per_degree", "rms_db"]
            ],
            f"{OUT}/sweep.csv",
        )
        io.write_json(result.summary, f"{OUT}/summary.json")
        reference = experiment.reference_geometry(result.geometry, p["fit_families"])
        io.write_json(reference | {"backbone": base["backbone"], "layers": list(layers)}, REFERENCE_GEOMETRY)
        exported = experiment.fitted_feature_weights(
            result, base["backbone"], shaping_params(experiment.FITTED_SCHEME, ctx.params)
        ).save(WEIGHTS_DIR / f"{experiment.FITTED_SCHEME}.safetensors")
        headline = experiment.headline_metrics(result)
        io.write_headline(headline, "metrics/modelfest.json")
        shown = [
            n
            for n in ("constant", "energy_barten_2003", "energy_standard_spatial_observer")
            if n in set(result.ladder["observer"])
        ]
        shown += [n for n in result.ladder["observer"] if n in distances or n == "gain_normalised"]
        figures = [
            io.save_figure(
                plots.thresholds_figure(result.people, result.per_stimulus, shown, p["px_per_degree"]),
                f"{OUT}/thresholds.png",
            ),
            io.save_figure(
                plots.sweep_figure(
                    result.sweep,
                    result.summary["human_band_db"]["pooled"],
                    result.summary["noise_floor_of_mean_db"],
                    p["px_per_degree"],
                ),
                f"{OUT}/sweep.png",
            ),
        ]
        run.log_metrics({"elapsed_s": elapsed, **flat_metrics(headline)})
        for figure in figures:
            run.log_artifact(figure, "figures")
        run.log_artifact(exported, "weights")
    columns = ["observer", "rms_db", "ci_low", "ci_high", "rms_mean_db", "pearson_r", "held_out_rms_db"]
    print(result.ladder[columns].round(2).to_string(index=False))
    for row in result.summary["fitted_weights"]:
        print({key: round(value, 3) if isinstance(value, float) else value for key, value in row.items()})
    if len(result.geometry):
        print(result.geometry.round(2).to_string(index=False))
    print(f"modelfest: {len(result.ladder) - 1} observers at {p['px_per_degree']:g} px/deg in {elapsed:.0f} s")


if __name__ == "__main__":
    run_stage("modelfest", main)
