"""Tune `train.perceptual_weight` once, on the plain VGG loss, against a validation image.

The weight of the perceptual term decides how far a fine-tune moves from the L1 warm start. It is
tuned once, on the *baseline* (plain VGG) loss, so the proposed losses get no advantage from it,
and on an image that is neither trained on nor in the test set: the bundled set is split with one
more held-out image (``flower``, after the three test images), the warm start is retrained on the
rest, and each candidate weight fine-tunes it with the pipeline's own recipe (``params.yaml``).

Criterion: the weight with the lowest DISTS and LPIPS-Alex (averaged ranks) on the validation
image whose PSNR-Y stays within ``--max-psnr-drop`` dB of the warm start. Both judges are
independent of the loss's relu3_2 weighting (DISTS shares the VGG-16 conv weights; README).

Usage (about 5 minutes on a 2-core CPU)::

    python benchmarks/tune_perceptual_weight.py --weights 0.001 0.003 0.01 0.03 0.1
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from psychovis.sr.data import load_dataset
from psychovis.sr.evaluation import score, super_resolve_all
from psychovis.sr.training import TrainConfig, save_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
JUDGES = ["psnr_y", "lpips_alex", "dists", "artefact_db"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--max-psnr-drop", type=float, default=1.0, help="dB below the warm start allowed")
    parser.add_argument("--upsampler", default=None, help="override train.upsampler (icnr, resize_conv, ...)")
    parser.add_argument("--out", type=Path, default=Path("tune_perceptual_weight.json"))
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section, pretrain = params["train"], params["pretrain"]
    if args.upsampler:
        section["upsampler"] = args.upsampler
    seed = params["base"]["seed"]
    images, held_out = load_dataset(section["image_dir"], section["test_images"] + 1, section["crop_size"])
    validation = dict(list(held_out.items())[section["test_images"] :])  # the one after the test images
    print(f"validation image(s): {list(validation)}; training on {len(images)} images; {section['upsampler']}")
    started = time.perf_counter()
    warm = TrainConfig.from_params(
        section, "pixel", seed, iterations=pretrain["iterations"], learning_rate=pretrain["learning_rate"]
    )
    model, _ = train(warm, list(images.values()), progress=False)
    scratch = Path(tempfile.mkdtemp(prefix="psychovis-tune-"))  # not data/models: a stage's dependency
    warm_path = save_checkpoint(model, warm, warm.iterations, scratch / "pretrain.pt")
    models = {("pretrain", 0): model}
    for weight in args.weights:
        config = TrainConfig.from_params(section, "vgg", seed, perceptual_weight=weight)
        models[(f"vgg@{weight:g}", 0)], _ = train(config, list(images.values()), progress=False, init_from=warm_path)
        print(f"  fine-tuned perceptual_weight={weight:g} ({time.perf_counter() - started:.0f} s)")
    shutil.rmtree(scratch)
    references, outputs = super_resolve_all(models, validation, section["scale"])
    per_image, _ = score(references, outputs, JUDGES, section["scale"], section["scale"], 4, progress=False)
    table = per_image.pivot_table(index="method", columns="judge", values="value", sort=False)[JUDGES]
    candidates = table.drop(index=["bicubic", "pretrain"])
    allowed = candidates[candidates["psnr_y"] >= table.loc["pretrain", "psnr_y"] - args.max_psnr_drop]
    ranks = allowed[["lpips_alex", "dists"]].rank().mean(axis=1)
    chosen = float(ranks.idxmin().split("@")[1]) if len(ranks) else None
    print(table.round(4).to_string())
    print(
        f"chosen perceptual_weight: {chosen} (lowest mean rank of LPIPS-Alex and DISTS within "
        f"{args.max_psnr_drop} dB PSNR-Y of the warm start); {time.perf_counter() - started:.0f} s"
    )
    result = {
        "upsampler": section["upsampler"],
        "validation": list(validation),
        "chosen": chosen,
        "table": json.loads(table.to_json(orient="index")),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
