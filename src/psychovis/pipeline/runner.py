"""Shared entry point of the stage scripts: params, errors as one line, exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psychovis.errors import PsychovisError
from psychovis.pipeline import params as params_module
from psychovis.pipeline import tracking


@dataclass
class StageContext:
    """What a stage script receives: its validated params, parsed arguments and the repo root."""

    stage: str
    params: dict[str, dict[str, Any]]
    args: argparse.Namespace
    root: Path

    def sections(self, *names: str) -> dict[str, dict[str, Any]]:
        """The params sections a stage reads (logged to MLflow and hashed)."""
        return {name: self.params[name] for name in names}


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
        validated = params_module.load(args.params, list(sections))
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
