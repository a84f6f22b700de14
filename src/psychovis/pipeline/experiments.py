"""``make exp``: what each DVC experiment changed, as a table that fits the terminal.

``dvc exp show`` puts every param and metric in one row per experiment; past a few columns it folds
the rest into ``…``, params first. This view turns the table around: one column per experiment (the
baseline commit, the workspace when it differs, then each experiment), one row per param or metric
whose value differs between them, the SR headline (``metrics/compare.json``) first. When the columns do
not fit the terminal width, they wrap into blocks, each repeating the row names.

Run ``python -m psychovis.pipeline.experiments [--all] [--width N]`` in the repository (``make exp``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADLINE = "metrics/compare.json"
"""The SR headline file: its rows come first."""

LABEL_WIDTH = 44
"""Widest row name shown; longer ones keep their end (the distinctive part) after a ``…``."""

VALUE_WIDTH = 16
"""Widest column; longer experiment names and values keep their start and a ``…``."""


@dataclass
class Experiment:
    """One column: an experiment's name and its flattened params and metrics (``file: key`` -> value)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seeds": [0, 1]}}`` -> ``{"train.seeds": [0, 1]}`` (lists stay values)."""
    if not isinstance(values, Mapping):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _column(record: Mapping[str, Any], name: str) -> Experiment:
    data = record.get("data") or {}
    params: dict[str, Any] = {}
    for source in (data.get("params") or {}).values():
        params.update(_flatten(source.get("data") or {}))
    metrics: dict[str, Any] = {}
    for path, source in (data.get("metrics") or {}).items():
        metrics.update({f"{path}: {key}": value for key, value in _flatten(source.get("data") or {}).items()})
    return Experiment(name, params, metrics)


def experiments_from_json(records: Sequence[Mapping[str, Any]]) -> list[Experiment]:
    """The columns from ``dvc exp show --json``: the baseline commit, the workspace, then each experiment.

    Args:
        records: the parsed JSON (a list of the workspace and baseline records, each with its experiments).

    Returns:
        The baseline first; the workspace only when its params or metrics differ from the baseline's.
    """
    workspace: Experiment | None = None
    columns: list[Experiment] = []
    for record in records:
        if record.get("rev") == "workspace":
            workspace = _column(record, "workspace")
            continue
        columns.append(_column(record, record.get("name") or str(record.get("rev", ""))[:7]))
        for experiment in record.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                columns.append(_column(rev, rev.get("name") or str(rev.get("rev", ""))[:7]))
    baseline = columns[0] if columns else None
    if workspace is not None and (
        baseline is None or (workspace.params, workspace.metrics) != (baseline.params, baseline.metrics)
    ):
        columns.insert(1 if baseline else 0, workspace)
    return columns


def read_experiments(repo: Path) -> list[Experiment]:
    """Run ``dvc exp show --json`` in ``repo`` and return its columns (:func:`experiments_from_json`).

    Raises:
        RuntimeError: DVC failed; the message is DVC's own last line.
    """
    beside = Path(sys.executable).parent / "dvc"  # the DVC of this environment, whatever PATH says
    command = [str(beside) if beside.exists() else "dvc", "exp", "show", "--json", "--no-pager"]
    try:
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise RuntimeError("DVC is not installed here: run `make setup` (or `pip install dvc`)") from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"`dvc exp show --json` failed in {repo}: {last[:200]}")
    return experiments_from_json(json.loads(done.stdout or "[]"))


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.5g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_format(item) for item in value) + "]"
    return str(value)


def _fit(text: str, width: int, keep: str = "start") -> str:
    """``text`` cut to ``width`` with a ``…`` where it was cut; ``keep`` its ``start``, ``end`` or both ends."""
    if len(text) <= width:
        return text
    if keep == "end":
        return "…" + text[-(width - 1) :]
    if keep == "ends":  # experiment names often differ only at the end (``sweep-1``, ``sweep-2``)
        head = (width - 1) // 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: width - 1] + "…"


def table_rows(columns: Sequence[Experiment], only_changed: bool = True) -> list[tuple[str, list[str]]]:
    """Section headings (``(heading, [])``) and rows (``(name, [value per column])``) to show.

    Params come first, then the metrics file by file (the SR headline first), each in the order DVC
    reports them; with ``only_changed`` a row whose values are all equal is left out.
    """

    def section(heading: str, keys: list[str], read: str) -> list[tuple[str, list[str]]]:
        rows = []
        for key in keys:
            values = [_format(getattr(column, read).get(key)) for column in columns]
            if not only_changed or len(set(values)) > 1:
                rows.append((key, values))
        return [(heading, []), *rows] if rows else []

    params = list(dict.fromkeys(key for column in columns for key in column.params))
    metrics = list(dict.fromkeys(key for column in columns for key in column.metrics))
    files = list(dict.fromkeys(key.split(": ", 1)[0] for key in metrics))
    files.sort(key=lambda path: path != HEADLINE)  # the SR headline first
    rows = section("params", params, "params")
    for path in files:
        heading = f"{path} (the SR headline: + = better than the first baseline)" if path == HEADLINE else path
        keys = [key for key in metrics if key.startswith(f"{path}: ")]
        rows += [
            (name if not values else name.split(": ", 1)[1], values)
            for name, values in section(heading, keys, "metrics")
        ]
    return rows


def render(columns: Sequence[Experiment], width: int, only_changed: bool = True) -> str:
    """The table as text no wider than ``width`` (at least one experiment column per block).

    Args:
        columns: the experiments (:func:`read_experiments`), baseline first.
        width: the terminal's columns.
        only_changed: leave out rows whose values are all equal.

    Returns:
        The lines, joined; a one-line note when nothing differs.
    """
    rows = table_rows(columns, only_changed)
    if not columns:
        return "no experiments: `dvc exp run -S key=value` runs one"
    if not any(values for _, values in rows):
        return f"{len(columns)} columns ({', '.join(c.name for c in columns)}): no param or metric differs"
    label_width = min(LABEL_WIDTH, max(len(name) for name, values in rows if values) + 3, max(16, width // 3))
    widths = [
        min(VALUE_WIDTH, max(len(column.name), *(len(values[i]) for _, values in rows if values)))
        for i, column in enumerate(columns)
    ]
    blocks: list[list[int]] = [[]]
    used = label_width
    for index, column_width in enumerate(widths):
        if blocks[-1] and used + 2 + column_width > width:
            blocks.append([])
            used = label_width
        blocks[-1].append(index)
        used += 2 + column_width
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        header = " " * label_width + "".join(
            "  " + _fit(columns[i].name, widths[i], keep="ends").rjust(widths[i]) for i in block
        )
        lines.append(header.rstrip())
        for name, values in rows:
            if not values:
                lines.append(_fit(name, width))
                continue
            cells = "".join("  " + _fit(values[i], widths[i]).rjust(widths[i]) for i in block)
            lines.append((_fit("  " + name, label_width - 1, keep="end").ljust(label_width) + cells).rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the experiments of the repository in the current folder; exit 2 when DVC fails."""
    parser = argparse.ArgumentParser(
        prog="python -m psychovis.pipeline.experiments", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--all", action="store_true", help="every param and metric, not only those that differ")
    parser.add_argument("--width", type=int, default=None, help="columns (default: the terminal's)")
    args = parser.parse_args(argv)
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    try:
        columns = read_experiments(Path.cwd())
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(columns, max(width, 40), only_changed=not args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
