"""Stage `psychophysics`: contrast detection thresholds of image distances against the human CSF.

Each distance (pixel MSE, plain VGG, VFSS-weighted, top-/bottom-/random-k VFSS maps, LPIPS) is
the observer of a grating-detection experiment on grey, natural and noise backgrounds; its
"CSF" (1 / threshold over frequency) is scored against the human one, and the map-subset curve
asks whether the k top-VFSS maps are more human-like than the k bottom or k random ones.
"""

import time

import numpy as np

from psychovis import io
from psychovis import psychophysics as pp
from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.errors import ParamsError
from psychovis.pipeline.distance_inputs import load_distances
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.psychophysics import figures as plots

OUT = "data/psychophysics"
FEATURE_DISTANCES = ("vgg", "vfss", "topk", "bottomk", "randomk")


def main(ctx: StageContext) -> None:
    base, stimuli, p = ctx.params["base"], ctx.params["stimuli"], ctx.params["psychophysics"]
    csf = ctx.params["vfss"]["csf"]
    device = ctx.device
    layers = resolve_layers(backbone_spec(base["backbone"]), p["layers"], key="psychophysics.layers")
    if "grey" not in p["backgrounds"] or p["subset_background"] not in p["backgrounds"]:
        raise ParamsError("psychophysics.backgrounds must include grey and psychophysics.subset_background")
    if not set(FEATURE_DISTANCES) & set(p["distances"]):
        raise ParamsError(f"psychophysics.distances needs one of {list(FEATURE_DISTANCES)} for the map-subset curve")
    spec = pp.StimulusSpec(
        size=p["size"],
        frequencies_cpd=tuple(np.geomspace(p["frequency_min_cpd"], p["frequency_max_cpd"], p["frequencies"])),
        contrasts=tuple(np.geomspace(p["contrast_min"], p["contrast_max"], p["contrasts"])),
        phases=p["phases"],
        mapping=stimuli["frequency_mapping"],
        viewing_distance_in=stimuli["viewing_distance_in"],
        pixels_per_inch=stimuli["pixels_per_inch"],
        window=p["window"],
        taper=p["window_taper"],
        reference_frequency_cpd=p["reference_frequency_cpd"],
        reference_contrast=p["reference_contrast"],
    )
    backgrounds = pp.make_backgrounds(
        spec,
        p["backgrounds"],
        natural_image=p["natural_image"],
        amplitude=p["background_amplitude"],
        texture_band_cpd=tuple(p["texture_band_cpd"]),
        seed=base["seed"],
    )
    distances, scores = load_distances("psychophysics", p, base, layers)
    with ctx.run() as run:
        started = time.perf_counter()
        grid = pp.distance_grid(distances, backgrounds, spec, p["batch_size"], device)
        thresholds = pp.thresholds_frame(grid)
        scored = pp.score_thresholds(thresholds, csf)
        masking = pp.masking_table(thresholds)
        seeds = [base["seed"] + offset for offset in range(p["subset_seeds"])]
        subsets = pp.subset_curve(grid, scores, p["subset_ks"], seeds, p["subset_background"], csf)
        summary = pp.subset_summary(subsets)
        elapsed = time.perf_counter() - started

        io.write_parquet(thresholds, f"{OUT}/thresholds.parquet")
        io.write_parquet(scored, f"{OUT}/scores.parquet")
        io.write_parquet(masking, f"{OUT}/masking.parquet")
        io.write_parquet(subsets, f"{OUT}/subsets.parquet")
        io.write_csv(thresholds[["distance", "background", "frequency_cpd", "sensitivity"]], f"{OUT}/sensitivity.csv")
        io.write_csv(summary, f"{OUT}/subsets.csv")
        metrics = pp.summary_metrics(scored, masking, subsets)
        io.write_json(metrics, "metrics/psychophysics.json")

        on_subset_background = scored[scored["background"] == p["subset_background"]].set_index("distance")
        references = {
            label: float(on_subset_background.loc[name, "log_correlation"])
            for label, name in (("all maps (vgg)", "vgg"), ("VFSS-weighted", "vfss"))
            if name in on_subset_background.index
        }
        examples = {name: pp.example_stimulus(background, spec) for name, background in backgrounds.items()}
        figures = [
            io.save_figure(plots.csf_overlay(thresholds, csf, examples), f"{OUT}/csf_overlay.png"),
            io.save_figure(plots.subsets_figure(summary, references), f"{OUT}/subsets.png"),
        ]
        flat = {"elapsed_s": elapsed}
        for distance, per_background in metrics.items():
            for background, values in per_background.items():
                flat.update({f"{distance}.{background}.{key}": v for key, v in values.items() if v is not None})
        run.log_metrics(flat)
        for figure in figures:
            run.log_artifact(figure, "figures")
    print(scored.round(3).to_string(index=False))
    print(summary.round(3).to_string(index=False))
    print(f"psychophysics: {len(thresholds)} thresholds and {len(subsets)} map subsets in {elapsed:.0f} s")


if __name__ == "__main__":
    run_stage("psychophysics", main, sections=["base", "stimuli", "vfss", "psychophysics"])
