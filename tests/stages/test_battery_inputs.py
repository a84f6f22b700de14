"""Battery (issue 14): random corruptions of the Parquet tables passed between stages (property style).

Every case takes one upstream table of the tiny prepared project (stimuli, features, vfss), spoils
it with one kind of corruption whose details (offset, row, column, bytes) come from a seeded random
generator, and runs a stage that reads it. The property: the stage stops with exit 2 and one line
naming the file (and the column, for a bad value) with every file unchanged, or, the documented
alternative, it succeeds and every output is byte-identical to the clean run's (a corruption that
does not change the data, e.g. reordered stimuli or a flipped byte in the footer's statistics).

Before this pass: NaN responses gave an all-zero VFSS (exit 0), strings or infinities in a column
were tracebacks, and a flipped byte inside a data page was read as another number.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stagekit import Case, Outcome, assert_one_line_and_unchanged, built_project, by_name, changes, run_selected

SEED = 1812_00412
STIMULI, FEATURES, VFSS = "data/stimuli/stimuli.parquet", "data/features/features.parquet", "data/vfss/vfss.parquet"


@dataclass(frozen=True)
class Target:
    """A table, the stage that reads it, and its numeric columns that stage reads."""

    path: str
    stage: str
    numeric: tuple[str, ...]
    nonnegative: tuple[str, ...]


TARGETS = (
    Target(
        STIMULI, "vfss", ("stimulus_id", "frequency_cpd", "frequency_cpp", "contrast"), ("frequency_cpd", "contrast")
    ),
    Target(FEATURES, "vfss", ("channel", "stimulus_id", "response"), ("response",)),
    Target(VFSS, "weights", ("channel", "vfss", "vfss_normalised"), ("vfss",)),
    Target(STIMULI, "features", ("stimulus_id", "frequency_cpp", "size"), ("frequency_cpp", "size")),
    Target(FEATURES, "tuning", ("channel", "stimulus_id", "response"), ("response",)),
)

Op = Callable[[Path, Target, random.Random], tuple[str, ...]]  # spoils the file, returns the expected regexes


def _frame(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _write(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def negative(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    column = rng.choice(target.nonnegative)
    frame.loc[rng.randrange(len(frame)), column] = -abs(float(frame[column].max())) - 1.0
    _write(frame, path)
    return (rf"column '{column}'", r"negative", r"dvc repro")


def _with_value(value: float) -> Op:
    def op(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
        frame = _frame(path)
        column = rng.choice(target.numeric)
        frame[column] = frame[column].astype("float64")
        frame.loc[rng.randrange(len(frame)), column] = value
        _write(frame, path)
        return (rf"column '{column}'", r"non-finite", r"dvc repro")

    return op


def strings(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    column = rng.choice(target.numeric)
    frame[column] = frame[column].astype(str)
    frame.loc[rng.randrange(len(frame)), column] = "n/a"
    _write(frame, path)
    return (rf"column '{column}'", r"not numbers", r"dvc repro")


def booleans(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    column = rng.choice(target.numeric)
    frame[column] = frame[column] > frame[column].median()
    _write(frame, path)
    return (rf"column '{column}'", r"true/false values", r"not numbers")


def drop_column(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    column = rng.choice(target.numeric)
    _write(frame.drop(columns=[column]), path)
    return (rf"lacks column\(s\) \['{column}'\]", r"dvc repro")


def no_rows(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    _write(_frame(path).iloc[:0], path)
    return (r"holds no rows", r"dvc repro")


def repeated_rows(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    rows = sorted(rng.sample(range(len(frame)), k=min(3, len(frame))))
    _write(pd.concat([frame, frame.iloc[rows]], ignore_index=True), path)
    return (r"repeats \d+ row", r"corrupt", r"dvc repro")


def dropped_rows(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    frame = _frame(path)
    keep = np.ones(len(frame), dtype=bool)
    keep[rng.sample(range(len(frame)), k=max(1, len(frame) // 10))] = False
    _write(frame[keep], path)
    return (r"disagree on the stimuli|responses|holds", r"dvc repro")


def shuffled_stimuli(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    """Documented as accepted: the stimuli's row order carries no information (outputs stay identical)."""
    frame = _frame(path)
    order = list(range(len(frame)))
    rng.shuffle(order)
    _write(frame.iloc[order], path)
    return ()


def truncated(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(1, len(data) - 1)])
    return (r"not a readable Parquet file", r"dvc repro")


def flipped_bytes(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(4, len(data) - 8)  # not the magic bytes: those are the truncation cases
        data[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return (r"parquet", r"dvc repro|delete it")


def zeroed_block(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    data = bytearray(path.read_bytes())
    start = rng.randrange(4, len(data) - 72)
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return (r"parquet", r"dvc repro|delete it")


def empty_file(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    path.write_bytes(b"")
    return (r"not a readable Parquet file",)


def csv_instead(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    _frame(path).to_csv(path, index=False)
    return (r"not a readable Parquet file",)


def folder_instead(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    path.unlink()
    path.mkdir()
    return (r"not a readable Parquet file",)


def dangling_link(path: Path, target: Target, rng: random.Random) -> tuple[str, ...]:
    path.unlink()
    path.symlink_to(path.parent / "gone.parquet")
    return (r"does not exist", r"dvc repro")


OPS: dict[str, Op] = {
    "nan": _with_value(float("nan")),
    "inf": _with_value(float("inf")),
    "neg_inf": _with_value(float("-inf")),
    "negative": negative,
    "strings": strings,
    "booleans": booleans,
    "drop_column": drop_column,
    "no_rows": no_rows,
    "repeated_rows": repeated_rows,
    "truncated": truncated,
    "flipped_bytes": flipped_bytes,
    "zeroed_block": zeroed_block,
    "empty_file": empty_file,
    "csv_instead": csv_instead,
    "folder_instead": folder_instead,
    "dangling_link": dangling_link,
}
ONLY = {
    "dropped_rows": (dropped_rows, (1, 4)),  # features answering fewer stimuli than the table holds
    "shuffled_stimuli": (shuffled_stimuli, (0,)),
}
SUBSETS: dict[int, tuple[str, ...]] = {  # fewer ops where a stage's imports are slow (torch) or coverage repeats
    2: ("nan", "inf", "negative", "strings", "drop_column", "repeated_rows", "truncated", "flipped_bytes"),
    3: ("nan", "strings", "truncated"),
    4: ("nan", "truncated"),
}
DOCUMENTED = {"shuffled_stimuli", "flipped_bytes", "zeroed_block"}
"""Ops whose corruption may leave the data intact: exit 0 is accepted when every output is identical."""


def spoil(target: Target, op: Op, seed: int) -> Callable[[Path, Path], tuple[list[str], dict[str, str]]]:
    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        op(project / target.path, target, random.Random(seed))
        return [], {}

    return setup


def _cases() -> list[Case]:
    cases, index = [], 0
    for target_index, target in enumerate(TARGETS):
        ops = {name: OPS[name] for name in SUBSETS.get(target_index, OPS)}
        ops.update({name: op for name, (op, where) in ONLY.items() if target_index in where})
        for name, op in ops.items():
            seed = SEED + index
            index += 1
            label = f"{Path(target.path).stem}-{target.stage}-{name}"
            SPECS[label] = (target, name, seed)
            cases.append(Case(label, target.stage, spoil(target, op, seed), (re.escape(Path(target.path).name),)))
    return cases


SPECS: dict[str, tuple[Target, str, int]] = {}  # case name -> (target, op name, seed)
CASES = by_name(_cases(), subprocess=["stimuli-vfss-nan"])


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_project(tmp_path_factory).project


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_corrupt_table_stops_the_stage_or_changes_nothing(
    name: str, outcomes: dict[str, Outcome], clean: Path, tmp_path: Path
) -> None:
    case, outcome = CASES[name], outcomes[name]
    target, op_name, seed = SPECS[name]
    if outcome.returncode == 0 and op_name in DOCUMENTED:
        assert changes(outcome) == ([], [], []), f"exit 0 but outputs changed: {changes(outcome)}"
        return
    line = assert_one_line_and_unchanged(case, outcome)
    # What the line must also say: the op's own expectations, from the same corruption of a clean copy.
    copy = tmp_path / Path(target.path).name
    shutil.copy2(clean / target.path, copy)
    op = OPS.get(op_name) or ONLY[op_name][0]
    for pattern in op(copy, target, random.Random(seed)):
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} not in {line!r}"


def test_the_property_covers_every_corruption_of_every_table() -> None:
    assert len(CASES) >= 45
    assert {op for _, op, _ in SPECS.values()} == set(OPS) | set(ONLY)
