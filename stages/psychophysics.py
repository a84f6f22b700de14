"""Stage `psychophysics`: contrast detection thresholds of image distances against the human CSF.

Each distance (pixel MSE, plain VGG, VFSS-weighted, top-/bottom-/random-k VFSS maps, LPIPS-VGG,
LPIPS-Alex, DISTS) is the observer of a grating-detection experiment on grey, natural and noise
backgrounds; its "CSF" (1 / threshold over frequency) is scored against the human one. The
map-subset test places the k top- and bottom-VFSS maps in a null of random k-map subsets, under
every criterion level, frequency range (full, Nyquist-safe), human CSF and a gain-normalised control.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import time

import numpy as np

from psychovis import io
from psychovis import psychophysics as pp
from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.errors import ParamsError
from psychovis.pipeline.distance_inputs import load_distances
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.psychophysics import figures as plots
from psychovis.statistics import flat_metrics

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
        px_per_degree=p["px_per_degree"],
        window=p["window"],
        taper=p["window_taper"],
        reference_frequency_cpd=p["reference_frequency_cpd"],
        reference_contrast=p["reference_contrast"],
        criterion_contrasts=tuple(p["criterion_contrasts"]),
        min_cycles=p["min_cycles"],
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
    csfs = list(dict.fromkeys([csf, *p["reference_csfs"]]))  # the default VFSS CSF first
    with ctx.run() as run:
        started = time.perf_counter()
        grid = pp.distance_grid(distances, backgrounds, spec, p["batch_size"], device)
        thresholds = pp.thresholds_frame(grid)
        scored = pp.score_thresholds(thresholds, csf)
        masking = pp.masking_table(thresholds)
        table = pp.robustness_table(
            grid,
            scores,
            p["subset_ks"],
            p["null_draws"],
            csfs=csfs,
            nyquist_safe_cpp=p["nyquist_safe_cpp"],
            seed=base["seed"],
            background=p["subset_background"],
        )
        nulls = pp.null_summary(table)
        as_run = pp.px_per_degree_as_run(thresholds)
        geometries = sorted({*map(float, p["sweep_px_per_degree"]), as_run})
        sweep = pp.geometry_sweep(thresholds, geometries, csfs)
        elapsed = time.perf_counter() - started

        main_condition = {
            "criterion_contrast": float(p["reference_contrast"]),
            "control": "raw",
            "frequency_range": "full",
            "csf": csf,
        }
        metrics = pp.summary_metrics(nulls, table, p["top_k"], main_condition)
        metrics["geometry"] = pp.geometry_metrics(sweep, csf, as_run)
        io.write_parquet(thresholds, f"{OUT}/thresholds.parquet")
        io.write_parquet(scored, f"{OUT}/scores.parquet")
        io.write_parquet(masking, f"{OUT}/masking.parquet")
        io.write_parquet(table, f"{OUT}/robustness.parquet")
        io.write_csv(thresholds[["distance", "background", "frequency_cpd", "sensitivity"]], f"{OUT}/sensitivity.csv")
        io.write_csv(nulls, f"{OUT}/nulls.csv")
        io.write_csv(sweep, f"{OUT}/geometry_sweep.csv")
        io.write_json(metrics, f"{OUT}/summary.json")
        io.write_headline(pp.headline_metrics(metrics, p["top_k"]), "metrics/psychophysics.json")

        examples = {name: pp.example_stimulus(background, spec) for name, background in backgrounds.items()}
        safe = {**main_condition, "frequency_range": "nyquist_safe"}
        panels = {
            "as in the paper (all frequencies)": main_condition,
            f"frequencies <= {p['nyquist_safe_cpp']:g} cycles/pixel": safe,
            "gain-normalised maps": {**main_condition, "control": "gain_normalised"},
        }
        sweep_condition = {key: main_condition[key] for key in ("control", "frequency_range", "csf")}
        figures = [
            io.save_figure(plots.csf_overlay(thresholds, csf, examples), f"{OUT}/csf_overlay.png"),
            io.save_figure(plots.subsets_figure(nulls, panels), f"{OUT}/subsets.png"),
            io.save_figure(
                plots.criterion_sweep_figure(table, nulls, p["top_k"], sweep_condition), f"{OUT}/criterion_sweep.png"
            ),
            io.save_figure(plots.geometry_sweep_figure(sweep, csf, as_run), f"{OUT}/geometry_sweep.png"),
        ]
        run.log_metrics({"elapsed_s": elapsed, **flat_metrics(metrics)})
        for figure in figures:
            run.log_artifact(figure, "figures")
    headline = nulls[(nulls["k"] == p["top_k"])]
    print(scored.round(3).to_string(index=False))
    print(headline.round(3).to_string(index=False))
    changes = metrics["geometry"]["sign_changes"]
    print(
        f"psychophysics: rendered at {as_run:.3g} px/deg; across {', '.join(f'{g:g}' for g in geometries)} px/deg "
        f"the log-correlation with the human CSF changes sign for {', '.join(changes) or 'no distance'} (grey)"
    )
    print(
        f"psychophysics: {len(thresholds)} thresholds, {p['null_draws']} random draws per k, "
        f"{len(table)} scored curves in {elapsed:.0f} s"
    )


if __name__ == "__main__":
    run_stage("psychophysics", main)
