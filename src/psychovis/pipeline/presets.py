"""Named experiment presets: what the default run leaves out to stay within its time budget.

The default ``dvc repro`` is sized to finish within 15 minutes on a 2-core CPU (one crop seed, the
paper's loss and top-k beside the baselines, the 3 bundled test images, one atlas backbone). A preset
is a list of ``-S key=value`` overrides run as one ``dvc exp run -n <name>``, so its results sit beside
the default's in ``make exp`` and ``dvc exp show`` and never overwrite the committed ones:

    python -m psychovis.pipeline.presets study        # runs `dvc exp run -n study -S ...`
    python -m psychovis.pipeline.presets study --print  # only prints the command
    make study                                         # the same as the first line

Every preset is checked against the params validator by the tests, so a renamed key fails there first.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named set of params overrides (``section.key`` -> value) and what it is for."""

    name: str
    purpose: str
    overrides: Mapping[str, Any]

    def flags(self) -> list[str]:
        """The overrides as ``dvc exp run`` arguments: ``-S key=value`` (values as JSON, which YAML reads)."""
        # JSON is YAML: DVC reads each value back exactly (strings quoted, lists in brackets)
        return [item for key, value in self.overrides.items() for item in ("-S", f"{key}={json.dumps(value)}")]

    def command(self) -> list[str]:
        """``dvc exp run -n <name> -S ...``."""
        return ["dvc", "exp", "run", "-n", self.name, *self.flags()]


STUDY_LOSSES = ["vfss", "topk", "vfss_normalised", "lpips_weighted", "human_fitted"]
"""Every weighting of the study (the default run trains the first two)."""

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "study",
            "the full SR design: 24 real held-out photographs, 3 crop seeds, every weighting, "
            "every atlas backbone (hours on a 2-core CPU)",
            {
                "train.image_dir": "scratch",
                "train.test_images": 24,
                "train.seeds": [0, 1, 2],
                "train.weighted_losses": STUDY_LOSSES,
                "train.geometry_losses": ["geometry_aware"],
                "atlas.backbones": ["vgg16", "alexnet", "vgg16_random"],
            },
        ),
        Preset(
            "modelfest-study",
            "every distance of the catalogue as a ModelFest observer, and the deep geometry sweep",
            {
                "modelfest.distances": [
                    "pixel_mse",
                    "vgg",
                    "vfss",
                    "topk",
                    "bottomk",
                    "randomk",
                    "gain_normalised",
                    "lpips_vgg",
                    "lpips_alex",
                    "dists",
                    "alexnet",
                    "vgg16_random",
                ],
                "modelfest.sweep_distances": ["vgg", "vfss", "lpips_vgg"],
                "modelfest.deep_sweep_px_per_degree": [30, 60, 61.8, 240],
            },
        ),
    )
}


def apply(params: Mapping[str, Mapping[str, Any]], preset: Preset) -> dict[str, dict[str, Any]]:
    """``params`` with ``preset``'s overrides applied (a copy; sections are copied, values replaced)."""
    applied = {section: dict(values) for section, values in params.items()}
    for key, value in preset.overrides.items():
        section, name = key.split(".", 1)
        applied.setdefault(section, {})[name] = value
    return applied


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or print) a preset's ``dvc exp run``; exit with its status."""
    parser = argparse.ArgumentParser(prog="python -m psychovis.pipeline.presets", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(PRESETS), help="the preset (none: list them)")
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    if args.name is None:
        for preset in PRESETS.values():
            print(f"{preset.name}: {preset.purpose}\n  {shlex.join(preset.command())}")
        return 0
    command = PRESETS[args.name].command()
    print(shlex.join(command), flush=True)
    if args.print:
        return 0
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
