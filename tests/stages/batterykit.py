"""The reliability battery's shared machinery (issue 14): run cases, check and classify their outcomes.

Not a test module. A case (:class:`test_bad_inputs.Case`) spoils a clone of a tiny prepared
project and runs one stage script as a real subprocess (:func:`test_bad_inputs._run_case`); the
battery modules (``test_battery_*.py``) run their selected cases a few at a time and check each:

- exit code 2 and exactly one line on stderr, ``psychovis <stage>: error: ...``, no traceback;
- the line matches the case's regexes (the problem and the fix);
- every file of the clone holds the same bytes as before, and no file appeared.

:func:`classify` names what went wrong in the terms of issue 14 (``traceback``, ``silent`` = exit 0,
``unclear`` = one line that does not say what the case expects, ``half-updated`` = outputs changed),
and with ``BATTERY_REPORT=<file>`` every outcome's class is appended there as a JSON line: that is
how the before/after counts of the issue were measured (the same cases against the old code).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from stagekit import Built, built_project, check, run, stage_env
from test_bad_inputs import Case, Outcome, _run_case, edit_params

WORKERS = 3  # each case is its own process, mostly importing: 3 at a time keep 2 cores busy


_PROGRESS_BAR = re.compile(r"\d+%\|")


def stderr_lines(stderr: str) -> list[str]:
    """The non-empty lines of a stage's stderr, less tqdm progress-bar frames.

    The stages' progress bars go to stderr; until tqdm honours ``TQDM_DISABLE`` (another change of
    issue 14) they are not what a failing stage says, so they are not counted as its lines.
    """
    return [line for line in stderr.splitlines() if line.strip() and not _PROGRESS_BAR.search(line)]


def stage_name(stage: str) -> str:
    return stage.partition("@")[0]


def changes(outcome: Outcome) -> tuple[list[str], list[str], list[str]]:
    """Files that appeared, were lost, or changed bytes in the case's clone."""
    appeared = sorted(outcome.after.keys() - outcome.before.keys())
    lost = sorted(outcome.before.keys() - outcome.after.keys())
    changed = sorted(
        path for path in outcome.before.keys() & outcome.after.keys() if outcome.before[path] != outcome.after[path]
    )
    return appeared, lost, changed


def classify(case: Case, outcome: Outcome) -> str:
    """``ok`` or the first of ``traceback``, ``silent``, ``crash``, ``half-updated``, ``unclear`` that applies.

    ``not-applicable``: the case's setup failed (measuring old code that lacks, e.g., ``images.max_pixels``).
    """
    lines = stderr_lines(outcome.stderr)
    if outcome.returncode == -1:
        return "not-applicable"
    if "Traceback" in outcome.stderr:
        return "traceback"
    if outcome.returncode == 0:
        return "silent"
    if outcome.returncode != 2 or len(lines) != 1:
        return "crash"
    if changes(outcome) != ([], [], []):
        return "half-updated"
    line = lines[0]
    if not line.startswith(f"psychovis {stage_name(case.stage)}: error: ") or not all(
        re.search(pattern, line, re.IGNORECASE) for pattern in case.expect
    ):
        return "unclear"
    return "ok"


def _report(module: str, results: Mapping[str, tuple[Case, Outcome]]) -> None:
    target = os.environ.get("BATTERY_REPORT")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as handle:
        for name, (case, outcome) in results.items():
            record = {
                "module": module,
                "case": name,
                "class": classify(case, outcome),
                "exit": outcome.returncode,
                "line": (stderr_lines(outcome.stderr) or [""])[-1][:300],
            }
            handle.write(json.dumps(record) + "\n")


def run_selected(
    request: pytest.FixtureRequest,
    factory: pytest.TempPathFactory,
    cases: Mapping[str, Case],
    built: Built,
    run_case: Callable[[Built, Case, Path], Outcome] = _run_case,
) -> dict[str, Outcome]:
    """Run the cases of this module that the session selected (``-k`` respected), a few at a time."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and "name" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    root = factory.mktemp(request.module.__name__.rpartition(".")[2])

    def guarded(built: Built, case: Case, case_dir: Path) -> Outcome:
        try:
            return run_case(built, case, case_dir)
        except Exception as exc:  # a setup that cannot apply (e.g. a params key the code does not know)
            return Outcome(-1, f"case setup failed: {type(exc).__name__}: {exc}", 0.0, {}, {}, case_dir)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {
            name: pool.submit(guarded, built, cases[name], root / name)
            for name in dict.fromkeys(selected)
            if name in cases
        }
        results = {name: future.result() for name, future in futures.items()}
    for name, outcome in results.items():  # shown with `pytest -s`
        print(f"{name:34s} exit {outcome.returncode} {outcome.seconds:5.1f} s | {outcome.stderr.strip()[-300:]}")
    _report(request.module.__name__, {name: (cases[name], outcome) for name, outcome in results.items()})
    return results


def assert_one_line_and_unchanged(case: Case, outcome: Outcome) -> str:
    """Exit 2, one ``psychovis <stage>: error:`` line matching ``case.expect``, every file unchanged."""
    assert outcome.returncode == 2, f"exit {outcome.returncode}, stderr:\n{outcome.stderr[-3000:]}"
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    lines = stderr_lines(outcome.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{outcome.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith(f"psychovis {stage_name(case.stage)}: error: "), line
    for pattern in case.expect:
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} not found in {line!r}"
    assert changes(outcome) == ([], [], []), f"outputs appeared, were lost or changed: {changes(outcome)}"
    return line


def by_name(cases: Sequence[Case]) -> dict[str, Case]:
    """Cases keyed by name (names must be unique)."""
    named = {case.name: case for case in cases}
    assert len(named) == len(cases), "duplicate case names"
    return named


TINY_ATLAS = {
    "backbones": ["vgg16"],
    "size": 32,
    "frequencies": 3,
    "orientations": 2,
    "phases": 1,
    "layers": ["relu1_1"],
    "batch_size": 8,
    "sensitivity_pixels_per_degree": None,
    "top_k": 4,
    "example_maps": 2,
}
PREPARED = ("tuning", "pretrain", "train@pixel-s0", "human_judgement", "atlas_features@vgg16")
_PREPARED: dict[str, Built] = {}


def prepared_project(factory: pytest.TempPathFactory) -> Built:
    """The tiny upstream project plus the outputs of the other cheap stages (:data:`PREPARED`), once per session."""
    if "prepared" not in _PREPARED:
        built = built_project(factory)
        base = factory.mktemp("prepared")
        project = built.clone(base)
        edit_params(**{f"atlas__{key}": value for key, value in TINY_ATLAS.items()})(base, project)
        env = stage_env(project)
        seconds = {}
        for stage in PREPARED:
            started = time.perf_counter()
            check(run(project, env, stage))
            seconds[stage] = time.perf_counter() - started
        _PREPARED["prepared"] = Built(project, base / "mlflow.db", seconds)
    return _PREPARED["prepared"]
