"""Battery (issue 14): a bad file in ``train.image_dir`` stops the `pretrain` stage with one line, exit 2.

Beyond the first pass (grayscale, alpha, 16-bit, tiny, corrupt, text): dangling and looping
symbolic links (skipped silently before), images above the ``images.max_pixels`` cap (decoded
whole before), truncated PNG and JPEG, empty files, CMYK, other formats under an image name, and
a folder too small for ``train.test_images``. Every image is made here with PIL or numpy.
"""

from __future__ import annotations

import io
import os
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
    image_folder,
    rgb,
    run_selected,
)

from psychovis import images
from psychovis.errors import DataError


def _png_bytes(height: int = 64, width: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb(height, width, seed=5)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(height: int = 64, width: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb(height, width, seed=6)).save(buffer, format="JPEG")
    return buffer.getvalue()


def writes(data: Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data())


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "no_such_target.png")


def _looping(path: Path) -> None:
    path.symlink_to(path.name)  # points at itself


def _pair_loop(path: Path) -> None:
    other = path.parent / ".hidden_loop.png"
    other.symlink_to(path.name)
    path.symlink_to(other.name)


def _save(mode_image: Callable[[], Image.Image], fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        mode_image().save(path, format=fmt)

    return make


def _large(path: Path) -> None:
    Image.fromarray(rgb(120, 100, seed=7)).save(path)  # 12,000 px, over the 10,000 px cap of these cases


def _flip_idat(path: Path) -> None:
    data = bytearray(_png_bytes())
    start = data.index(b"IDAT") + 40
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def with_cap(setup: Callable, cap: int = 10_000) -> Callable:
    """``setup``, then ``images.max_pixels := cap`` (the 64x64 good images are 4,096 px)."""

    def wrapped(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
        args, env = setup(case_dir, project)
        edit_params(images__max_pixels=cap)(case_dir, project)
        return args, env

    return wrapped


def folder_of_links_only(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    folder = case_dir / "images"
    folder.mkdir()
    for index in range(3):
        (folder / f"link_{index}.png").symlink_to(folder / f"gone_{index}.png")
    return edit_params(train__image_dir=str(folder), train__test_images=1)(case_dir, project)


def image_dir_is_a_file(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    path = case_dir / "one.png"
    path.write_bytes(_png_bytes())
    return edit_params(train__image_dir=str(path), train__test_images=1)(case_dir, project)


def too_few_images(case_dir: Path, project: Path) -> tuple[list[str], dict[str, str]]:
    args, env = image_folder(None, None, good=2)(case_dir, project)
    edit_params(train__test_images=5)(case_dir, project)
    return args, env


CMYK = _save(lambda: Image.fromarray(rgb(64, 64)).convert("CMYK"), "JPEG")
CASES = by_name(
    [
        Case("dangling_symlink", "pretrain", image_folder("z_link.png", _dangling), (r"z_link\.png", r"dangling")),
        Case("looping_symlink", "pretrain", image_folder("z_loop.png", _looping), (r"z_loop\.png", r"looping")),
        Case("symlink_pair_loop", "pretrain", image_folder("z_pair.png", _pair_loop), (r"z_pair\.png", r"looping")),
        Case("only_dangling_links", "pretrain", folder_of_links_only, (r"link_0\.png", r"dangling", r"fix the link")),
        Case(
            "over_pixel_cap",
            "pretrain",
            with_cap(image_folder("z_large.png", _large)),
            (r"z_large\.png", r"100x120 px", r"images\.max_pixels"),
        ),
        Case(
            "every_image_over_cap",
            "pretrain",
            with_cap(image_folder(None, None, good=2), cap=2_000),
            (r"good_0\.png", r"64x64", r"downscale|images\.max_pixels"),
        ),
        Case(
            "truncated_png",
            "pretrain",
            image_folder("z_cut.png", writes(lambda: _png_bytes()[: len(_png_bytes()) // 2])),
            (r"z_cut\.png", r"corrupt or truncated|not an image"),
        ),
        Case(
            "truncated_jpeg",
            "pretrain",
            image_folder("z_cut.jpg", writes(lambda: _jpeg_bytes()[: len(_jpeg_bytes()) // 3])),
            (r"z_cut\.jpg", r"corrupt or truncated|not an image"),
        ),
        Case("png_bad_idat", "pretrain", image_folder("z_idat.png", _flip_idat), (r"z_idat\.png", r"corrupt|not an")),
        Case(
            "empty_file",
            "pretrain",
            image_folder("z_empty.png", writes(lambda: b"")),
            (r"z_empty\.png", r"not an image"),
        ),
        Case(
            "cmyk_jpeg", "pretrain", image_folder("z_cmyk.jpg", CMYK), (r"z_cmyk\.jpg", r"CMYK", r"convert it to RGB")
        ),
        Case(
            "gif_named_png",
            "pretrain",
            image_folder("z_gif.png", _save(lambda: Image.fromarray(rgb(64, 64)).convert("P"), "GIF")),
            (r"z_gif\.png", r"GIF", r"convert it to PNG"),
        ),
        Case(
            "webp_named_jpg",
            "pretrain",
            image_folder("z_webp.jpg", _save(lambda: Image.fromarray(rgb(64, 64)), "WEBP")),
            (r"z_webp\.jpg", r"WEBP", r"convert"),
        ),
        Case(
            "bilevel_bmp",
            "pretrain",
            image_folder("z_bits.bmp", _save(lambda: Image.fromarray(rgb(64, 64)[..., 0]).convert("1"), "BMP")),
            (r"z_bits\.bmp", r"grayscale", r"RGB"),
        ),
        Case(
            "float_tiff",
            "pretrain",
            image_folder("z_float.tif", _save(lambda: Image.fromarray(np.ones((64, 64), np.float32)), "TIFF")),
            (r"z_float\.tif", r"grayscale", r"RGB"),
        ),
        Case(
            "palette_with_transparency",
            "pretrain",
            image_folder(
                "z_trns.png",
                lambda path: Image.fromarray(rgb(64, 64)).convert("P").save(path, transparency=0),
            ),
            (r"z_trns\.png", r"alpha"),
        ),
        Case(
            "la_mode",
            "pretrain",
            image_folder("z_la.png", _save(lambda: Image.fromarray(rgb(64, 64)).convert("LA"), "PNG")),
            (r"z_la\.png", r"alpha"),
        ),
        Case(
            "below_crop_size",
            "pretrain",
            image_folder("z_small.png", lambda path: Image.fromarray(rgb(24, 40)).save(path)),
            (r"z_small\.png", r"40x24 px", r"minimum 32"),
        ),
        Case("image_dir_is_a_file", "pretrain", image_dir_is_a_file, (r"one\.png is not a folder",)),
        Case("too_few_for_test_images", "pretrain", too_few_images, (r"holds 2 image", r"test_images=5", r"lower")),
    ],
    subprocess=["dangling_symlink"],
)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_selected(request, tmp_path_factory, CASES, built_project(tmp_path_factory), in_process=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_bad_image_folder_stops_the_stage_with_one_line(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_one_line_and_unchanged(CASES[name], outcomes[name])


def test_pixel_cap_is_read_from_the_header_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10000x10000 PNG (under PIL's own bomb limit) is refused without decoding its 300 MB of pixels."""
    import tracemalloc

    path = tmp_path / "huge.png"
    Image.new("RGB", (10_000, 10_000)).save(path, compress_level=9)
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"10000x10000 px \(100,000,000 pixels\), more than the cap of 40,000,000"):
            images.read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated while refusing"
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "1000")
    with pytest.raises(DataError, match=r"more than the cap of 1,000 \(images\.max_pixels\)"):
        images.read_image(tmp_path / "huge.png")


def test_a_sub_folder_named_like_an_image_is_skipped(tmp_path: Path) -> None:
    """Documented, not refused: a folder called ``x.png`` is not an image file and is left out."""
    (tmp_path / "x.png").mkdir()
    Image.fromarray(rgb(64, 64)).save(tmp_path / "a.png")
    assert [path.name for path in images.image_files(tmp_path)] == ["a.png"]
    assert os.path.isdir(tmp_path / "x.png")
