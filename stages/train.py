"""Stage `train_*`: fine-tune the seed's L1 warm start under one loss (``--loss``, ``--seed``)."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import argparse

from psychovis import io
from psychovis.names import GEOMETRY_LOSS, LOSSES
from psychovis.pipeline.inputs import read_reference_geometry
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import add_arguments, run_training_stage, warm_start_path
from psychovis.sr.training import TrainConfig


def main(ctx: StageContext) -> None:
    loss, seed = ctx.args.loss, ctx.args.seed
    train = ctx.params["train"]
    # geometry_aware: the network's reference px/deg is the modelfest stage's, fitted to people
    fitted = {"reference_px_per_degree": read_reference_geometry(train["layers"])} if loss == GEOMETRY_LOSS else {}
    config = TrainConfig.from_params(train, loss, seed, **fitted)
    name = f"{loss}-s{seed}"
    summary = run_training_stage(
        ctx, config, name, f"train@{name}", {"loss": loss, "seed": str(seed)}, warm_start_path(seed)
    )
    if summary is not None:  # rank 0 (the other ranks, and a launcher of ranks, write nothing)
        io.write_json(summary, f"data/train/{name}.json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `train` stage")
    parser.add_argument("--loss", required=True, choices=LOSSES, help="which loss to fine-tune with")
    parser.add_argument(
        "--seed", required=True, type=int, help="seed of the fine-tune (crops, new weights) and of its warm start"
    )
    run_stage("train", main, parser=add_arguments(parser))
