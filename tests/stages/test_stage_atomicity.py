"""A stage that fails after writing some outputs leaves every previous output byte-identical (a stage commit).

Each case changes a parameter (so the stage's new outputs would differ from the previous ones)
and makes the stage's *last* output impossible to write (its path is a non-empty folder: what a
full disk or a read-only file looks like to the writer, and it fails even for root). Before this
pass, the outputs written before the failure stayed new while the rest stayed old; now the stage
runner's transaction (:func:`psychovis.io.stage_transaction`) puts them all back.

Every stage script is covered statically (each runs through ``run_stage``, which opens the
transaction), and the stages of the tiny pipeline are run for real: stimuli, features, vfss,
weights, tuning, pretrain, a fine-tune, human_judgement (skipped mode) and atlas_features.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from stagekit import (
    Built,
    Case,
    Outcome,
    assert_one_line_and_unchanged,
    by_name,
    edit_params,
    prepared_project,
    run_selected,
)

from psychovis import io


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return prepared_project(tmp_path_factory)


def block(relative: str) -> Callable[[Path, Path], None]:
    """Make ``relative`` a non-empty folder: writing the output there fails at its rename."""

    def apply(case_dir: Path, project: Path) -> None:
        path = project / relative
        path.unlink(missing_ok=True)
        path.mkdir(parents=True)
        (path / "blocker").write_text("an output path taken by a folder\n")

    return apply


def previous(relative: str, frame: pd.DataFrame) -> Callable[[Path, Path], None]:
    """Give an output distinct previous bytes (for stages whose new outputs would equal the old)."""

    def apply(case_dir: Path, project: Path) -> None:
        io.write_parquet(frame, project / relative)

    return apply


def failing_late(change: dict[str, object], last: str, *more: Callable[[Path, Path], None]) -> Callable:
    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        edit_params(**change)(case_dir, project)
        for apply in (*more, block(last)):
            apply(case_dir, project)
        return [], {}

    return setup


def case(stage: str, change: dict[str, object], last: str, *more: Callable[[Path, Path], None]) -> Case:
    name = stage.replace("@", "_")
    return Case(name, stage, failing_late(change, last, *more), (rf"cannot write {last}", r"directory|folder"))


CASES = by_name(
    [
        case("stimuli", {"stimuli__frequency_step_cpd": 5.0}, "data/stimuli/contact_sheet.png"),
        case("features", {"features__layers": ["relu1_1"]}, "data/features/features.parquet"),
        case("vfss", {"vfss__csf": "mannos_sakrison"}, "data/vfss/vfss.png"),
        case("weights", {"weights__top_k": 4}, "metrics/weights.json"),
        case("tuning", {"tuning__min_response": 0.5}, "data/tuning/layers.png"),
        case("pretrain", {"pretrain__iterations": 3}, "metrics/pretrain-s0.json"),
        case("train@pixel-s0", {"train__iterations": 3}, "data/train/pixel-s0.json"),
        case(
            "human_judgement",
            {},
            "metrics/human_judgement.json",
            previous("data/human_judgement/scores.parquet", pd.DataFrame({"previous": [1.0]})),
        ),
        case("atlas_features@vgg16", {"atlas__frequencies": 4}, "data/atlas/vgg16/responses.parquet"),
    ],
    subprocess=["vfss"],
)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prepared: Built) -> dict:
    return run_selected(request, tmp_path_factory, CASES, prepared, in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_failed_stage_leaves_previous_outputs_byte_identical(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_one_line_and_unchanged(CASES[name], outcomes[name])
    leftovers = [path for path in outcomes[name].after if path.rsplit("/", 1)[-1].endswith(".tmp")]
    assert leftovers == [], f"kept versions or temporaries left behind: {leftovers}"


def test_every_stage_script_runs_through_the_transactional_runner() -> None:
    """Every ``stages/*.py`` calls ``run_stage`` (which wraps ``main`` in ``io.stage_transaction``)."""
    scripts = sorted((ROOT / "stages").glob("*.py"))
    assert len(scripts) >= 14
    for script in scripts:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        calls = {
            node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "run_stage" in calls, f"{script.name} does not run through run_stage"
