"""Stage `pretrain@<seed>`: the PSNR-oriented L1 warm start that every loss fine-tunes from, one per seed.

Each seed of ``train.seeds`` is one independent run: its own warm start (this stage, seeded with it) and
every loss fine-tuned from that warm start with the same seed, so the losses are compared within a warm
start and the seeds sample the whole run's variance, warm start included.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import argparse

from psychovis import io
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.pipeline.training import add_arguments, run_training_stage, warm_start_path
from psychovis.sr.training import TrainConfig


def main(ctx: StageContext) -> None:
    train, p = ctx.params["train"], ctx.params["pretrain"]
    seed = train["seeds"][0] if ctx.args.seed is None else ctx.args.seed
    config = TrainConfig.from_params(train, "pixel", seed, iterations=p["iterations"], learning_rate=p["learning_rate"])
    name = warm_start_path(seed).stem  # pretrain-s<seed>
    summary = run_training_stage(ctx, config, name, f"pretrain@s{seed}", {"loss": "pixel", "seed": str(seed)})
    if summary is None:  # another rank, or the launcher of the ranks (rank 0 has written and printed)
        return
    io.write_json(summary, f"metrics/{name}.json")
    print(
        f"pretrain (seed {seed}): L1 {summary['pixel_l1']} after {config.iterations} steps, "
        f"plateau {summary['plateau_change']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="psychovis `pretrain` stage")
    parser.add_argument(
        "--seed", type=int, default=None, help="the warm start's seed (default: the first of train.seeds)"
    )
    run_stage("pretrain", main, parser=add_arguments(parser))
