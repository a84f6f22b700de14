"""Stage `train_*`: fine-tune the L1 warm start under one loss and one seed (``--loss``, ``--seed``)."""

import argparse

from psychovis import io
from psychovis.names import LOSSES
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import PRETRAINED, run_training
from psychovis.sr.data import load_dataset
from psychovis.sr.training import TrainConfig


def main(ctx: StageContext) -> None:
    train = ctx.params["train"]
    loss, seed = ctx.args.loss, ctx.args.seed
    config = TrainConfig.from_params(train, loss, seed)
    name = f"{loss}-s{seed}"
    images, _ = load_dataset(train["image_dir"], train["test_images"], min_size=train["crop_size"])
    with ctx.run(f"train@{name}", tags={"loss": loss, "seed": str(seed)}) as run:
        run.set_tags({"device": str(ctx.device), "train_images": ",".join(images)})
        summary = run_training(run, config, name, list(images.values()), ctx.device, ctx.args.resume, PRETRAINED)
    io.write_json(summary, f"data/train/{name}.json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `train` stage")
    parser.add_argument("--loss", required=True, choices=LOSSES, help="which loss to fine-tune with")
    parser.add_argument("--seed", required=True, type=int, help="seed of the fine-tune (crops and any new weights)")
    parser.add_argument("--resume", action="store_true", help="continue from a checkpoint (or PSYCHOVIS_RESUME=1)")
    run_stage("train", main, sections=["base", "train"], parser=parser)
