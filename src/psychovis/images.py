"""Natural photographs, readable offline: the bundled set and a user's folder.

DIV2K, Set5/14, BSDS and Kodak cannot be downloaded here, so the default data set is the
colour photographs that ship inside installed wheels (:data:`BUNDLED_IMAGES`):

- scikit-image ``skimage/data``: astronaut, chelsea, coffee, hubble_deep_field,
  immunohistochemistry (``ihc.png``), retina, rocket, motorcycle_left, motorcycle_right;
- matplotlib ``sample_data``: grace_hopper;
- scikit-learn ``datasets/images`` (a requirement of mlflow): china, flower.

They are read straight from the installed files with PIL, so nothing is ever downloaded. Left
out on purpose: the grayscale images, the synthetic ones (colorwheel, chessboard, logo), ``cat``
(the same photograph as chelsea) and the scikit-image images that are fetched on demand.

The super-resolution task splits them into training and held-out images
(:func:`psychovis.sr.data.load_dataset`); the psychophysical test uses one as a natural background.

A user folder (e.g. DIV2K's ``DIV2K_train_HR``) is read with :func:`read_image_folder`; only
8-bit RGB JPEG/PNG/BMP/TIFF files are accepted, and anything else is refused with a one-line
message that names the file and says how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from psychovis.errors import DataError, ParamsError

PathLike = str | os.PathLike[str]

# name -> (package that ships it, path inside that package)
_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "coffee": ("skimage", "data/coffee.png"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "immunohistochemistry": ("skimage", "data/ihc.png"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "retina": ("skimage", "data/retina.jpg"),
    "rocket": ("skimage", "data/rocket.jpg"),
}

BUNDLED_IMAGES: tuple[str, ...] = tuple(_SOURCES)
"""Names of the colour photographs shipped inside installed wheels, in a fixed order."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_FORMATS = frozenset({"PNG", "JPEG", "MPO", "BMP", "TIFF"})  # MPO: the JPEG variant many cameras write
_GRAY_MODES = frozenset({"1", "L", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "La", "RGBa", "PA"})
DEFAULT_MIN_SIZE = 32
DEFAULT_MAX_PIXELS = 40_000_000
"""Default cap on decoded pixels per image (40 MP, 480 MB as float32 RGB), checked before decoding.

PIL's own bomb check only refuses images above ~179 MP, so a 10000x10000 photograph (100 MP, 1.2 GB
as float32) would otherwise be decoded. Stages set the cap from ``params.yaml: images.max_pixels``
(through ``$PSYCHOVIS_MAX_PIXELS``); library callers pass ``max_pixels``.
"""
MAX_PIXELS_ENV = "PSYCHOVIS_MAX_PIXELS"


def max_pixels_default() -> int:
    """The cap in force: ``$PSYCHOVIS_MAX_PIXELS`` (set by the stage runner) or :data:`DEFAULT_MAX_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def _bundled_path(name: str) -> Path:
    package, relative = _SOURCES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"bundled image {name!r} ships with the Python package {package}, which is not installed; "
            "run `make setup` (or `.venv/bin/pip install -e .`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(
            f"bundled image {name!r} is missing from the installed {package} ({path}); "
            f"reinstall it with `.venv/bin/pip install --force-reinstall --no-deps {package}`"
        )
    return path


def _bit_depth_16(image: Image.Image) -> bool:
    """Whether the file stores 16 bits per sample (PIL silently truncates 16-bit RGB PNG to 8 bits)."""
    if image.mode.startswith("I;16"):
        return True
    for tile in image.tile:
        args = tile[3]
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _read_uint8(path: Path, min_size: int, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``path`` into an HxWx3 uint8 array, refusing anything but 8-bit RGB (or an opaque palette)."""
    if path.is_symlink() and not path.exists():
        raise DataError(f"{path} is a dangling or looping symbolic link; fix the link or remove it from the folder")
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path (and params.yaml's image folder)")
    if not path.is_file():
        raise DataError(f"{path} is not a file; point at an image file")
    limit = max_pixels_default() if max_pixels is None else max_pixels
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > limit:
                raise DataError(
                    f"{path} is {width}x{height} px ({width * height:,} pixels), more than the cap of {limit:,} "
                    "(images.max_pixels); downscale or tile it, or raise images.max_pixels in params.yaml"
                )
            fmt = image.format
            if fmt not in _FORMATS:
                raise DataError(f"{path} is a {fmt} image; only JPEG, PNG, BMP and TIFF are read: convert it to PNG")
            mode = image.mode
            if _bit_depth_16(image):
                raise DataError(
                    f"{path} has 16 bits per sample (mode {mode}); only 8-bit RGB is read: "
                    "convert it to 8-bit RGB (e.g. `magick in.png -depth 8 out.png`)"
                )
            if mode in _GRAY_MODES:
                raise DataError(f"{path} is grayscale (mode {mode}); only colour images are read: convert it to RGB")
            if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
                raise DataError(
                    f"{path} has an alpha channel (mode {mode}); convert to RGB (flatten onto a background) first"
                )
            if mode not in {"RGB", "P"}:
                raise DataError(f"{path} is in colour mode {mode}; only 8-bit RGB is read: convert it to RGB")
            image.load()
            if mode == "P":
                if image.palette is not None and image.palette.mode != "RGB":
                    raise DataError(
                        f"{path} has a {image.palette.mode} palette; only 8-bit RGB is read: convert it to RGB"
                    )
                image = image.convert("RGB")
            image = ImageOps.exif_transpose(image)
            array = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(f"{path} is not an image PIL can read; check it is a JPEG, PNG, BMP or TIFF file") from exc
    except PermissionError as exc:
        raise DataError(f"{path} cannot be read (permission denied); fix its permissions or remove it") from exc
    except MemoryError as exc:
        raise DataError(f"{path} is too large to decode in the memory available; downscale it") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path} is too large to decode safely ({exc}); downscale or tile it first") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # truncated or corrupt data surfaces only when the pixels are decoded
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path} is corrupt or truncated ({detail}); re-export or re-download the file") from exc
    if array.ndim != 3 or array.shape[2] != 3:
        raise DataError(f"{path} decoded to shape {array.shape}, not HxWx3; convert it to 8-bit RGB")
    height, width = array.shape[:2]
    if min(height, width) < min_size:
        raise DataError(
            f"{path} is {width}x{height} px, smaller than the minimum {min_size} px per side; "
            "remove it from the folder or lower the crop size"
        )
    return array


def _to_float(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)


@cache
def _bundled_uint8(name: str) -> np.ndarray:
    array = _read_uint8(_bundled_path(name), min_size=1, max_pixels=DEFAULT_MAX_PIXELS)
    array.setflags(write=False)
    return array


def bundled_images(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Load colour photographs that ship inside installed wheels (no download, ever).

    Args:
        names: which of :data:`BUNDLED_IMAGES` to load, in the order wanted; None loads all of them.

    Returns:
        Name -> HxWx3 float32 RGB array in [0, 1], C-contiguous and writable (a fresh copy per call).

    Raises:
        ParamsError: a name is not one of :data:`BUNDLED_IMAGES`.
        DataError: the package that ships an image is missing or broken.
    """
    if names is None:
        names = BUNDLED_IMAGES
    elif isinstance(names, str):
        names = (names,)
    unknown = [name for name in names if name not in _SOURCES]
    if unknown:
        raise ParamsError(f"unknown bundled image(s) {unknown}; choose from {list(BUNDLED_IMAGES)}")
    return {name: _to_float(_bundled_uint8(name)) for name in names}


def read_image(path: PathLike, min_size: int = DEFAULT_MIN_SIZE, max_pixels: int | None = None) -> np.ndarray:
    """Read an 8-bit RGB JPEG, PNG, BMP or TIFF file (EXIF orientation applied).

    Args:
        path: the image file.
        min_size: the smallest accepted height and width in pixels.
        max_pixels: the most pixels (width x height) decoded, checked from the header before
            decoding; None: :func:`max_pixels_default`.

    Returns:
        An HxWx3 float32 RGB array in [0, 1], C-contiguous.

    Raises:
        DataError: the file is missing, not an image, corrupt, of another format, grayscale, has an
            alpha channel, has 16 bits per sample, is smaller than ``min_size`` or larger than
            ``max_pixels``, is unreadable or a dangling link; the one-line message names the file and the fix.
    """
    return _to_float(_read_uint8(Path(path), min_size, max_pixels))


def image_files(folder: PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name.

    Files with an extension in :data:`IMAGE_EXTENSIONS` (any case) count; hidden files (names
    starting with a dot, e.g. macOS ``._x.png`` sidecars) and sub-folders do not. An image name
    that is a dangling or looping symbolic link, or a file that cannot be opened, is an error, not
    skipped: a data set that silently loses images changes results without a trace.

    Raises:
        DataError: ``folder`` is missing, not a folder or unreadable, or an image entry is a
            broken link or unreadable.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder {folder} does not exist; check the path in params.yaml")
    if not folder.is_dir():
        raise DataError(f"image folder {folder} is not a folder; point at the folder that holds the images")
    try:
        entries = sorted(folder.iterdir(), key=lambda path: path.name)
    except OSError as exc:
        raise DataError(f"image folder {folder} cannot be listed ({exc.strerror or exc}); fix its permissions") from exc
    paths = []
    for path in entries:
        if path.suffix.lower() not in IMAGE_EXTENSIONS or path.name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():
            raise DataError(f"{path} is a dangling or looping symbolic link; fix the link or remove it from the folder")
        if not path.is_file():
            continue  # a sub-folder named like an image
        if not os.access(path, os.R_OK):
            raise DataError(f"{path} cannot be read (permission denied); fix its permissions or remove it")
        paths.append(path)
    return sorted(paths, key=lambda path: path.name)


def read_image_folder(
    folder: PathLike, min_size: int = DEFAULT_MIN_SIZE, max_pixels: int | None = None
) -> dict[str, np.ndarray]:
    """Read every image directly inside ``folder`` (see :func:`image_files`), sorted by file name.

    A file with an image extension that cannot be read is an error, not skipped: a data set that
    silently loses images would change results without a trace.

    Args:
        folder: the folder, e.g. DIV2K's ``DIV2K_train_HR``.
        min_size: the smallest accepted height and width in pixels.
        max_pixels: the most pixels per image (see :func:`read_image`).

    Returns:
        File name (with extension) -> HxWx3 float32 RGB array in [0, 1], in sorted name order.

    Raises:
        DataError: the folder is missing, holds no image files, or one of them is unreadable.
    """
    paths = image_files(folder)
    if not paths:
        raise DataError(
            f"image folder {folder} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "put the images directly inside it"
        )
    return {path.name: read_image(path, min_size, max_pixels) for path in paths}
