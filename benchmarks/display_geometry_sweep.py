"""The ``geometry_aware`` loss at other display geometries: a sensitivity analysis on the study's checkout.

The loss resamples the photos from the display's ``train.px_per_degree`` (60 by default) to the network's
reference px/deg (fitted by the `modelfest` stage). The display is an assumption, so it is swept: in the
checkout that ran the study (``make study``), each ``--px-per-degree`` value is one
``dvc exp run -S train.px_per_degree=<value>`` (only ``train_geometry``, ``evaluate`` (new models only: the
others' scores are cached), ``compare`` and ``report`` rerun). The image-level rows of ``geometry_aware``
(``data/compare/inference.csv``: every judge, against every baseline) of the study's own geometry and of each
swept one go to ``docs/study/geometry_sweep.csv`` here; then ``dvc repro report`` renders them. The checkout's
workspace is put back at its own geometry at the end (DVC's run cache: nothing retrains)::

    python benchmarks/display_geometry_sweep.py --checkout /path/to/study --px-per-degree 40 120

A display at the reference geometry itself needs no run: the loss is then the plain ``vgg`` loss exactly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from psychovis.names import GEOMETRY_LOSS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/study/geometry_sweep.csv"


def rows_at(checkout: Path, px_per_degree: float, reference: float) -> pd.DataFrame:
    """The ``geometry_aware`` rows of the checkout's image-level inference table, labelled by geometry."""
    inference = pd.read_csv(checkout / "data/compare/inference.csv")
    rows = inference[inference["method"] == GEOMETRY_LOSS].copy()
    if rows.empty:
        raise SystemExit(f"{checkout}: data/compare/inference.csv has no {GEOMETRY_LOSS} rows (train.geometry_losses?)")
    rows.insert(1, "px_per_degree", float(px_per_degree))
    rows.insert(2, "reference_px_per_degree", float(reference))
    return rows


def run_at(checkout: Path, px_per_degree: float) -> None:
    """``dvc exp run -S train.px_per_degree=<value>`` in the checkout (its output streams through)."""
    command = ["dvc", "exp", "run", "-S", f"train.px_per_degree={px_per_degree:g}"]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=checkout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="the checkout that ran the study")
    parser.add_argument("--px-per-degree", type=float, nargs="+", required=True, help="display geometries to run")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    own = float(yaml.safe_load((checkout / "params.yaml").read_text())["train"]["px_per_degree"])
    record = json.loads((checkout / "data/modelfest/reference_geometry.json").read_text())
    reference = float(record["reference_px_per_degree"])
    tables = [rows_at(checkout, own, reference)]
    try:
        for value in args.px_per_degree:
            if value != own:
                run_at(checkout, value)
                tables.append(rows_at(checkout, value, reference))
    finally:
        run_at(checkout, own)  # the study's own state back in the workspace (run cache: no retraining)
    table = pd.concat(tables, ignore_index=True).sort_values(["px_per_degree", "baseline", "judge"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT, index=False, float_format="%.6g")
    primary = table[table["primary"].astype(bool) & (table["baseline"] == "vgg")]
    print(primary[["px_per_degree", "mean", "ci_low", "ci_high", "verdict"]].to_string(index=False))
    print(f"wrote {OUT.relative_to(ROOT)}; now `dvc repro report`")


if __name__ == "__main__":
    main()
