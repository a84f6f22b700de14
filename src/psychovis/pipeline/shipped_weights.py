"""Refresh the weights shipped inside psychovis from a finished ``dvc repro weights``.

The shipped files (:mod:`psychovis.distances.pretrained`) are copies of the `weights` stage's
exports, with provenance added to their metadata: the source file and its md5, the git commit,
and the params keys that shaped them (from the file, or else from ``dvc.lock``). Run at the
repository root, then commit the changed files::

    python -m psychovis.pipeline.shipped_weights data/weights
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

from psychovis.distances.pretrained import FOLDER, SHIPPED_SCHEMES
from psychovis.pipeline.inputs import WEIGHTS_DIR

STAGE = "weights"
"""The stage whose exports are shipped."""


def _git_commit(folder: Path) -> str:
    """The commit of the repository holding ``folder`` (``-dirty`` when it has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty.strip() else "")


def _locked_params(source: Path) -> dict | None:
    """The params the `weights` stage last ran with, from ``dvc.lock`` beside ``data/``, if there."""
    lock = source.resolve().parent.parent / "dvc.lock"
    try:
        stages = yaml.safe_load(lock.read_text())["stages"]
        return stages[STAGE]["params"]["params.yaml"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (no local folders in shipped files)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def refresh(source: str | Path = WEIGHTS_DIR, folder: Path = FOLDER) -> list[Path]:
    """Copy a pipeline run's weights files into the package, with provenance metadata.

    Args:
        source: the `weights` stage's output folder (``data/weights``).
        folder: where to write (the package folder).

    Returns:
        The files written.

    Raises:
        WeightsError: a source file is missing or invalid (checked in full before any is written).
    """
    from psychovis.feature_weights import SHAPING_KEYS, FeatureWeights, shaping_params
    from psychovis.weights_file import read_weights_bytes

    source = Path(source)
    locked = _locked_params(source)
    commit = _git_commit(source.resolve().parent if source.resolve().parent.exists() else Path.cwd())
    prepared = []
    for name in SHIPPED_SCHEMES:
        path = source / f"{name}.safetensors"
        data = read_weights_bytes(path)
        weights = FeatureWeights.from_bytes(data, path)
        # The whole-section params hash of older files changed with unrelated keys: keep only what shaped them.
        metadata = {key: value for key, value in weights.metadata.items() if key != "params_hash"}
        if "vfss.csf" not in SHAPING_KEYS[name]:
            metadata.pop("csf", None)
        if "params" not in metadata and locked is not None:
            metadata.update(shaping_params(name, locked))
        metadata.update(
            {
                "provenance": f"psychovis `{STAGE}` stage output {_display(path)}",
                "source_md5": hashlib.md5(data).hexdigest(),
                "git_commit": commit,
            }
        )
        prepared.append((name, FeatureWeights(weights.backbone, weights.scheme, weights.weights, metadata)))
    return [weights.save(folder / f"{name}.safetensors") for name, weights in prepared]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m psychovis.pipeline.shipped_weights [data/weights]``: refresh the shipped weights."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", default=str(WEIGHTS_DIR), help="the weights stage's output folder")
    args = parser.parse_args(argv)
    for path in refresh(args.source):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
