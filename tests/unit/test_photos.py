"""The held-out photographs: manifest, hash verification and one-line failures (psychovis.photos)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from psychovis import photos
from psychovis.errors import DataError
from psychovis.photos import PACKAGE, PACKAGE_FOLDER, Photo

ROOT = Path(__file__).resolve().parents[2]


def _fixture(tmp_path: Path, count: int = 3) -> tuple[Path, list[Photo]]:
    """A package tree ``tree/<PACKAGE_FOLDER>/Nature/p<i>.jpg`` and manifest entries pinning each file."""
    source = tmp_path / "tree" / PACKAGE_FOLDER / "Nature"
    source.mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for index in range(count):
        path = source / f"p{index}.jpg"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, quality=95)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append(Photo(f"p{index}", "Nature", digest, "CC-BY-SA-3.0", "test"))
    return tmp_path / "tree", entries


def test_manifest_lists_50_real_photographs_with_licence() -> None:
    entries = photos.read_manifest()
    assert len(entries) == 50
    assert len({entry.name for entry in entries}) == 50
    assert all(
        len(entry.sha256) == 64 and entry.licence == "CC-BY-SA-3.0" and "Massachusetts" in entry.attribution
        for entry in entries
    )
    # the cartoons and painted backgrounds are left out by name
    assert not {"room1", "party-room", "spotlight-stage", "school2", "brick-wall1"} & {entry.name for entry in entries}


def test_extract_copies_and_verifies(tmp_path: Path) -> None:
    tree, entries = _fixture(tmp_path)
    paths = photos.extract(tree, tmp_path / "out", entries)
    assert [path.name for path in paths] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert photos.verify_folder(tmp_path / "out", entries) == paths


def test_tampered_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    tree, entries = _fixture(tmp_path)
    photos.extract(tree, tmp_path / "out", entries)
    tampered = tmp_path / "out" / "p1.jpg"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(DataError) as caught:
        photos.verify_folder(tmp_path / "out", entries)
    message = str(caught.value)
    assert "\n" not in message and "p1.jpg" in message and "sha256" in message and PACKAGE in message


def test_missing_folder_or_file_is_one_line_naming_the_package(tmp_path: Path) -> None:
    _, entries = _fixture(tmp_path)
    for folder in (tmp_path / "absent", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(DataError) as caught:
            photos.verify_folder(folder, entries)
        message = str(caught.value)
        assert "\n" not in message and f"`{PACKAGE}`" in message and "python -m psychovis.photos fetch" in message


def test_fetch_without_apt_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no apt-get, no dpkg-deb
    with pytest.raises(DataError) as caught:
        photos.fetch(tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message and f"`{PACKAGE}`" in message


def test_cli_soft_fetch_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "psychovis.photos", "check", "--folder", str(tmp_path / "absent")]
    env = {"PATH": "/nonexistent", "PYTHONPATH": str(ROOT / "src")}
    hard = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    soft = subprocess.run([*command, "--soft"], capture_output=True, text=True, env=env, check=False)
    assert hard.returncode == 1 and soft.returncode == 0
    assert len(hard.stderr.strip().splitlines()) == 1 and PACKAGE in hard.stderr


def test_load_photos_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown photograph"):
        photos.load_photos(tmp_path, names=["no-such-photo"])


@pytest.mark.skipif(not (ROOT / photos.DEFAULT_FOLDER).is_dir(), reason="photographs not fetched (make setup)")
def test_fetched_photographs_verify_and_load() -> None:
    images = photos.load_photos(ROOT / photos.DEFAULT_FOLDER, names=["beach-malibu", "castle"])
    assert [image.shape for image in images.values()] == [(360, 480, 3)] * 2
    assert len(photos.verify_folder(ROOT / photos.DEFAULT_FOLDER)) == 50


def test_scratch_split_fails_with_one_line_when_not_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from psychovis.sr.data import PHOTO_SET, load_dataset

    monkeypatch.setattr(photos, "DEFAULT_FOLDER", tmp_path / "absent")
    with pytest.raises(DataError) as caught:
        load_dataset(PHOTO_SET, 3)
    assert "\n" not in str(caught.value) and "python -m psychovis.photos fetch" in str(caught.value)
    with pytest.raises(DataError, match="exceeds the 50 photographs"):
        load_dataset(PHOTO_SET, 51)


@pytest.mark.skipif(not (ROOT / photos.DEFAULT_FOLDER).is_dir(), reason="photographs not fetched (make setup)")
def test_scratch_split_holds_out_photographs_and_trains_on_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    from psychovis.images import BUNDLED_IMAGES
    from psychovis.sr.data import PHOTO_SET, load_dataset

    monkeypatch.chdir(ROOT)
    train, test = load_dataset(PHOTO_SET, 4)
    assert list(train) == list(BUNDLED_IMAGES)
    assert len(test) == 4 and all(image.shape == (360, 480, 3) for image in test.values())
    assert list(test) == list(load_dataset(PHOTO_SET, 5)[1])[:4]  # a fixed order: more photos extend the set
