"""``python -m psychovis list [WHAT]``: the names a parameter or an API argument may take.

``python -m psychovis plots-check [REV ...]``: the plots ``dvc plots diff REV ...`` leaves out, per
revision (:mod:`psychovis.pipeline.plots_check`); exit status 1 when any is missing.

Torch-free: ``list`` reads :mod:`psychovis.names`, the vocabularies the params check validates against.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from psychovis import names

CATALOGUE: dict[str, tuple[tuple[str, ...], str]] = {
    "losses": (names.LOSSES, "training losses of the SR models (train.losses; PsychovisualLoss weights)"),
    "weights": (names.WEIGHT_SCHEMES, "per-map weight schemes (one <scheme>.safetensors file each)"),
    "judges": (names.JUDGES, "image-quality judges of the evaluate stage (evaluate.judges)"),
    "distances": (names.DISTANCES, "image distances of the psychophysics and human-judgement stages"),
    "backbones": (names.BACKBONES, "networks with offline weights (base.backbone, atlas.backbones)"),
    "csfs": (names.CSF_MODELS, "human contrast sensitivity functions (vfss.csf, psychophysics.reference_csfs)"),
    "mappings": (names.FREQUENCY_MAPPINGS, "cycles/degree to cycles/pixel (stimuli.frequency_mapping)"),
    "datasets": (names.DATASETS, "human-judgement data sets with a reader (human_judgement)"),
    "devices": (names.DEVICES, "base.device"),
}
"""What ``list`` shows: a name per family, its allowed values and where they are used."""


def main(argv: Sequence[str] | None = None) -> int:
    """Print the families asked for (all by default), one name per line under a heading."""
    parser = argparse.ArgumentParser(prog="python -m psychovis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the losses, judges, backbones, CSFs, weight schemes, ...")
    listing.add_argument("what", nargs="*", metavar="WHAT", help="any of: " + ", ".join(CATALOGUE))
    checking = commands.add_parser("plots-check", help="name the plots `dvc plots diff REV ...` leaves out")
    checking.add_argument("revisions", nargs="*", metavar="REV", help="as for dvc plots diff (none: workspace vs HEAD)")
    args = parser.parse_args(argv)
    if args.command == "plots-check":
        return plots_check(args.revisions)
    unknown = [family for family in args.what if family not in CATALOGUE]
    if unknown:
        parser.error(f"unknown list {unknown[0][:60]!r}; choose from {', '.join(CATALOGUE)}")
    for family in args.what or CATALOGUE:
        values, description = CATALOGUE[family]
        print(f"{family}: {description}")
        for value in values:
            print(f"  {value}")
    return 0


def plots_check(revisions: Sequence[str]) -> int:
    """Print the plots ``dvc plots diff REVISIONS`` leaves out, per revision.

    Args:
        revisions: as for ``dvc plots diff``.

    Returns:
        0 when every plot is drawn for every revision, 1 when some are missing, 2 when DVC failed.
    """
    from psychovis.errors import PsychovisError
    from psychovis.pipeline import plots_check as check

    try:
        missing = check.missing_plots(revisions)
    except PsychovisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(check.report(missing, revisions))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
