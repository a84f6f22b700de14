"""Offline natural images, the strict image reader, the data split, crops and resampling."""

from __future__ import annotations

import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from psychovis import images
from psychovis.errors import DataError, ParamsError
from psychovis.images import BUNDLED_IMAGES, bundled_images, read_image, read_image_folder
from psychovis.sr.data import load_dataset


def _rgb(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_png_rgb16(path: Path, height: int, width: int) -> None:
    """A 16-bit RGB PNG written by hand: PIL cannot write one, and reads it back silently as 8-bit."""
    row = np.full((width, 3), 40000, dtype=">u2").tobytes()
    raw = b"".join(b"\x00" + row for _ in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bundled() -> dict[str, np.ndarray]:
    return bundled_images()


def test_bundled_images_load_offline_as_rgb_float(bundled: dict[str, np.ndarray], monkeypatch) -> None:
    assert list(bundled) == list(BUNDLED_IMAGES)
    assert len(BUNDLED_IMAGES) >= 10
    for name, image in bundled.items():
        assert image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 256, name
        assert image.dtype == np.float32 and image.flags.c_contiguous and image.flags.writeable, name
        assert image.min() >= 0.0 and image.max() <= 1.0, name
        assert image.std() > 0.02, name
        # colour, not gray stored as RGB
        assert np.abs(image[..., 0] - image[..., 1]).mean() > 1e-3, name

    def no_network(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    images._bundled_uint8.cache_clear()
    again = bundled_images(["retina", "grace_hopper"])
    np.testing.assert_array_equal(again["retina"], bundled["retina"])


def test_bundled_images_match_skimage_and_are_copies(bundled: dict[str, np.ndarray]) -> None:
    from skimage import data

    np.testing.assert_array_equal(bundled["astronaut"], data.astronaut() / np.float32(255.0))
    np.testing.assert_array_equal(bundled["chelsea"], data.chelsea() / np.float32(255.0))
    first = bundled_images(["coffee"])["coffee"]
    first[:] = 0.0
    assert bundled_images(["coffee"])["coffee"].max() > 0.0
    with pytest.raises(ParamsError, match="lena"):
        bundled_images(["lena"])


@pytest.mark.parametrize(("suffix", "exact"), [(".png", True), (".bmp", True), (".tif", True), (".jpg", False)])
def test_read_image_round_trips_rgb(tmp_path: Path, suffix: str, exact: bool) -> None:
    pixels = _rgb()
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(pixels).save(path, quality=95) if suffix == ".jpg" else Image.fromarray(pixels).save(path)
    image = read_image(path)
    assert image.shape == (40, 48, 3) and image.dtype == np.float32 and image.flags.c_contiguous
    assert image.min() >= 0.0 and image.max() <= 1.0
    if exact:
        np.testing.assert_array_equal(image, pixels / np.float32(255.0))
    else:
        smooth = np.full((40, 48, 3), (200, 100, 30), dtype=np.uint8)
        Image.fromarray(smooth).save(path, quality=95)
        np.testing.assert_allclose(read_image(path), smooth / 255.0, atol=3 / 255)


def test_read_image_accepts_opaque_palette(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    Image.fromarray(_rgb()).quantize(16).save(path)
    assert read_image(path).shape == (40, 48, 3)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases: dict[str, tuple[Path, str]] = {}

    def add(key: str, name: str, match: str) -> Path:
        cases[key] = (tmp_path / name, match)
        return tmp_path / name

    Image.fromarray(_rgb()[..., 0]).save(add("gray", "gray.png", "grayscale"))
    Image.fromarray(_rgb()[..., 0] > 128).save(add("bilevel", "bilevel.png", "grayscale"))
    Image.fromarray(np.dstack([_rgb(), _rgb(seed=1)[..., :1]])).save(add("rgba", "rgba.png", "convert to RGB"))
    Image.fromarray(_rgb()[..., :2]).save(add("la", "la.png", "convert to RGB"))
    Image.new("P", (48, 40)).save(add("palette_alpha", "palette_alpha.png", "convert to RGB"), transparency=0)
    Image.fromarray(np.full((40, 48), 1000, dtype=np.uint16)).save(add("gray16", "gray16.png", "16 bits"))
    _write_png_rgb16(add("rgb16", "rgb16.png", "16 bits"), 40, 48)
    Image.new("CMYK", (48, 40)).save(add("cmyk", "cmyk.jpg", "CMYK"))
    Image.fromarray(_rgb(20, 48)).save(add("tiny", "tiny.png", "smaller than the minimum 32"))
    Image.fromarray(_rgb()).save(add("gif", "anim.gif", "GIF"))
    add("corrupt", "corrupt.png", "not an image").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    add("text", "notes.jpg", "not an image").write_text("this is not a picture\n")
    full = tmp_path / "full.png"
    Image.fromarray(_rgb(64, 64)).save(full)
    add("truncated", "truncated.png", "corrupt or truncated").write_bytes(full.read_bytes()[:-4000])
    add("empty", "empty.bmp", "not an image").write_bytes(b"")
    cases["missing"] = (tmp_path / "missing.png", "does not exist")
    return cases


def test_read_image_refuses_bad_files_with_one_line_naming_the_file(tmp_path: Path) -> None:
    for key, (path, match) in _bad_files(tmp_path).items():
        with pytest.raises(DataError, match=match) as info:
            read_image(path)
        message = str(info.value)
        assert str(path) in message, key
        assert "\n" not in message, key
        assert ";" in message, key  # problem; fix


def test_read_image_min_size_is_adjustable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(_rgb(20, 24)).save(path)
    assert read_image(path, min_size=16).shape == (20, 24, 3)
    with pytest.raises(DataError, match="24x20 px"):
        read_image(path, min_size=21)


def test_read_image_folder_sorts_and_filters(tmp_path: Path) -> None:
    for index, name in enumerate(["b.PNG", "a.jpg", "c.tiff", "d.JPEG", "e.bmp"]):
        Image.fromarray(_rgb(seed=index)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "sub.png").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "sub.png" / "inner.png")
    loaded = read_image_folder(tmp_path, 32)
    assert list(loaded) == ["a.jpg", "b.PNG", "c.tiff", "d.JPEG", "e.bmp"]
    np.testing.assert_array_equal(loaded["b.PNG"], _rgb(seed=0) / np.float32(255.0))

    train, test = load_dataset(str(tmp_path), 2, 32)
    assert list(train) == ["a.jpg", "b.PNG", "c.tiff"] and list(test) == ["d.JPEG", "e.bmp"]
    with pytest.raises(DataError, match="needs at least 6"):
        load_dataset(str(tmp_path), 5, 32)

    Image.fromarray(_rgb()[..., 0]).save(tmp_path / "f.png")
    with pytest.raises(DataError, match=r"f\.png is grayscale"):
        read_image_folder(tmp_path, 32)


def test_read_image_folder_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere", 32)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no image files"):
        read_image_folder(tmp_path, 32)
    with pytest.raises(DataError, match="not a folder"):
        read_image_folder(tmp_path / "notes.txt", 32)


def _rgb_file(path: Path, size: int = 64) -> Path:
    Image.fromarray((np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["dangling", "looping"])
def test_broken_links_in_an_image_folder_are_errors_not_skipped(tmp_path: Path, kind: str) -> None:
    _rgb_file(tmp_path / "a.png")
    link = tmp_path / "b.png"
    link.symlink_to(tmp_path / "gone.png" if kind == "dangling" else link.name)
    with pytest.raises(DataError, match=r"b\.png is a dangling or looping symbolic link; fix the link or remove it"):
        images.image_files(tmp_path)
    with pytest.raises(DataError, match="dangling or looping"):
        read_image(link)


def test_a_link_to_a_real_image_is_read(tmp_path: Path) -> None:
    target = _rgb_file(tmp_path / "real.png")
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "linked.png").symlink_to(target)
    _rgb_file(folder / "plain.png")
    assert list(read_image_folder(folder)) == ["linked.png", "plain.png"]


def test_max_pixels_caps_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _rgb_file(tmp_path / "a.png", size=100)
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    assert read_image(path).shape == (100, 100, 3)
    with pytest.raises(
        DataError,
        match=r"a\.png is 100x100 px \(10,000 pixels\), more than the cap of 5,000 \(images\.max_pixels\); downscale",
    ):
        read_image(path, max_pixels=5_000)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "5000")
    with pytest.raises(DataError, match=r"images\.max_pixels"):
        read_image_folder(tmp_path)
    assert read_image(path, max_pixels=10_000).shape == (100, 100, 3)
