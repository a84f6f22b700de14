"""Stage `pretrain`: the PSNR-oriented L1 warm start that every loss fine-tunes from."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import argparse

from psychovis import io
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import add_arguments, run_training_stage
from psychovis.sr.training import TrainConfig


def main(ctx: StageContext) -> None:
    base, train, p = ctx.params["base"], ctx.params["train"], ctx.params["pretrain"]
    config = TrainConfig.from_params(
        train, "pixel", base["seed"], iterations=p["iterations"], learning_rate=p["learning_rate"]
    )
    summary = run_training_stage(ctx, config, "pretrain", tags={"loss": "pixel"})
    if summary is None:  # another rank, or the launcher of the ranks (rank 0 has written and printed)
        return
    io.write_json(summary, "metrics/pretrain.json")
    print(f"pretrain: L1 {summary['pixel_l1']} after {config.iterations} steps, plateau {summary['plateau_change']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `pretrain` stage")
    run_stage("pretrain", main, parser=add_arguments(parser))
