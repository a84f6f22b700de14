"""Stage `features`: spatial-mean response of every feature map to every stimulus (one pass per batch)."""

import time

from psychovis import io, probe
from psychovis.backbones import FeatureExtractor
from psychovis.pipeline import resources
from psychovis.pipeline.inputs import STIMULI_TABLE, read_input
from psychovis.pipeline.runner import StageContext, run_stage


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["features"]
    device = ctx.device
    extractor = FeatureExtractor(base["backbone"], p["layers"], seed=base["seed"])
    stimuli = read_input(STIMULI_TABLE, columns=["stimulus_id", "frequency_cpp", "size"])
    size, keys = int(stimuli["size"].max()), ("stimuli.size", "features.batch_size")
    resources.check_probe(extractor, size, p["batch_size"], len(stimuli), keys, device)  # before allocating
    with ctx.run() as run:
        started = time.perf_counter()
        responses, columns = probe.map_responses(extractor, stimuli, p["batch_size"], device)
        seconds = time.perf_counter() - started
        table = probe.responses_frame(responses, columns, stimuli["stimulus_id"].to_numpy())
        io.write_parquet(table, "data/features/features.parquet")
        run.set_tags({"device": str(device)})
        run.log_metrics(probe.throughput(responses, seconds))
    print(probe.report("features", responses, seconds, device))


if __name__ == "__main__":
    run_stage("features", main, sections=["base", "features"])
