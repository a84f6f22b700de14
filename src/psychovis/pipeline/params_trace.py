"""Which ``params.yaml`` keys a stage actually reads: the check behind dvc.yaml's per-key ``params``.

DVC reruns a stage when a params key it lists changes, so each stage lists exactly the keys it reads
(``train.perceptual_weight``, not all of ``train``). To check a listing, run the stage with
``PSYCHOVIS_PARAMS_TRACE=<folder>`` set: :func:`traced` hands the stage sections that record every
key looked up (``p["top_k"]`` or ``p.get("top_k")``), and on exit the stage writes
``<folder>/<stage>-<pid>.json``: ``{"stage", "argv", "read": ["weights.top_k", ...], "wrote": [...]}``,
``wrote`` being the outputs the stage's transaction replaced (paths relative to the stage's folder;
see :func:`note_written`). ``tests/stages/test_params_deps.py`` and ``test_dvc_outs.py`` compare
those files with dvc.yaml's params and outs.

Without the variable nothing changes: the stage gets its plain dicts.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV = "PSYCHOVIS_PARAMS_TRACE"
_WROTE: list[str] = []


class TracedSection(dict):
    """A params section (a plain ``dict`` to every caller) that notes each key looked up."""

    def __init__(self, section: str, values: Mapping[str, Any], read: set[str]) -> None:
        super().__init__(values)
        self._section = section
        self._read = read

    def __getitem__(self, key: str) -> Any:
        self._read.add(f"{self._section}.{key}")
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._read.add(f"{self._section}.{key}")
        return super().get(key, default)

    def __reduce__(self) -> tuple[Any, ...]:
        # copies and pickles are plain dicts (the recording stays with the stage's own sections)
        return (dict, (dict(self),))


def traced(stage: str, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``params`` unchanged, or (with ``PSYCHOVIS_PARAMS_TRACE`` set) sections that record reads.

    Args:
        stage: the stage's name (written into the trace file).
        params: the validated sections, by name.

    Returns:
        The sections to give the stage.
    """
    folder = os.environ.get(ENV, "")
    if not folder:
        return params
    read: set[str] = set()
    # Written at exit, so reads after a failure (or during sys.exit) are kept too.
    atexit.register(_write, Path(folder), stage, list(sys.argv[1:]), read)
    return {section: TracedSection(section, values, read) for section, values in params.items()}


def note_written(paths: list[Path], root: Path) -> None:
    """Record the outputs a stage wrote (its transaction's, at success) for the trace file, if tracing."""
    if os.environ.get(ENV, ""):
        _WROTE.extend(os.path.relpath(path, root).replace(os.sep, "/") for path in paths)


def _write(folder: Path, stage: str, argv: list[str], read: set[str]) -> None:
    from psychovis.io import write_json  # at exit only: keeps this module import-light

    folder.mkdir(parents=True, exist_ok=True)
    trace = {"stage": stage, "argv": argv, "read": sorted(read), "wrote": sorted(set(_WROTE))}
    write_json(trace, folder / f"{stage}-{os.getpid()}.json")


def read_traces(folder: str | Path) -> dict[str, set[str]]:
    """Stage name -> the union of the keys its runs read, from every trace file in ``folder``."""
    found: dict[str, set[str]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        trace = json.loads(path.read_text())
        found.setdefault(trace["stage"], set()).update(trace["read"])
    return found
