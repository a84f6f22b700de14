"""Stage `pretrain`: the PSNR-oriented L1 warm start that every loss fine-tunes from."""

import argparse

from psychovis import io
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import run_training
from psychovis.sr.data import load_dataset
from psychovis.sr.training import TrainConfig


def main(ctx: StageContext) -> None:
    base, train, p = ctx.params["base"], ctx.params["train"], ctx.params["pretrain"]
    config = TrainConfig.from_params(
        train, "pixel", base["seed"], iterations=p["iterations"], learning_rate=p["learning_rate"]
    )
    images, _ = load_dataset(train["image_dir"], train["test_images"], min_size=train["crop_size"])
    with ctx.run(tags={"loss": "pixel"}) as run:
        run.set_tags({"device": str(ctx.device), "train_images": ",".join(images)})
        summary = run_training(run, config, "pretrain", list(images.values()), ctx.device, ctx.args.resume)
    io.write_json(summary, "metrics/pretrain.json")
    print(f"pretrain: L1 {summary['pixel_l1']} after {config.iterations} steps, plateau {summary['plateau_change']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `pretrain` stage")
    parser.add_argument("--resume", action="store_true", help="continue from a checkpoint (or PSYCHOVIS_RESUME=1)")
    run_stage("pretrain", main, sections=["base", "train", "pretrain"], parser=parser)
