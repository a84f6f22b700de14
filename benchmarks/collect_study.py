"""Copy the study preset's results into docs/study/, so the `report` stage renders them from files.

Run the study preset in a checkout (README: ``dvc exp run -n study -S 'train.seeds=[0,1,2,3,4]'
-S train.iterations=450 -S train.image_dir=scratch -S train.test_images=24``), then, from this repository::

    python benchmarks/collect_study.py --from /path/to/that/checkout --wall-minutes 41

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
    wall = f" {args.wall_minutes:.0f} min of `dvc exp run` on {args.machine}." if args.wall_minutes else ""
    facts = (
        f"The study preset: {len(train['seeds'])} seeds, each an independent run (its own warm start of "
        f"{pretrain['iterations']} steps, every loss fine-tuned from it for {train['iterations']} steps; {pairs} "
        f"(seed, image) pairs per comparison, {compare['resamples']} paired bootstrap resamples of the pairs).{wall}"
    )
    record = {
        "facts": facts,
        "seeds": train["seeds"],
        "iterations": train["iterations"],
        "wall_minutes": args.wall_minutes,
    }
    (destination / "facts.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"copied the study's metrics into {destination.relative_to(ROOT)}; now run `dvc repro report`")


if __name__ == "__main__":
    main()
