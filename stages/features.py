"""Stage `features`: spatial-mean response of every feature map to every stimulus (one pass per batch).

The responses under the other input scaling (``stimuli.input_scaling``) are probed too, so the
`vfss` stage can say how much the weights depend on that assumption.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import time

from psychovis import io, probe
from psychovis.backbones import FeatureExtractor
from psychovis.pipeline import resources
from psychovis.pipeline.inputs import FEATURES_TABLE, OTHER_SCALING_TABLE, STIMULI_TABLE, read_input
from psychovis.pipeline.runner import StageContext, run_stage


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["features"]
    scaling = ctx.params["stimuli"]["input_scaling"]
    other = next(name for name in probe.INPUT_GAIN if name != scaling)
    device = ctx.device
    extractor = FeatureExtractor(base["backbone"], p["layers"], seed=base["seed"])
    stimuli = read_input(STIMULI_TABLE, columns=["stimulus_id", "frequency_cpp", "size"])
    size, keys = int(stimuli["size"].max()), ("stimuli.size", "features.batch_size")
    resources.check_probe(extractor, size, p["batch_size"], len(stimuli), keys, device)  # before allocating
    with ctx.run() as run:
        started = time.perf_counter()
        responses, columns = probe.map_responses(extractor, stimuli, p["batch_size"], device, input_scaling=scaling)
        seconds = time.perf_counter() - started
        alternative, _ = probe.map_responses(extractor, stimuli, p["batch_size"], device, input_scaling=other)
        ids = stimuli["stimulus_id"].to_numpy()
        io.write_parquet(probe.responses_frame(responses, columns, ids), FEATURES_TABLE)
        io.write_parquet(probe.responses_frame(alternative, columns, ids), OTHER_SCALING_TABLE)
        run.set_tags({"device": str(device), "input_scaling": scaling})
        run.log_metrics(probe.throughput(responses, seconds))
    print(probe.report("features", responses, seconds, device))


if __name__ == "__main__":
    run_stage("features", main)
