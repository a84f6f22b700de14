"""Stage `atlas_features@<backbone>`: spatial-mean response of every map to the atlas's oriented gratings."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import time

from psychovis import io, probe
from psychovis.atlas import stimuli as atlas_stimuli
from psychovis.backbones import FeatureExtractor, backbone_spec
from psychovis.pipeline import resources
from psychovis.pipeline.runner import StageContext, backbone_parser, run_stage


def main(ctx: StageContext) -> None:
    backbone = ctx.args.backbone
    base, p = ctx.params["base"], ctx.params["atlas"]
    out = f"data/atlas/{backbone}"
    device = ctx.device
    layers = atlas_stimuli.layers_for(list(backbone_spec(backbone).layers), p["layers"])
    extractor = FeatureExtractor(backbone, layers, seed=base["seed"])
    stimuli = atlas_stimuli.stimuli_from_params(p)
    resources.check_probe(
        extractor, p["size"], p["batch_size"], len(stimuli), ("atlas.size", "atlas.batch_size"), device
    )
    with ctx.run(f"atlas_features@{backbone}", tags={"backbone": backbone}) as run:
        started = time.perf_counter()
        responses, columns = probe.map_responses(extractor, stimuli, p["batch_size"], device)
        seconds = time.perf_counter() - started
        io.write_parquet(stimuli, f"{out}/stimuli.parquet")
        io.write_parquet(
            probe.responses_frame(responses, columns, stimuli["stimulus_id"].to_numpy()), f"{out}/responses.parquet"
        )
        run.set_tags({"device": str(device)})
        run.log_metrics(probe.throughput(responses, seconds))
    print(probe.report(f"atlas_features@{backbone}", responses, seconds, device))


if __name__ == "__main__":
    run_stage(
        "atlas_features",
        main,
        parser=backbone_parser("atlas_features", "backbone to probe"),
    )
