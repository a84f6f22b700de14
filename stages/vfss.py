"""Stage `vfss`: Visual Frequency Sensitivity Score of every feature map against a human CSF.

``metrics/vfss.json`` holds the headline (per layer, VFSS's rank correlation with the response range;
the median rank agreement with each other assumption); ``data/vfss/summary.json`` the detail. Besides
the scores, the stage measures what they rank maps by (their rank correlation with each
map's response range and mean response: gain) and how much the ranking depends on the analysis
assumptions (every other CSF, the other ``vfss.normalise``, the other ``stimuli.input_scaling``).
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import numpy as np
import pandas as pd

from psychovis import io, plots, tuning
from psychovis.csf import contrast_sensitivity
from psychovis.names import CSF_MODELS, INPUT_GAIN, VFSS_NORMALISATIONS
from psychovis.pipeline.inputs import load_probe_results
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.vfss import gain_correlations, map_scores, normalised_vfss, ranking_agreement, vfss_scores

OUT = "data/vfss"


def main(ctx: StageContext) -> None:
    p = ctx.params["vfss"]
    csf, normalise = p["csf"], p["normalise"]
    scaling = ctx.params["stimuli"]["input_scaling"]
    features, stimuli = load_probe_results()
    other_features, _ = load_probe_results(other_scaling=True)
    with ctx.run() as run:
        curves = tuning.tuning_curves(features, stimuli)
        paper = vfss_scores(curves.responses, curves.frequency_cpd, csf)
        chosen = map_scores(curves.responses, curves.frequency_cpd, csf, normalise)
        mean_response = curves.responses.mean(axis=1)
        scores = pd.DataFrame(
            {
                "layer": curves.layer.astype(str),
                "channel": curves.channel.astype("int32"),
                "vfss": chosen,
                "vfss_paper": paper,
                "mean_response": mean_response,
                "response_range": np.ptp(curves.responses, axis=1),
                "vfss_normalised": normalised_vfss(paper, mean_response),
            }
        )
        other_curves = tuning.tuning_curves(other_features, stimuli)
        other_scaling = next(name for name in INPUT_GAIN if name != scaling)
        other_normalise = next(name for name in VFSS_NORMALISATIONS if name != normalise)
        variants = {f"csf={name}": (curves, name, normalise) for name in CSF_MODELS if name != csf}
        variants[f"normalise={other_normalise}"] = (curves, csf, other_normalise)
        variants[f"input_scaling={other_scaling}"] = (other_curves, csf, normalise)
        sensitivity = pd.concat(
            [
                ranking_agreement(
                    chosen,
                    map_scores(source.responses, source.frequency_cpd, variant_csf, variant_normalise),
                    scores["layer"].to_numpy(),
                    p["sensitivity_top_k"],
                ).assign(variant=name)
                for name, (source, variant_csf, variant_normalise) in variants.items()
            ],
            ignore_index=True,
        )[["variant", "layer", "maps", "spearman", "top_k_overlap"]]
        gain = gain_correlations(scores)
        per_layer = scores.groupby("layer", sort=False)["vfss"].agg(["mean", "median", "max"]).reset_index()

        io.write_parquet(scores, f"{OUT}/vfss.parquet")
        sensitivity_curve = contrast_sensitivity(curves.frequency_cpd, csf)
        io.write_csv(
            pd.DataFrame({"frequency_cpd": curves.frequency_cpd, "sensitivity": sensitivity_curve}), f"{OUT}/csf.csv"
        )
        io.write_csv(gain, f"{OUT}/gain.csv")
        io.write_csv(sensitivity, f"{OUT}/sensitivity.csv")
        io.write_csv(per_layer, f"{OUT}/layers.csv")
        metrics = {
            "gain": {
                row.layer: {
                    "spearman_range": io.json_number(row.spearman_range),
                    "spearman_mean": io.json_number(row.spearman_mean),
                }
                for row in gain.itertuples(index=False)
            },
            "sensitivity": {
                variant: {
                    "median_spearman": io.json_number(rows["spearman"].median()),
                    "median_top_k_overlap": io.json_number(rows["top_k_overlap"].median()),
                }
                for variant, rows in sensitivity.groupby("variant", sort=False)
            },
        }
        io.write_json(metrics, f"{OUT}/summary.json")
        io.write_headline(
            {
                "spearman_range": {layer: values["spearman_range"] for layer, values in metrics["gain"].items()},
                "ranking_vs": {
                    "csf": min(
                        values["median_spearman"]
                        for variant, values in metrics["sensitivity"].items()
                        if variant.startswith("csf=")
                    ),
                    "normalise": metrics["sensitivity"][f"normalise={other_normalise}"]["median_spearman"],
                    "input_scaling": metrics["sensitivity"][f"input_scaling={other_scaling}"]["median_spearman"],
                },
            },
            "metrics/vfss.json",
        )
        figure = io.save_figure(
            plots.vfss_overview(scores, curves.frequency_cpd, sensitivity_curve, csf), f"{OUT}/vfss.png"
        )
        run.set_tags({"input_scaling": scaling, "normalise": normalise})
        run.log_metrics({f"{row.layer}.spearman_range": row.spearman_range for row in gain.itertuples(index=False)})
        run.log_artifact(figure, "figures")
    print(gain.round(3).to_string(index=False))
    print(sensitivity.groupby("variant", sort=False)[["spearman", "top_k_overlap"]].median().round(3).to_string())


if __name__ == "__main__":
    run_stage("vfss", main)
