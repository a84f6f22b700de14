"""LPIPS-Alex vs PSNR-Y trade-off fronts: is a weighting better than the plain VGG loss at matched fidelity?

Each ``--seeds`` seed is one independent run, as in the pipeline: its L1 warm start
(``data/models/pretrain-s<seed>.pt`` of ``--checkout`` when the pipeline has run there, else one trained here
with the pipeline's recipe), then every loss fine-tuned from it at each ``--weights`` value of
``train.perceptual_weight``; the models restore the held-out images (PSNR-Y and LPIPS-Alex per image, seeds
averaged). Each loss's front is its points over the weights
plus the warm start; :func:`psychovis.fronts.compare_fronts` compares each front with ``vgg``'s at
matched PSNR-Y, per image, and the images are the unit of inference (bootstrap CI over images).

A weighting that only acts as a weaker perceptual term lies on the ``vgg`` front (difference 0); a
better weighting lies beyond it (positive difference). With the 3 bundled test images the interval is
wide; ``-S``-style overrides of the pipeline's ``train`` section go in ``--set key=value``.

Usage (about 12 minutes on a 2-core CPU with the defaults)::

    python benchmarks/perceptual_fronts.py
    python benchmarks/perceptual_fronts.py --set image_dir=scratch --set test_images=24 --seeds 0 1 2
    # the study's checkout (its params, weights and warm starts), writing into this repository's docs:
    python benchmarks/perceptual_fronts.py --checkout ../study --seeds 0 1 2 --out docs/fronts
    # more weights for some losses, joined to that run's points (no retraining of the rest):
    python benchmarks/perceptual_fronts.py --checkout ../study --seeds 0 1 2 --losses vgg --weights 0.001 \
        --extend docs/fronts --out docs/fronts
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
import yaml

from psychovis import io
from psychovis.distances.pretrained import FOLDER as SHIPPED_WEIGHTS
from psychovis.fronts import compare_fronts
from psychovis.names import GEOMETRY_LOSS
from psychovis.pipeline.inputs import read_reference_geometry
from psychovis.pipeline.training import warm_start_path
from psychovis.sr.data import load_dataset
from psychovis.sr.evaluation import score, super_resolve_all
from psychovis.sr.training import TrainConfig, load_checkpoint, save_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
JUDGES = ["psnr_y", "lpips_alex"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", nargs="+", default=["vgg", "vfss", "topk"], help="vgg first: the baseline")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a train key")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("perceptual_fronts"), help="folder for the JSON, CSV, PNG")
    parser.add_argument(
        "--extend", type=Path, default=None, help="an earlier run's folder (same seeds, images): its points join these"
    )
    parser.add_argument(
        "--weights-dir", type=Path, default=None, help="the <scheme>.safetensors files (default: the checkout's)"
    )
    parser.add_argument(
        "--checkout", type=Path, default=ROOT, help="the checkout whose params.yaml, weights and warm starts to use"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkout = args.checkout.resolve()
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    section = params["train"] | {key: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in args.set)}
    images, held_out = load_dataset(section["image_dir"], section["test_images"], section["crop_size"])
    exported = checkout / "data/weights"
    weights_dir = args.weights_dir or (exported if (exported / "vfss.safetensors").exists() else SHIPPED_WEIGHTS)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    models, warm_starts = {}, []
    for seed in args.seeds:
        warm_path = checkout / warm_start_path(seed)
        if warm_path.exists() and not args.set:
            models[("pretrain", seed)] = load_checkpoint(warm_path)[0]
        else:  # the pipeline's recipe on these images
            pretrain = params["pretrain"]
            warm = TrainConfig.from_params(
                section, "pixel", seed, iterations=pretrain["iterations"], learning_rate=pretrain["learning_rate"]
            )
            models[("pretrain", seed)], _ = train(warm, list(images.values()), progress=False)
            warm_path = save_checkpoint(
                models[("pretrain", seed)], warm, warm.iterations, args.out / f"pretrain-s{seed}.pt"
            )
        warm_starts.append(str(warm_path))
        for loss in args.losses:
            for weight in args.weights:
                # geometry_aware: the network's reference px/deg, fitted by the checkout's modelfest stage
                fitted = (
                    {"reference_px_per_degree": read_reference_geometry(section["layers"], root=checkout)}
                    if loss == GEOMETRY_LOSS
                    else {}
                )
                config = TrainConfig.from_params(section, loss, seed, perceptual_weight=weight, **fitted)
                models[(f"{loss}@{weight:g}", seed)], _ = train(
                    config, images, weights_dir=weights_dir, progress=False, init_from=warm_path
                )
                print(f"  seed {seed} {loss} perceptual_weight={weight:g} ({time.perf_counter() - started:.0f} s)")
    print(f"warm starts {warm_starts}; weights {weights_dir}; {len(images)} training, {len(held_out)} test images")
    references, outputs = super_resolve_all(models, held_out, section["scale"], device="cpu")
    per_image, _ = score(references, outputs, JUDGES, section["scale"], section["scale"], 4, progress=False)
    wide = per_image.pivot_table(index=["method", "image"], columns="judge", values="value").reset_index()
    wide = wide[wide["method"] != "bicubic"]
    warm_rows = wide[wide["method"] == "pretrain"]
    wide = wide[wide["method"] != "pretrain"]
    wide[["loss", "weight"]] = wide["method"].str.split("@", expand=True)
    wide["weight"] = wide["weight"].astype(float)
    # the warm start is the weight-0 end of every front
    table = pd.concat([wide] + [warm_rows.assign(loss=loss, weight=0.0) for loss in args.losses], ignore_index=True)
    table = table[["loss", "weight", "image", *JUDGES]]
    losses, seconds = list(args.losses), 0
    if args.extend is not None:  # an earlier run's points join these (where both have a loss and weight: these)
        earlier, record = pd.read_csv(args.extend / "fronts.csv"), json.loads((args.extend / "fronts.json").read_text())
        if record["seeds"] != args.seeds or record["test_images"] != list(held_out):
            raise SystemExit(f"--extend {args.extend}: other seeds or held-out images than this run; rerun it whole")
        here = set(zip(table["loss"], table["weight"], strict=True))
        earlier = earlier[[key not in here for key in zip(earlier["loss"], earlier["weight"], strict=True)]]
        table = pd.concat([table, earlier[table.columns]], ignore_index=True)
        losses, seconds = list(dict.fromkeys([*record["losses"], *args.losses])), int(record["seconds"])
    table = table.sort_values(["loss", "weight", "image"])
    result = compare_fronts(table, losses[0])
    io.write_csv(table, args.out / "fronts.csv")
    by_loss = {
        loss: sorted(set(table.loc[(table["loss"] == loss) & (table["weight"] > 0), "weight"])) for loss in losses
    }
    summary = {
        "losses": losses,
        "weights": sorted(set().union(*by_loss.values())),
        "weights_by_loss": by_loss,
        "seeds": args.seeds,
        "test_images": list(held_out),
        "train": {key: section[key] for key in ("iterations", "image_dir", "test_images", "crop_size")},
        "unit": "the held-out image (seeds averaged within each image); each seed is its own warm start and fine-tunes",
        "comparisons": json.loads(result.to_json(orient="records")),
        "seconds": seconds + round(time.perf_counter() - started),
    }
    io.write_json(summary, args.out / "fronts.json")
    io.save_figure(_figure(table, losses), args.out / "fronts.png")
    means = table.groupby(["loss", "weight"], sort=False)[JUDGES].mean()
    print(means.round(4).to_string())
    for row in result.itertuples():
        print(
            f"{row.loss} vs {row.baseline}: LPIPS-Alex at matched PSNR-Y {row.difference:+.4f} "
            f"[{row.low:+.4f}, {row.high:+.4f}] (+ = better; n = {row.images} images, p = {row.p:.2g})"
        )
    print(f"{time.perf_counter() - started:.0f} s; wrote {args.out}/fronts.json, fronts.csv, fronts.png")


def _figure(table: pd.DataFrame, losses: list[str]) -> plt.Figure:
    """The fronts averaged over images: PSNR-Y across, LPIPS-Alex up, one line per loss from the warm start."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    means = table.groupby(["loss", "weight"])[JUDGES].mean().reset_index()
    for loss in losses:
        front = means[means["loss"] == loss].sort_values("weight")
        axis.plot(front["psnr_y"], front["lpips_alex"], marker="o", label=loss)
        for point in front.itertuples():
            axis.annotate(f"{point.weight:g}", (point.psnr_y, point.lpips_alex), fontsize=7)
    axis.set_xlabel("PSNR-Y (dB, higher = more faithful)")
    axis.set_ylabel("LPIPS-Alex (lower = better)")
    axis.set_title("Trade-off fronts over train.perceptual_weight (mean of the test images)")
    axis.legend()
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
