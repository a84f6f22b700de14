"""Stage `vfss`: Visual Frequency Sensitivity Score of every feature map against a human CSF."""

import numpy as np
import pandas as pd

from psychovis import io, plots, tuning
from psychovis.csf import contrast_sensitivity
from psychovis.pipeline.inputs import load_probe_results
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.vfss import gain_correlations, normalised_vfss, vfss_scores

OUT = "data/vfss"


def main(ctx: StageContext) -> None:
    csf = ctx.params["vfss"]["csf"]
    features, stimuli = load_probe_results()
    with ctx.run() as run:
        curves = tuning.tuning_curves(features, stimuli)
        vfss = vfss_scores(curves.responses, curves.frequency_cpd, csf)
        mean_response = curves.responses.mean(axis=1)
        scores = pd.DataFrame(
            {
                "layer": curves.layer.astype(str),
                "channel": curves.channel.astype("int32"),
                "vfss": vfss,
                "mean_response": mean_response,
                "response_range": np.ptp(curves.responses, axis=1),
                "vfss_normalised": normalised_vfss(vfss, mean_response),
            }
        )
        io.write_parquet(scores, f"{OUT}/vfss.parquet")
        sensitivity = contrast_sensitivity(curves.frequency_cpd, csf)
        io.write_csv(
            pd.DataFrame({"frequency_cpd": curves.frequency_cpd, "sensitivity": sensitivity}), f"{OUT}/csf.csv"
        )
        io.write_csv(gain_correlations(scores), f"{OUT}/gain.csv")
        per_layer = scores.groupby("layer", sort=False)["vfss"].agg(["mean", "median", "max"])
        metrics = {layer: {k: io.json_number(v, 6) for k, v in row.items()} for layer, row in per_layer.iterrows()}
        io.write_json(metrics, "metrics/vfss.json")
        figure = io.save_figure(plots.vfss_overview(scores, curves.frequency_cpd, sensitivity, csf), f"{OUT}/vfss.png")
        for layer, values in metrics.items():
            run.log_metrics({f"{layer}.{key}_vfss": value for key, value in values.items()})
        run.log_artifact(figure, "figures")


if __name__ == "__main__":
    run_stage("vfss", main, sections=["vfss"])
