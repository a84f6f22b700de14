"""Stage `atlas@<backbone>`: fitted tuning of every map, CSF/geometry sensitivity, LPIPS agreement, figures."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import math
import time

import numpy as np

from psychovis import atlas, gratings, io
from psychovis.atlas import figures as atlas_plots
from psychovis.backbones import backbone_spec, lpips_heads
from psychovis.pipeline.runner import StageContext, backbone_parser, run_stage

SUMMARY_KEYS = (
    "share_reliable",
    "share_band_pass",
    "median_preferred_frequency_cpp",
    "median_preferred_frequency_cpd",
    "median_bandwidth_octaves",
    "share_band_pass_fit_at_bound",
    "median_circular_variance",
    "median_r2",
)


def _clean(value: float, digits: int = 4) -> float | None:
    """Round for JSON; NaN (e.g. no band-pass map in a layer) becomes null."""
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def main(ctx: StageContext) -> None:
    backbone = ctx.args.backbone
    p = ctx.params["atlas"]
    out = f"data/atlas/{backbone}"
    stimuli = io.read_parquet(
        f"{out}/stimuli.parquet",
        columns=["stimulus_id", "frequency_cpp", "orientation_deg", "phase_rad", "contrast", "size"],
    )
    responses = io.read_parquet(f"{out}/responses.parquet", columns=["layer", "channel", "stimulus_id", "response"])
    spec = backbone_spec(backbone)
    # The untrained control has no LPIPS head of its own: vgg16's heads give the null (its channel
    # indices carry no correspondence to the trained network's maps).
    heads_name = backbone if spec.pretrained else "vgg16"
    with ctx.run(f"atlas@{backbone}", tags={"backbone": backbone}) as run:
        started = time.perf_counter()
        grid = atlas.grid_from_frame(responses, stimuli)
        factor = atlas.cpd_per_cpp(p["frequency_mapping"], p["viewing_distance_in"], p["pixels_per_inch"])
        table, curves = atlas.fit_atlas(
            grid, factor, p["orientation_pooling"], p["min_response"], p["min_relative_range"], p["csf"]
        )
        fit_seconds = time.perf_counter() - started
        heads = {layer: weights.numpy() for layer, weights in lpips_heads(heads_name).items()}
        lpips = atlas.lpips_agreement(table, heads, heads_name)
        table.insert(0, "backbone", backbone)
        table["lpips_weight"] = np.nan
        for layer, weights in heads.items():
            rows = np.flatnonzero(table["layer"].to_numpy() == layer)
            if rows.size == len(weights):
                table.loc[rows, "lpips_weight"] = weights[table["channel"].to_numpy()[rows]]
        per_layer = atlas.layer_summary(table)
        variants = atlas.sensitivity_variants(
            p["sensitivity_csfs"],
            p["sensitivity_mappings"],
            p["sensitivity_pixels_per_degree"],
            p["viewing_distance_in"],
            p["pixels_per_inch"],
        )
        sensitivity = atlas.sensitivity_table(curves, grid.frequency_cpp, grid.layer, variants, p["top_k"])
        reference = variants[0].name
        versus = sensitivity[sensitivity["reference"] == reference]

        io.write_parquet(table, f"{out}/maps.parquet")
        io.write_csv(per_layer, f"{out}/layers.csv")
        io.write_csv(sensitivity, f"{out}/sensitivity.csv")
        io.write_csv(lpips, f"{out}/lpips.csv")

        metrics: dict = {"layers": {}, "maps": len(table), "reference_variant": reference, "lpips_heads": heads_name}
        for _, row in per_layer.iterrows():
            entry = {"maps": int(row["maps"]), **{key: _clean(row[key]) for key in SUMMARY_KEYS}}
            others = versus[(versus["layer"] == row["layer"]) & (versus["variant"] != reference)]
            entry["min_spearman_vfss_vs_reference"] = _clean(others["spearman_vfss"].min())
            agree = lpips[lpips["layer"] == row["layer"]]
            if len(agree):
                entry["lpips_spearman_vfss"] = _clean(agree["spearman_vfss"].iloc[0])
                entry["lpips_pearson_vfss"] = _clean(agree["pearson_vfss"].iloc[0])
            metrics["layers"][row["layer"]] = entry
        metrics["share_band_pass"] = _clean((table["tuning_class"] == "band-pass").mean())
        metrics["share_reliable"] = _clean(table["reliable"].mean())
        io.write_json(metrics, f"{out}/summary.json")  # per layer; the headline below is the DVC metric
        io.write_headline(
            {
                "maps": metrics["maps"],
                "share_reliable": metrics["share_reliable"],
                "share_band_pass": metrics["share_band_pass"],
                # agreement of VFSS with the learned LPIPS heads, median over the layers that have one
                "lpips_spearman_vfss": float(lpips["spearman_vfss"].median()) if len(lpips) else None,
            },
            f"metrics/atlas/{backbone}.json",
        )

        cpd = grid.frequency_cpp * factor
        examples = atlas.example_stimuli(stimuli)
        images = gratings.render(examples)[:, 0].numpy()
        labels = [
            f"{f:.3f} c/px, {o:g} deg"
            for f, o in zip(examples["frequency_cpp"], examples["orientation_deg"], strict=True)
        ]
        figures = {
            "stimuli": atlas_plots.stimulus_sheet(images, labels),
            "heatmaps": atlas_plots.response_heatmaps(curves, grid.frequency_cpp, table, backbone),
            "distributions": atlas_plots.distributions(table, grid.frequency_cpp, backbone),
            "orientation": atlas_plots.orientation_polar(grid, table, p["example_maps"], backbone),
            "vfss": atlas_plots.vfss_vs_frequency(table, (float(cpd[0]), float(cpd[-1])), p["csf"], backbone),
            "sensitivity": atlas_plots.sensitivity_heatmap(sensitivity, reference, backbone),
            "lpips": atlas_plots.lpips_scatter(table, heads, lpips, backbone),
        }
        for name, figure in figures.items():
            run.log_artifact(io.save_figure(figure, f"{out}/{name}.png"), "figures")
        for path in ("layers.csv", "sensitivity.csv", "lpips.csv"):
            run.log_artifact(f"{out}/{path}", "tables")
        for layer, values in metrics["layers"].items():
            run.log_metrics({f"{layer}.{key}": value for key, value in values.items() if value is not None})
        run.log_metrics(
            {
                "share_band_pass": metrics["share_band_pass"],
                "share_reliable": metrics["share_reliable"],
                "fit_seconds": fit_seconds,
            }
        )
    print(
        f"atlas@{backbone}: {len(table)} maps ({int(table['reliable'].sum())} reliable, "
        f"{metrics['share_band_pass']:.0%} band-pass); fits in {fit_seconds:.1f} s"
    )


if __name__ == "__main__":
    run_stage("atlas", main, parser=backbone_parser("atlas", "backbone whose responses to analyse"))
