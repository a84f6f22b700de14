"""Which plots ``dvc plots diff`` leaves out, per revision, and why.

``dvc plots diff -o out A B`` draws a revision's image only if the image is in git or in the local
DVC cache: a cached PNG of an experiment run on another machine, or of a revision whose cache was
not pulled, is silently left out (the command exits 0 and says only "DVC failed to load some plots
for following revisions"). A plot a revision does not declare yet is left out without any message.
:func:`missing_plots` reads DVC's own ``--json`` answer and names each missing plot per revision
(``python -m psychovis.pipeline.plots_check A B``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from psychovis.errors import DataError

NOT_IN_CACHE = (
    "declared, but its file is neither in git nor in the local DVC cache: `dvc pull` (or `dvc exp pull` an "
    "experiment) from the remote it was pushed to, or `dvc push` it from the machine that made it"
)
NOT_DECLARED = "not declared (or not made) at that revision"


def plots_diff_json(revisions: Sequence[str], cwd: str | Path = ".") -> dict:
    """DVC's ``dvc plots diff --json REVISIONS`` answer (images copied to a temporary folder, then dropped).

    Args:
        revisions: what ``dvc plots diff`` takes: none (workspace vs HEAD), one (workspace vs it) or more.
        cwd: a folder inside the DVC repository.

    Returns:
        The parsed JSON: ``data`` (plot path -> entries with their ``revisions``) and ``errors``.

    Raises:
        DataError: DVC failed (not a DVC repository, an unknown revision, ...), with its last line.
    """
    with tempfile.TemporaryDirectory(prefix="plots-check-") as out:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "plots", "diff", "--json", "-o", out, *revisions],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0:
        raise DataError(f"dvc plots diff {' '.join(revisions)} failed: {lines[-1] if lines else done.returncode}")
    try:
        return json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise DataError(f"dvc plots diff --json printed no JSON: {done.stdout[:200]!r}") from None


def missing_plots(revisions: Sequence[str], cwd: str | Path = ".") -> dict[str, list[tuple[str, str]]]:
    """Per revision, the plots ``dvc plots diff REVISIONS`` leaves out and why.

    A plot is missing from a revision when another revision draws it and this one does not: its
    file could not be loaded (:data:`NOT_IN_CACHE` for a cached image that was never pulled, else
    DVC's own message) or the revision does not declare it (:data:`NOT_DECLARED`).

    Args:
        revisions: as for ``dvc plots diff`` (none: workspace vs HEAD; one: workspace vs it).
        cwd: a folder inside the DVC repository.

    Returns:
        Revision (as DVC names it: ``workspace`` for the working tree) -> ``[(plot path, reason)]``,
        sorted by path; revisions that miss nothing are left out, so ``{}`` means complete.
    """
    answer = plots_diff_json(revisions, cwd)
    drawn: dict[str, set[str]] = {}
    for path, entries in (answer.get("data") or {}).items():
        for entry in entries:
            drawn.setdefault(path, set()).update(entry.get("revisions", []))
    failed: dict[tuple[str, str], str] = {}
    for error in answer.get("errors") or []:
        path = error.get("name") or error.get("source") or "?"
        message = str(error.get("msg", ""))
        reason = NOT_IN_CACHE if "No storage files available" in message else message or str(error.get("type"))
        failed[(str(error.get("rev")), path)] = reason
        drawn.setdefault(path, set())
    named = list(revisions) if len(revisions) >= 2 else ["workspace", *(revisions or ["HEAD"])]
    every = list(dict.fromkeys([*named, *(rev for revs in drawn.values() for rev in revs)]))
    missing: dict[str, list[tuple[str, str]]] = {}
    for rev in every:
        for path in sorted(drawn):
            if rev not in drawn[path]:
                missing.setdefault(rev, []).append((path, failed.get((rev, path), NOT_DECLARED)))
    return missing


def report(missing: dict[str, list[tuple[str, str]]], revisions: Sequence[str]) -> str:
    """The text ``plots-check`` prints: one line per missing plot, grouped by revision."""
    asked = " ".join(revisions) or "(workspace vs HEAD)"
    if not missing:
        return f"dvc plots diff {asked}: every plot is drawn for every revision"
    lines = [f"dvc plots diff {asked} leaves out {sum(len(paths) for paths in missing.values())} plot(s):"]
    for rev, paths in missing.items():
        lines.append(f"  {rev}:")
        lines += [f"    {path}: {reason}" for path, reason in paths]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the plots ``dvc plots diff REVISIONS`` leaves out, per revision.

    Args:
        argv: the revisions, as for ``dvc plots diff`` (default: the command line's).

    Returns:
        0 when every plot is drawn for every revision, 1 when some are missing, 2 when DVC failed.
    """
    import argparse

    from psychovis.errors import PsychovisError

    parser = argparse.ArgumentParser(
        prog="python -m psychovis.pipeline.plots_check",
        description="name the plots `dvc plots diff REV ...` leaves out",
    )
    parser.add_argument("revisions", nargs="*", metavar="REV", help="as for dvc plots diff (none: workspace vs HEAD)")
    revisions = parser.parse_args(argv).revisions
    try:
        missing = missing_plots(revisions)
    except PsychovisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(missing, revisions))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
