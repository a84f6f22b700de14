"""Stage `train_*`: train the 4x super-resolution network under one loss (``--loss``)."""

import argparse
import os
from pathlib import Path

from psychovis import io
from psychovis.names import LOSSES
from psychovis.pipeline.inputs import WEIGHTS_DIR
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.sr import figures as sr_figures
from psychovis.sr.data import load_dataset
from psychovis.sr.model import count_parameters
from psychovis.sr.training import TrainConfig, save_checkpoint, train


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["train"]
    loss = ctx.args.loss
    config = TrainConfig(
        loss=loss,
        layers=tuple(p["layers"]),
        pixel_weight=p["pixel_weight"],
        perceptual_weight=p["perceptual_weight"],
        scale=p["scale"],
        iterations=p["iterations"],
        batch_size=p["batch_size"],
        crop_size=p["crop_size"],
        learning_rate=p["learning_rate"],
        channels=p["channels"],
        residual_blocks=p["residual_blocks"],
        log_every=p["log_every"],
        seed=base["seed"],
    )
    device = ctx.device
    train_images, _ = load_dataset(p["image_dir"], p["test_images"], min_size=p["crop_size"])
    with ctx.run(f"train@{loss}", tags={"loss": loss}) as run:
        run.set_tags({"device": str(device), "train_images": ",".join(train_images)})
        partial = Path(f"data/models/.{loss}.partial.pt")
        model, curve = train(
            config,
            list(train_images.values()),
            device,
            weights_dir=WEIGHTS_DIR,
            on_log=lambda step, terms: run.log_metrics({f"train_{k}": v for k, v in terms.items()}, step=step),
            checkpoint_path=partial,
            resume=ctx.args.resume or os.environ.get("PSYCHOVIS_RESUME", "") not in ("", "0"),
        )
        save_checkpoint(model, config, config.iterations, f"data/models/{loss}.pt")
        partial.unlink(missing_ok=True)
        io.write_csv(curve, f"data/curves/{loss}.csv")
        final = curve.iloc[-1]
        metrics = {
            "loss": io.json_number(final["loss"], 6),
            "pixel_l1": io.json_number(final["pixel"], 6),
            "seconds": io.json_number(final["seconds"], 2),
            "parameters": count_parameters(model),
        }
        if "perceptual" in curve:
            metrics["perceptual"] = io.json_number(final["perceptual"], 6)
        io.write_json(metrics, f"metrics/train/{loss}.json")
        run.log_metrics(metrics)
        figure = io.save_figure(sr_figures.loss_curve(curve, loss), f"data/curves/{loss}.png")
        run.log_artifact(figure, "figures")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `train` stage")
    parser.add_argument("--loss", required=True, choices=LOSSES, help="which loss to train with")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint (also: PSYCHOVIS_RESUME=1)"
    )
    run_stage("train", main, sections=["base", "train"], parser=parser)
