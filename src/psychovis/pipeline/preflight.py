"""Cheap checks first: what a stage can refuse without torch, MLflow or pandas, refused before they load.

A stage's heavy imports take seconds (5-6 s on a busy 2-core machine); a bad value in
``params.yaml`` must not cost that. :mod:`psychovis.pipeline.stage_start`, the first import of every
stage script, calls :func:`check_before_imports`: it reads the stage's sections
(:data:`psychovis.pipeline.params.STAGE_SECTIONS`, by the script's name) and checks them (YAML, kinds,
values, combinations such as ``train.processes`` against the batch), ``MLFLOW_TRACKING_URI``, and
the stage's own torch-free checks (:data:`STAGE_CHECKS`: a fine-tune's weights file, its kind, size,
format, ``scheme`` and ``layers``), and a refusal is one line and exit code 2 in about a second.
:func:`psychovis.pipeline.runner.run_stage` runs the same :func:`startup_checks` again (a stage run
in-process, or a script that is no stage of dvc.yaml, has not been through here), which costs
milliseconds; the stage's own code repeats what :data:`STAGE_CHECKS` checked (the loss reads its file).

Import-light: this module imports no numerical or tracking library beyond numpy and YAML.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from psychovis import weights_file
from psychovis.errors import PsychovisError, one_line
from psychovis.names import GEOMETRY_LOSS, WEIGHTED_LOSSES
from psychovis.pipeline import params as params_module
from psychovis.pipeline import tracking
from psychovis.pipeline.inputs import WEIGHTS_DIR, read_reference_geometry

DEBUG_ENV = "PSYCHOVIS_DEBUG"
"""Set to anything but ``0`` (or pass ``--debug``) to see tracebacks instead of the one line."""


def debug_requested(flag: bool = False) -> bool:
    """Whether tracebacks are wanted: ``--debug`` given (``flag``) or :data:`DEBUG_ENV` set."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def startup_checks(params_path: str | Path, sections: Sequence[str], root: Path) -> dict[str, dict[str, Any]]:
    """Every torch-free check a stage makes before its work; returns the validated sections.

    Args:
        params_path: the params file (``--params``, default ``params.yaml``).
        sections: the sections the stage reads (``images``, the safety limits, is always added).
        root: the working directory (where the default ``mlflow.db`` lives).

    Raises:
        ParamsError: the params file or a value in it is invalid.
        TrackingError: ``MLFLOW_TRACKING_URI`` is unusable (bad scheme, damaged store, server down).
    """
    loaded = params_module.load(params_path, list(dict.fromkeys([*sections, "images"])))
    # A shared tracking server that is down (or is not MLflow) is reported now, not after minutes of work.
    tracking.check_reachable(tracking.tracking_uri(root))
    return loaded


def check_weights_of_the_loss(options: argparse.Namespace, params: Mapping[str, Mapping[str, Any]]) -> None:
    """A fine-tune of a weighted loss (``--loss topk``) needs ``data/weights/<loss>.safetensors`` of that scheme.

    A missing file, another scheme's file (it trained silently under the wrong loss name) or one
    with no layers is refused now, not after torch and the training images were loaded; so is a
    ``geometry_aware`` fine-tune without the `modelfest` stage's reference geometry for its layers.
    """
    if options.loss in WEIGHTED_LOSSES:
        weights_file.check_file(WEIGHTS_DIR / f"{options.loss}.safetensors", scheme=options.loss)
    if options.loss == GEOMETRY_LOSS:
        read_reference_geometry(params["train"]["layers"])


STAGE_CHECKS: dict[str, Callable[[argparse.Namespace, Mapping[str, Mapping[str, Any]]], None]] = {
    "train": check_weights_of_the_loss,
}
"""A stage's torch-free checks beyond its params, given its command line and its validated params."""


def _options() -> argparse.ArgumentParser:
    """The options of the stages that the early checks need (the stage's own parser comes later)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--loss")  # the training stages'
    return parser


def check_before_imports(argv: Sequence[str] | None = None) -> None:
    """Run :func:`startup_checks` for the stage script ``argv[0]``; on a refusal print one line and exit 2.

    Does nothing for a script that is not a stage (its name is no key of ``STAGE_SECTIONS``), for
    ``--help``, or when the command line cannot be read (the stage's own parser then says why).
    With ``--debug`` (or :data:`DEBUG_ENV`) the error is raised with its traceback.
    """
    argv = list(sys.argv if argv is None else argv)
    stage = Path(argv[0]).stem if argv else ""
    sections = params_module.STAGE_SECTIONS.get(stage)
    if sections is None or any(arg in ("-h", "--help") for arg in argv[1:]):
        return
    try:
        options, _ = _options().parse_known_args(argv[1:])
    except argparse.ArgumentError:
        return
    try:
        loaded = startup_checks(options.params, sections, Path.cwd())
        if stage in STAGE_CHECKS:
            STAGE_CHECKS[stage](options, loaded)
    except PsychovisError as exc:
        if debug_requested(options.debug):
            raise
        print(f"psychovis {stage}: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
