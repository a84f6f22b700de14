"""Real held-out photographs fetched at set-up from a Debian package, sha256-pinned.

No standard super-resolution benchmark (Set5/14, BSD100, Kodak-24, DIV2K) is on any package
registry. Debian's ``scratch`` package (Scratch 1.4's media library) ships 61 background images
at 480 x 360 px; the 50 that are real photographs (the cartoons and painted ones left out by name,
after looking at each; also the grey moon and the one 480 x 359 file) are listed with their
sha256, licence (CC-BY-SA-3.0) and attribution in the committed manifest
``photos_manifest.csv`` next to this module (:data:`MANIFEST`).

Their pixels are never committed: ``make setup`` runs ``python -m psychovis.photos fetch``, which
downloads the package with ``apt-get download scratch`` (after ``apt-get update``), extracts it
with ``dpkg-deb -x`` and copies the listed files into :data:`DEFAULT_FOLDER` (git-ignored). Every
read verifies each file against the manifest, so a changed package or a tampered file is a
one-line error, never a silently different test set.

Usage::

    python -m psychovis.photos fetch     # once (make setup does it); needs apt-get and dpkg-deb
    python -m psychovis.photos check     # verify the fetched files
    from psychovis.photos import load_photos
    images = load_photos()               # {name: (360, 480, 3) float32 in [0, 1]}
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from psychovis.errors import DataError

PACKAGE = "scratch"
"""The Debian package that ships the photographs."""
PACKAGE_VERSION = "1.4.0.6~dfsg1-6.1"
"""The version the manifest was made from (Debian 12); another version is accepted only if the hashes match."""
PACKAGE_FOLDER = "usr/share/scratch/Media/Backgrounds"
"""Where the photographs lie inside the package, one sub-folder per category."""
MANIFEST = Path(__file__).with_name("photos_manifest.csv")
"""The committed manifest: ``name, folder, sha256, licence, attribution`` per photograph."""
DEFAULT_FOLDER = Path("data/photos/scratch")
"""Where ``fetch`` puts the photographs (relative to the repository root; git-ignored)."""
FETCH_HINT = (
    f"run `python -m psychovis.photos fetch` (or `make setup`; needs apt-get to download Debian package `{PACKAGE}`)"
)


@dataclass(frozen=True)
class Photo:
    """One manifest entry."""

    name: str
    folder: str
    sha256: str
    licence: str
    attribution: str

    @property
    def filename(self) -> str:
        return f"{self.name}.jpg"


def read_manifest(path: Path = MANIFEST) -> tuple[Photo, ...]:
    """The manifest's photographs, in file order.

    Raises:
        DataError: the manifest is missing or lacks a column.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"photo manifest {path} cannot be read: {error.strerror or error}") from error
    try:
        return tuple(Photo(**{key: row[key] for key in Photo.__dataclass_fields__}) for row in rows)
    except (KeyError, TypeError) as error:
        raise DataError(
            f"photo manifest {path} lacks column {error}; expected name,folder,sha256,licence,attribution"
        ) from error


@cache
def manifest() -> tuple[Photo, ...]:
    """:func:`read_manifest` of the committed :data:`MANIFEST` (read once)."""
    return read_manifest()


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_folder(folder: str | Path = DEFAULT_FOLDER, photos: Sequence[Photo] | None = None) -> list[Path]:
    """Check that ``folder`` holds every manifest photograph with its pinned sha256.

    Args:
        folder: the folder ``fetch`` filled (files ``<name>.jpg`` directly inside).
        photos: the entries to check (default: the committed manifest).

    Returns:
        The photographs' paths, in manifest order.

    Raises:
        DataError: one line: the folder or a file is missing (naming the package and how to
            fetch it), or a file's hash differs from the manifest's.
    """
    folder = Path(folder)
    photos = manifest() if photos is None else tuple(photos)
    if not folder.is_dir():
        raise DataError(f"held-out photographs missing: no folder {folder}; {FETCH_HINT}")
    missing = [photo.filename for photo in photos if not (folder / photo.filename).is_file()]
    if missing:
        raise DataError(
            f"held-out photographs incomplete: {len(missing)} of {len(photos)} missing in {folder} "
            f"(e.g. {missing[0]}); {FETCH_HINT}"
        )
    paths = []
    for photo in photos:
        path = folder / photo.filename
        actual = sha256_file(path)
        if actual != photo.sha256:
            raise DataError(
                f"{path}: sha256 {actual[:12]}... differs from the manifest's {photo.sha256[:12]}... "
                f"(tampered, or another version of Debian package `{PACKAGE}` than {PACKAGE_VERSION}); "
                f"delete {folder} and fetch again"
            )
        paths.append(path)
    return paths


def load_photos(folder: str | Path = DEFAULT_FOLDER, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The verified photographs as float32 RGB arrays in [0, 1], ``{name: (H, W, 3)}`` in manifest order.

    Args:
        folder: where ``fetch`` put them.
        names: a subset of the manifest's names (default: all).

    Raises:
        DataError: unknown names, or anything :func:`verify_folder` refuses.
    """
    from psychovis.images import read_image

    photos = manifest()
    if names is not None:
        known = {photo.name: photo for photo in photos}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DataError(f"unknown photograph(s) {unknown}; the manifest {MANIFEST.name} lists {len(known)}")
        photos = tuple(known[name] for name in names)
    paths = verify_folder(folder, photos)
    return {photo.name: read_image(path) for photo, path in zip(photos, paths, strict=True)}


def extract(package_root: str | Path, folder: str | Path, photos: Sequence[Photo] | None = None) -> list[Path]:
    """Copy the manifest's photographs from an extracted package tree into ``folder`` and verify them.

    Args:
        package_root: the directory ``dpkg-deb -x`` extracted the package into.
        folder: the destination (created).
        photos: the entries to copy (default: the committed manifest).

    Returns:
        The verified destination paths.

    Raises:
        DataError: a listed file is not in the package, or a hash differs.
    """
    photos = manifest() if photos is None else tuple(photos)
    source = Path(package_root) / PACKAGE_FOLDER
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        origin = source / photo.folder / photo.filename
        if not origin.is_file():
            raise DataError(f"{origin} not in the extracted package; is it Debian package `{PACKAGE}`?")
        shutil.copyfile(origin, folder / photo.filename)
    return verify_folder(folder, photos)


def _run(command: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise DataError(
            f"`{command[0]}` not found: fetching Debian package `{PACKAGE}` needs apt-get and dpkg-deb"
        ) from error
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DataError(f"`{' '.join(command)}` failed ({last}); cannot fetch Debian package `{PACKAGE}`")


def fetch(folder: str | Path = DEFAULT_FOLDER, update: bool = True) -> list[Path]:
    """Download Debian package ``scratch`` and extract the manifest's photographs into ``folder``.

    Nothing is done when ``folder`` already verifies. Otherwise ``apt-get update -qq`` (if
    ``update``; a failure there is ignored, the download may still work from the local lists),
    ``apt-get download scratch`` and ``dpkg-deb -x`` in a temporary directory, then :func:`extract`.

    Raises:
        DataError: one line naming the package when apt-get/dpkg-deb are missing or fail, or a hash differs.
    """
    try:
        return verify_folder(folder)
    except DataError:
        pass
    with tempfile.TemporaryDirectory(prefix="psychovis-photos-") as work:
        work_dir = Path(work)
        if update:
            with contextlib.suppress(DataError):  # the download may still work from the local package lists
                _run(["apt-get", "update", "-qq"], work_dir)
        _run(["apt-get", "download", PACKAGE], work_dir)
        debs = sorted(work_dir.glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise DataError(f"apt-get download produced no {PACKAGE}_*.deb; cannot fetch Debian package `{PACKAGE}`")
        _run(["dpkg-deb", "-x", str(debs[-1]), "tree"], work_dir)
        return extract(work_dir / "tree", folder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m psychovis.photos", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["fetch", "check"])
    parser.add_argument("--folder", default=str(DEFAULT_FOLDER), help=f"default {DEFAULT_FOLDER}")
    parser.add_argument(
        "--soft", action="store_true", help="on failure print one line and exit 0 (set-up must not fail without apt)"
    )
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.folder) if args.action == "fetch" else verify_folder(args.folder)
    except DataError as error:
        print(f"photos: {error}", file=sys.stderr)
        return 0 if args.soft else 1
    print(f"photos: {len(paths)} photographs verified in {args.folder} (Debian package `{PACKAGE}`, CC-BY-SA-3.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
