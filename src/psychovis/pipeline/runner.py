"""The stage runner: what every stage script shares (params, device, MLflow run, one-line errors, exit codes).

A stage script is ``main(ctx)`` plus one call::

    def main(ctx: StageContext) -> None:
        p = ctx.params["vfss"]
        with ctx.run() as run:       # the MLflow run, logging the sections the stage was given
            ...

    if __name__ == "__main__":
        run_stage("vfss", main, sections=["vfss"])
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psychovis.errors import ParamsError, PsychovisError
from psychovis.names import BACKBONES, DEVICES

if TYPE_CHECKING:
    import torch
from psychovis.pipeline import params as params_module
from psychovis.pipeline import params_trace, tracking


@dataclass
class StageContext:
    """What a stage script receives: its validated params, parsed arguments and the repo root.

    Attributes:
        stage: the stage's name (the MLflow run's ``stage`` tag).
        params: the validated sections the stage was given, by name.
        args: the parsed command line.
        root: the repository root (the working directory DVC runs stages in).
    """

    stage: str
    params: dict[str, dict[str, Any]]
    args: argparse.Namespace
    root: Path

    @property
    def logged_params(self) -> dict[str, dict[str, Any]]:
        """Every section the stage reads: logged to MLflow and hashed into the run's tags."""
        return dict(self.params)

    @cached_property
    def device(self) -> torch.device:
        """``base.device`` resolved (``auto``: CUDA when present, else CPU)."""
        return resolve_device(self.params["base"]["device"])

    def run(
        self, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[tracking.StageRun]:
        """The stage's MLflow run (named ``name``, default the stage), with :attr:`logged_params`."""
        return tracking.stage_run(self.stage, self.logged_params, self.root, run_name=name, extra_tags=tags)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    import torch  # only stages that compute pay for importing torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("base.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if device not in DEVICES:
        raise ParamsError(f"base.device must be one of {list(DEVICES)}, got {device!r}")
    return torch.device(device)


def backbone_parser(stage: str, help: str) -> argparse.ArgumentParser:
    """The command line of a per-backbone stage (a DVC ``matrix`` over backbones): ``--backbone NAME``."""
    parser = argparse.ArgumentParser(description=f"psychovis `{stage}` stage")
    parser.add_argument("--backbone", required=True, choices=BACKBONES, help=help)
    return parser


def run_stage(
    stage: str,
    main: Callable[[StageContext], None],
    sections: Sequence[str],
    parser: argparse.ArgumentParser | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Validate params, then run ``main``; a :class:`PsychovisError` becomes one line and exit 2.

    Pass ``--debug`` (or set ``PSYCHOVIS_DEBUG=1``) to see the full traceback instead.
    """
    parser = parser or argparse.ArgumentParser(description=f"psychovis `{stage}` stage")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("PSYCHOVIS_DEBUG", "") not in ("", "0")
    try:
        validated = params_trace.traced(stage, params_module.load(args.params, list(sections)))
        # A shared tracking server that is down is reported now, not after minutes of work.
        tracking.check_reachable(tracking.tracking_uri(Path.cwd()))
        main(StageContext(stage, validated, args, Path.cwd()))
    except PsychovisError as exc:
        if debug:
            raise
        print(f"psychovis {stage}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            f"psychovis {stage}: interrupted; outputs are written atomically, nothing half-written was left",
            file=sys.stderr,
        )
        sys.exit(130)
