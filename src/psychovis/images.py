"""Natural images for training and evaluating super-resolution, readable offline.

DIV2K, Set5/14, BSDS and Kodak cannot be downloaded here, so the default data set is the
colour photographs that ship inside installed wheels (:data:`BUNDLED_IMAGES`):

- scikit-image ``skimage/data``: astronaut, chelsea, coffee, hubble_deep_field,
  immunohistochemistry (``ihc.png``), retina, rocket, motorcycle_left, motorcycle_right;
- matplotlib ``sample_data``: grace_hopper;
- scikit-learn ``datasets/images`` (a requirement of mlflow): china, flower.

They are read straight from the installed files with PIL, so nothing is ever downloaded. Left
out on purpose: the grayscale images, the synthetic ones (colorwheel, chessboard, logo), ``cat``
(the same photograph as chelsea) and the scikit-image images that are fetched on demand.

Split: :data:`TEST_IMAGES` (chelsea, coffee, grace_hopper: fur, objects on a table, a face) is
held out for evaluation; the other nine are for training. When more test images are asked for,
the test set grows in the fixed order of ``_TEST_ORDER``, where the motorcycle stereo pair comes
last so that its two near-identical views are split only when a single training image is left.

A user folder (e.g. DIV2K's ``DIV2K_train_HR``) is read with :func:`read_image_folder`; only
8-bit RGB JPEG/PNG/BMP/TIFF files are accepted, and anything else is refused with a one-line
message that names the file and says how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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

TEST_IMAGES: tuple[str, ...] = ("chelsea", "coffee", "grace_hopper")
"""The held-out evaluation images of the bundled set; all other bundled images are for training."""

_TEST_ORDER: tuple[str, ...] = (
    *TEST_IMAGES,
    "flower",
    "rocket",
    "astronaut",
    "china",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_FORMATS = frozenset({"PNG", "JPEG", "MPO", "BMP", "TIFF"})  # MPO: the JPEG variant many cameras write
_GRAY_MODES = frozenset({"1", "L", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "La", "RGBa", "PA"})
DEFAULT_MIN_SIZE = 32


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


def _read_uint8(path: Path, min_size: int) -> np.ndarray:
    """Decode ``path`` into an HxWx3 uint8 array, refusing anything but 8-bit RGB (or an opaque palette)."""
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path (and params.yaml's image folder)")
    if not path.is_file():
        raise DataError(f"{path} is not a file; point at an image file")
    try:
        with Image.open(path) as image:
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
    array = _read_uint8(_bundled_path(name), min_size=1)
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


def read_image(path: PathLike, min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Read an 8-bit RGB JPEG, PNG, BMP or TIFF file (EXIF orientation applied).

    Args:
        path: the image file.
        min_size: the smallest accepted height and width in pixels.

    Returns:
        An HxWx3 float32 RGB array in [0, 1], C-contiguous.

    Raises:
        DataError: the file is missing, not an image, corrupt, of another format, grayscale, has an
            alpha channel, has 16 bits per sample, or is smaller than ``min_size``; the one-line
            message names the file and the fix.
    """
    return _to_float(_read_uint8(Path(path), min_size))


def image_files(folder: PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name.

    Files with an extension in :data:`IMAGE_EXTENSIONS` (any case) count; hidden files (names
    starting with a dot, e.g. macOS ``._x.png`` sidecars) and sub-folders do not.

    Raises:
        DataError: ``folder`` is missing or not a folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder {folder} does not exist; check the path in params.yaml")
    if not folder.is_dir():
        raise DataError(f"image folder {folder} is not a folder; point at the folder that holds the images")
    return sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
        ),
        key=lambda path: path.name,
    )


def read_image_folder(folder: PathLike, min_size: int = DEFAULT_MIN_SIZE) -> dict[str, np.ndarray]:
    """Read every image directly inside ``folder`` (see :func:`image_files`), sorted by file name.

    A file with an image extension that cannot be read is an error, not skipped: a data set that
    silently loses images would change results without a trace.

    Args:
        folder: the folder, e.g. DIV2K's ``DIV2K_train_HR``.
        min_size: the smallest accepted height and width in pixels.

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
    return {path.name: read_image(path, min_size) for path in paths}


def load_dataset(
    image_dir: str | None, test_images: int, min_size: int = DEFAULT_MIN_SIZE
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split the bundled images, or a user's folder, into training and test images.

    Args:
        image_dir: a folder of images, or None for :data:`BUNDLED_IMAGES`.
        test_images: how many images to hold out (at least 1). Bundled: the first ones of
            :data:`TEST_IMAGES`, extended in a fixed order when more are asked for. Folder: the
            last ``test_images`` file names in sorted order.
        min_size: the smallest accepted height and width in pixels (e.g. the training crop size).

    Returns:
        (train, test): name -> HxWx3 float32 RGB array in [0, 1]; disjoint, each in a fixed order.

    Raises:
        ParamsError: ``test_images`` or ``min_size`` is not a positive integer.
        DataError: an image is unreadable or too small, or fewer than ``test_images + 1`` images exist.
    """
    if isinstance(test_images, bool) or not isinstance(test_images, int) or test_images < 1:
        raise ParamsError(f"test_images must be an integer >= 1, got {test_images!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ParamsError(f"min_size must be an integer >= 1, got {min_size!r}")
    if image_dir is None:
        if test_images >= len(BUNDLED_IMAGES):
            raise DataError(
                f"test_images={test_images} leaves no training image: only {len(BUNDLED_IMAGES)} bundled images "
                f"exist; lower test_images to at most {len(BUNDLED_IMAGES) - 1} or set an image folder"
            )
        images = bundled_images()
        for name, image in images.items():
            if min(image.shape[:2]) < min_size:
                raise DataError(
                    f"bundled image {name!r} is {image.shape[1]}x{image.shape[0]} px, smaller than the minimum "
                    f"{min_size} px; lower the crop size"
                )
        test_names = set(_TEST_ORDER[:test_images])
        test = {name: images[name] for name in _TEST_ORDER[:test_images]}
        train = {name: image for name, image in images.items() if name not in test_names}
        return train, test
    images = read_image_folder(image_dir, min_size)
    if len(images) < test_images + 1:
        raise DataError(
            f"image folder {image_dir} holds {len(images)} image(s), but test_images={test_images} needs at least "
            f"{test_images + 1} (one left for training); add images or lower test_images"
        )
    names = list(images)
    split = len(names) - test_images
    return {name: images[name] for name in names[:split]}, {name: images[name] for name in names[split:]}


def random_crops(
    images: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    crop_size: int,
    batch_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw a batch of random square crops, each flipped left-right with probability 1/2.

    Images are drawn uniformly with replacement, then a position uniformly within the chosen
    image, all from ``generator`` (so a seed fixes the batch; the generator advances).

    Args:
        images: HxWx3 float arrays in [0, 1] (a mapping's keys name them in errors).
        crop_size: side of each crop in pixels.
        batch_size: number of crops.
        generator: a CPU ``torch.Generator``.

    Returns:
        A float32 tensor of shape (batch_size, 3, crop_size, crop_size) on the CPU.

    Raises:
        ParamsError: no images, or ``crop_size`` / ``batch_size`` below 1.
        DataError: an image is not HxWx3 or is smaller than ``crop_size``.
    """
    if isinstance(images, Mapping):
        names = [str(name) for name in images]
        arrays = list(images.values())
    else:
        arrays = list(images)
        names = [f"#{index}" for index in range(len(arrays))]
    if not arrays:
        raise ParamsError("random_crops needs at least one image, got none")
    if crop_size < 1 or batch_size < 1:
        raise ParamsError(f"crop_size and batch_size must be >= 1, got {crop_size} and {batch_size}")
    for name, array in zip(names, arrays, strict=True):
        if array.ndim != 3 or array.shape[2] != 3:
            raise DataError(f"image {name} has shape {tuple(array.shape)}, not HxWx3; pass RGB images")
        if min(array.shape[:2]) < crop_size:
            raise DataError(
                f"image {name} is {array.shape[1]}x{array.shape[0]} px, smaller than crop_size={crop_size}; "
                "lower the crop size or drop the image"
            )
    which = torch.randint(len(arrays), (batch_size,), generator=generator)
    heights = torch.tensor([array.shape[0] for array in arrays])[which]
    widths = torch.tensor([array.shape[1] for array in arrays])[which]
    # floor(u * n) with u in [0, 1) is uniform over 0..n-1 for every image size at once
    tops = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * (heights - crop_size + 1)).long()
    lefts = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * (widths - crop_size + 1)).long()
    flips = torch.rand(batch_size, generator=generator) < 0.5
    crops = np.stack(
        [
            arrays[index][top : top + crop_size, left : left + crop_size]
            for index, top, left in zip(which.tolist(), tops.tolist(), lefts.tolist(), strict=True)
        ]
    )
    batch = torch.from_numpy(crops.astype(np.float32, copy=False)).permute(0, 3, 1, 2)
    batch = torch.where(flips[:, None, None, None], batch.flip(-1), batch)
    return batch.contiguous()


def _check_spatial(image: torch.Tensor, what: str) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or not image.is_floating_point():
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{what} must be a float tensor of shape (N, C, H, W), got {shape}")


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic downsampling with antialiasing (MATLAB ``imresize``-like), clamped to [0, 1].

    Args:
        hr: a float tensor (N, C, H, W) in [0, 1]; H and W divisible by ``scale``.
        scale: the integer downscaling factor.

    Returns:
        A tensor (N, C, H / scale, W / scale).

    Raises:
        ValueError: wrong shape, or H or W not divisible by ``scale`` (see :func:`crop_to_multiple`).
    """
    _check_spatial(hr, "hr")
    _check_scale(scale)
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(
            f"image size {height}x{width} is not divisible by scale {scale}; crop it first with crop_to_multiple"
        )
    if scale == 1:
        return hr.clamp(0.0, 1.0)
    small = F.interpolate(
        hr, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return small.clamp(0.0, 1.0)


def upsample_bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling (the classic SR baseline), clamped to [0, 1].

    Args:
        lr: a float tensor (N, C, h, w).
        scale: the integer upscaling factor.

    Returns:
        A tensor (N, C, h * scale, w * scale).

    Raises:
        ValueError: wrong shape or scale.
    """
    _check_spatial(lr, "lr")
    _check_scale(scale)
    if scale == 1:
        return lr.clamp(0.0, 1.0)
    height, width = lr.shape[-2:]
    large = F.interpolate(lr, size=(height * scale, width * scale), mode="bicubic", align_corners=False)
    return large.clamp(0.0, 1.0)


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right edges so height and width are multiples of ``scale`` ("modcrop").

    Args:
        image: an HxW or HxWxC array.
        scale: the integer factor.

    Returns:
        A C-contiguous copy of the top-left (H - H mod scale) x (W - W mod scale) part.

    Raises:
        ValueError: bad scale, or the image is smaller than ``scale``.
    """
    _check_scale(scale)
    if image.ndim < 2:
        raise ValueError(f"image must be HxW or HxWxC, got shape {image.shape}")
    height = image.shape[0] - image.shape[0] % scale
    width = image.shape[1] - image.shape[1] % scale
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than scale {scale}")
    return np.ascontiguousarray(image[:height, :width])
