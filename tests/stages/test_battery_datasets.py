"""Battery (issue 14): a spoiled TID2013 / KADID-10k / BAPPS copy stops `human_judgement` with one line, exit 2.

Each case builds a miniature copy of a data set in its public layout (a few 64x64 PNG or BMP
images made with PIL), spoils one thing, and points ``params.yaml: human_judgement.<dataset>`` at
it. Before this pass a latin-1 byte in ``dmos.csv`` was a UnicodeDecodeError traceback, a
latin-1 byte in TID2013's MOS file was silently replaced, and NaN or infinite scores were ranked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stagekit import (
    Case,
    Outcome,
    assert_one_line_and_unchanged,
    built_project,
    by_name,
    edit_params,
    rgb,
    run_selected,
)

from psychovis.errors import DataError
from psychovis.human_judgement import readers


def _image(path: Path, seed: int) -> None:
    Image.fromarray(rgb(64, 64, seed=seed)).save(path)


def make_kadid(root: Path, dmos: tuple[str, ...] = ("4.2", "3.1")) -> Path:
    (root / "images").mkdir(parents=True)
    _image(root / "images" / "I01.png", 1)
    rows = ["dist_img,ref_img,dmos,var"]
    for level, value in enumerate(dmos, 1):
        _image(root / "images" / f"I01_01_0{level}.png", 10 + level)
        rows.append(f"I01_01_0{level}.png,I01.png,{value},0.1")
    (root / "dmos.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def make_tid(root: Path, mos: tuple[str, ...] = ("5.5", "4.0")) -> Path:
    for folder in ("reference_images", "distorted_images"):
        (root / folder).mkdir(parents=True)
    _image(root / "reference_images" / "I01.BMP", 1)
    lines = []
    for level, value in enumerate(mos, 1):
        _image(root / "distorted_images" / f"i01_01_{level}.bmp", 20 + level)
        lines.append(f"{value} i01_01_{level}.bmp")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_bapps(root: Path, judges: tuple[object, ...] = (0.25, 0.75)) -> Path:
    subset = root / "val" / "traditional"
    for part in ("ref", "p0", "p1", "judge"):
        (subset / part).mkdir(parents=True)
    for index, judge in enumerate(judges):
        for offset, part in enumerate(("ref", "p0", "p1")):
            _image(subset / part / f"{index:06d}.png", 30 + 3 * index + offset)
        np.save(subset / "judge" / f"{index:06d}.npy", np.asarray([judge]))
    return root


Spoil = Callable[[Path], None]


def dataset(name: str, make: Callable[[Path], Path], spoil: Spoil | None = None, **params: object) -> Callable:
    """``human_judgement.<name>`` -> a miniature copy made by ``make`` and spoiled by ``spoil``."""

    def setup(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        root = make(case_dir / name)
        if spoil is not None:
            spoil(root)
        changes = {f"human_judgement__{name}": str(root), "human_judgement__bapps_subsets": ["traditional"]}
        changes.update({f"human_judgement__{key}": value for key, value in params.items()})
        return edit_params(**changes)(case_dir, project)

    return setup


def append_bytes(relative: str, data: bytes) -> Spoil:
    return lambda root: (root / relative).write_bytes((root / relative).read_bytes() + data)


def replace_file(relative: str, data: bytes) -> Spoil:
    return lambda root: (root / relative).write_bytes(data)


def remove(relative: str) -> Spoil:
    return lambda root: (root / relative).unlink()


def dangling(relative: str) -> Spoil:
    def spoil(root: Path) -> None:
        (root / relative).unlink()
        (root / relative).symlink_to(root / "gone.png")

    return spoil


def judge(value: object) -> Spoil:
    return lambda root: np.save(root / "val/traditional/judge/000001.npy", np.asarray(value))


LATIN1 = "I01_01_01.png,I01.png,3.0,0.1 # r\xe9f\n".encode("latin-1")
CASES = by_name(
    [
        # KADID-10k
        Case(
            "kadid_latin1",
            "human_judgement",
            dataset("kadid10k", make_kadid, append_bytes("dmos.csv", LATIN1)),
            (r"dmos\.csv is not UTF-8", r"line 4", r"save it as UTF-8"),
        ),
        Case(
            "kadid_utf16",
            "human_judgement",
            dataset(
                "kadid10k",
                make_kadid,
                lambda r: (r / "dmos.csv").write_bytes((r / "dmos.csv").read_text().encode("utf-16")),
            ),
            (r"dmos\.csv is not UTF-8", r"save it as UTF-8"),
        ),
        Case(
            "kadid_nan",
            "human_judgement",
            dataset("kadid10k", lambda r: make_kadid(r, ("4.0", "nan"))),
            (r"dmos\.csv:3", r"non-finite dmos 'nan'"),
        ),
        Case(
            "kadid_inf",
            "human_judgement",
            dataset("kadid10k", lambda r: make_kadid(r, ("inf", "2.0"))),
            (r"dmos\.csv:2", r"non-finite dmos 'inf'"),
        ),
        Case(
            "kadid_text",
            "human_judgement",
            dataset("kadid10k", lambda r: make_kadid(r, ("good", "2.0"))),
            (r"dmos\.csv:2", r"non-numeric dmos 'good'"),
        ),
        Case(
            "kadid_empty_dmos",
            "human_judgement",
            dataset("kadid10k", lambda r: make_kadid(r, ("", "2.0"))),
            (r"dmos\.csv:2", r"non-numeric dmos ''"),
        ),
        Case(
            "kadid_header_only",
            "human_judgement",
            dataset("kadid10k", make_kadid, replace_file("dmos.csv", b"dist_img,ref_img,dmos,var\n")),
            (r"lists no images",),
        ),
        Case(
            "kadid_wrong_columns",
            "human_judgement",
            dataset("kadid10k", make_kadid, replace_file("dmos.csv", b"image,score\nI01_01_01.png,3\n")),
            (r"has columns \['image', 'score'\]", r"expected dist_img"),
        ),
        Case(
            "kadid_binary",
            "human_judgement",
            dataset("kadid10k", make_kadid, replace_file("dmos.csv", bytes(range(128, 256)) * 8)),
            (r"dmos\.csv is not UTF-8",),
        ),
        Case(
            "kadid_missing_image",
            "human_judgement",
            dataset("kadid10k", make_kadid, remove("images/I01_01_02.png")),
            (r"I01_01_02\.png", r"is missing"),
        ),
        Case(
            "kadid_dangling_image",
            "human_judgement",
            dataset("kadid10k", make_kadid, dangling("images/I01_01_01.png")),
            (r"I01_01_01\.png", r"is missing"),
        ),
        Case(
            "kadid_no_dmos",
            "human_judgement",
            dataset("kadid10k", make_kadid, remove("dmos.csv")),
            (r"dmos\.csv is missing", r"expected the public layout"),
        ),
        Case(
            "kadid_root_missing",
            "human_judgement",
            dataset("kadid10k", lambda r: r.parent / "no_such_kadid"),
            (r"no_such_kadid does not exist",),
        ),
        # TID2013
        Case(
            "tid_latin1",
            "human_judgement",
            dataset(
                "tid2013", make_tid, append_bytes("mos_with_names.txt", "3.0 i01_01_1.bmp \xe9\n".encode("latin-1"))
            ),
            (r"mos_with_names\.txt is not UTF-8", r"save it as UTF-8"),
        ),
        Case(
            "tid_nan",
            "human_judgement",
            dataset("tid2013", lambda r: make_tid(r, ("nan", "4.0"))),
            (r"mos_with_names\.txt:1", r"non-finite MOS 'nan'"),
        ),
        Case(
            "tid_inf",
            "human_judgement",
            dataset("tid2013", lambda r: make_tid(r, ("5.0", "-inf"))),
            (r"mos_with_names\.txt:2", r"non-finite MOS '-inf'"),
        ),
        Case(
            "tid_three_fields",
            "human_judgement",
            dataset("tid2013", make_tid, append_bytes("mos_with_names.txt", b"3.0 i01_01_1.bmp extra\n")),
            (r"mos_with_names\.txt:3 is not '<mos> <distorted file name>'",),
        ),
        Case(
            "tid_bad_name",
            "human_judgement",
            dataset("tid2013", make_tid, append_bytes("mos_with_names.txt", b"3.0 photo.bmp\n")),
            (r"names 'photo\.bmp'", r"i<ref>_<type>_<level>\.bmp"),
        ),
        Case(
            "tid_missing_distorted",
            "human_judgement",
            dataset("tid2013", make_tid, remove("distorted_images/i01_01_2.bmp")),
            (r"i01_01_2\.bmp", r"missing"),
        ),
        Case(
            "tid_missing_reference",
            "human_judgement",
            dataset("tid2013", make_tid, remove("reference_images/I01.BMP")),
            (r"reference image", r"missing"),
        ),
        Case(
            "tid_empty_mos",
            "human_judgement",
            dataset("tid2013", make_tid, replace_file("mos_with_names.txt", b"\n")),
            (r"lists no images",),
        ),
        # BAPPS
        Case(
            "bapps_nan_judge",
            "human_judgement",
            dataset("bapps", make_bapps, judge([np.nan])),
            (r"000001\.npy must hold one number in \[0, 1\]",),
        ),
        Case(
            "bapps_inf_judge",
            "human_judgement",
            dataset("bapps", make_bapps, judge([np.inf])),
            (r"000001\.npy must hold one number",),
        ),
        Case(
            "bapps_out_of_range",
            "human_judgement",
            dataset("bapps", make_bapps, judge([1.5])),
            (r"000001\.npy must hold one number in \[0, 1\]",),
        ),
        Case(
            "bapps_two_numbers",
            "human_judgement",
            dataset("bapps", make_bapps, judge([0.1, 0.2])),
            (r"must hold one number",),
        ),
        Case(
            "bapps_text_judge",
            "human_judgement",
            dataset("bapps", make_bapps, judge(["half"])),
            (r"must hold one number",),
        ),
        Case(
            "bapps_object_judge",
            "human_judgement",
            dataset(
                "bapps",
                make_bapps,
                lambda r: np.save(
                    r / "val/traditional/judge/000001.npy", np.asarray([{"a": 1}], dtype=object), allow_pickle=True
                ),
            ),
            (r"000001\.npy is not a readable \.npy array",),
        ),
        Case(
            "bapps_garbage_judge",
            "human_judgement",
            dataset("bapps", make_bapps, replace_file("val/traditional/judge/000001.npy", b"\x93NUMPY garbage")),
            (r"000001\.npy is not a readable \.npy array",),
        ),
        Case(
            "bapps_missing_patch",
            "human_judgement",
            dataset("bapps", make_bapps, remove("val/traditional/p1/000000.png")),
            (r"p1/000000\.png is missing",),
        ),
        Case(
            "bapps_missing_split",
            "human_judgement",
            dataset("bapps", make_bapps, bapps_split="train"),
            (r"split folder .*train is missing",),
        ),
    ],
    subprocess=["kadid_latin1"],
)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_spoiled_dataset_stops_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_one_line_and_unchanged(CASES[name], outcomes[name])


def test_clean_miniatures_are_read(tmp_path: Path) -> None:
    """The miniatures the cases spoil are valid copies: the readers accept them as made."""
    assert readers.read_kadid10k(make_kadid(tmp_path / "kadid"))["score"].tolist() == [4.2, 3.1]
    assert readers.read_tid2013(make_tid(tmp_path / "tid"))["score"].tolist() == [5.5, 4.0]
    assert readers.read_bapps_2afc(make_bapps(tmp_path / "bapps"), ["traditional"])["judge"].tolist() == [0.25, 0.75]


def test_a_bom_is_still_accepted(tmp_path: Path) -> None:
    root = make_kadid(tmp_path / "kadid")
    (root / "dmos.csv").write_bytes(b"\xef\xbb\xbf" + (root / "dmos.csv").read_bytes())
    assert len(readers.read_kadid10k(root)) == 2
    (root / "dmos.csv").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte b'\\xff' on line 1\)"):
        readers.read_kadid10k(root)
