"""Copy the study preset's results into docs/study/, so the `report` stage renders them from files.

Run the study preset in a checkout (``make study``, i.e. ``python -m psychovis.pipeline.presets study``), then,
from this repository::

    python benchmarks/collect_study.py --from /path/to/that/checkout --wall-minutes 41 --cpu-minutes 60

It copies ``data/evaluate/scores.json`` (as evaluate.json), ``data/compare/differences.csv`` (and
``inference.csv``/``inference.json``, the image-level verdicts, when present) and
writes ``facts.json`` (what was run, read from that checkout's params.yaml). Then ``dvc repro report``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="the checkout that ran the study")
    parser.add_argument("--wall-minutes", type=float, default=None, help="how long `dvc exp run` took")
    parser.add_argument("--cpu-minutes", type=float, default=None, help="its CPU time (user + system)")
    parser.add_argument("--machine", default="a 2-core CPU", help="where it ran")
    args = parser.parse_args()
    destination = ROOT / "docs/study"
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.source / "data/evaluate/scores.json", destination / "evaluate.json")
    shutil.copyfile(args.source / "data/compare/differences.csv", destination / "differences.csv")
    for name in ("inference.csv", "inference.json"):  # images as the unit of inference (compare stage)
        if (args.source / "data/compare" / name).is_file():
            shutil.copyfile(args.source / "data/compare" / name, destination / name)
    params = yaml.safe_load((args.source / "params.yaml").read_text())
    train, pretrain, compare = params["train"], params["pretrain"], params["compare"]
    pairs = int(pd.read_csv(destination / "differences.csv")["n"].max())
    held_out = "real photographs (Debian `scratch`, CC-BY-SA-3.0)" if train["image_dir"] == "scratch" else "images"
    wall = f" {args.wall_minutes:.0f} min of `dvc exp run` on {args.machine}" if args.wall_minutes else ""
    cpu = f" ({args.cpu_minutes:.0f} min of CPU time)" if args.cpu_minutes else ""
    facts = (
        f"The study preset: 4x super-resolution of {train['test_images']} held-out {held_out}, full size; "
        f"{len(train['seeds'])} seeds, each an independent run (its own L1 warm start of {pretrain['iterations']} "
        f"steps, every loss fine-tuned from it for {train['iterations']} steps); {pairs} (seed, image) pairs per "
        f"comparison, {compare['resamples']} paired bootstrap resamples of the pairs.{wall}{cpu}."
    )
    record = {
        "title": f"The study: {train['test_images']} held-out {held_out.split(' (')[0]}, "
        f"{len(train['seeds'])} independent runs",
        "facts": facts,
        "warm_start_per_seed": True,
        "seeds": train["seeds"],
        "image_dir": train["image_dir"],
        "test_images": train["test_images"],
        "iterations": train["iterations"],
        "pretrain_iterations": pretrain["iterations"],
        "wall_minutes": args.wall_minutes,
        "cpu_minutes": args.cpu_minutes,
    }
    (destination / "facts.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"copied the study's metrics into {destination.relative_to(ROOT)}; now run `dvc repro report`")


if __name__ == "__main__":
    main()
