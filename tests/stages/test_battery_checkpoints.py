"""Battery (issue 14): a spoiled model checkpoint read by a stage stops it with one line, exit 2.

The fine-tune stage (``train@pixel-s0``) starts from the warm start ``data/models/pretrain-s0.pt``;
each case replaces that file (truncated, garbage, a hostile pickle, a zip of the wrong content,
another architecture, a dangling link) in a clone of the prepared project. The line must name the
checkpoint and say to retrain it, must not advise ``weights_only=False``, and nothing may change.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from stagekit import Case, Outcome, assert_one_line_and_unchanged, by_name, prepared_project, run_selected

CHECKPOINT = "data/models/pretrain-s0.pt"


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def replace(make) -> object:
    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        make(project / CHECKPOINT, case_dir)
        return [], {}

    return setup


def _truncated(path: Path, case_dir: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path, case_dir: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path, case_dir: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _hostile(path: Path, case_dir: Path) -> None:
    path.write_bytes(pickle.dumps({"model": _RunsCode(case_dir / "pwned")}))


def _wrong_zip(path: Path, case_dir: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"not a pickle")


def _not_a_dict(path: Path, case_dir: Path) -> None:
    torch.save([1, 2, 3], path)


def _no_config(path: Path, case_dir: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["config"]
    torch.save(state, path)


def _other_architecture(path: Path, case_dir: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["config"]["channels"] = state["config"]["channels"] * 2
    torch.save(state, path)


def _missing_weights(path: Path, case_dir: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["model"] = {name: value for index, (name, value) in enumerate(state["model"].items()) if index}
    torch.save(state, path)


def _nan_weights(path: Path, case_dir: Path) -> None:
    state = torch.load(path, weights_only=True)
    first = next(iter(state["model"]))
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, path)


def _dangling(path: Path, case_dir: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "gone.pt")


NAMED = (r"pretrain-s0\.pt",)
CASES = by_name(
    [
        Case("truncated", "train@pixel-s0", replace(_truncated), NAMED),
        Case("empty", "train@pixel-s0", replace(_empty), NAMED),
        Case("garbage", "train@pixel-s0", replace(_garbage), NAMED),
        Case("hostile_pickle", "train@pixel-s0", replace(_hostile), (*NAMED, r"refused by the safe loader")),
        Case("zip_without_tensors", "train@pixel-s0", replace(_wrong_zip), NAMED),
        Case("not_a_dict", "train@pixel-s0", replace(_not_a_dict), (*NAMED, r"not a model this code wrote")),
        Case("no_config", "train@pixel-s0", replace(_no_config), (*NAMED, r"not a model this code wrote")),
        Case("other_architecture", "train@pixel-s0", replace(_other_architecture), (*NAMED, r"size mismatch|channels")),
        Case("missing_weights", "train@pixel-s0", replace(_missing_weights), NAMED),
        Case("nan_weights", "train@pixel-s0", replace(_nan_weights), (*NAMED, r"non-finite|NaN")),
        Case("dangling_link", "train@pixel-s0", replace(_dangling), (*NAMED, r"missing|does not exist")),
    ],
    subprocess=["hostile_pickle"],
)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, prepared_project(tmp_path_factory), in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_spoiled_checkpoint_stops_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    line = assert_one_line_and_unchanged(CASES[name], outcomes[name])
    assert "weights_only=False" not in line, "torch's advice to load unsafely leaked into the message"
    assert not (outcomes[name].case_dir / "pwned").exists(), "the checkpoint's code ran"
