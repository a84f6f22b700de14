"""Data of the 4x super-resolution task: the train/test split, random crops, bicubic down- and upsampling.

Split: :data:`TEST_IMAGES` (chelsea, coffee, grace_hopper: fur, objects on a table, a face) is
held out for evaluation; the other bundled photographs are for training. When more test images
are asked for, the test set grows in the fixed order of ``_TEST_ORDER``, where the motorcycle
stereo pair comes last so that its two near-identical views are split only when a single
training image is left. A user's folder (e.g. DIV2K) is split by sorted file name instead.

``image_dir: scratch`` (:data:`PHOTO_SET`) holds out real photographs instead: the 50 photographs of
Debian package ``scratch`` fetched at set-up (:mod:`psychovis.photos`, sha256-verified on every
read), the first ``test_images`` of them in a fixed pseudo-random order (by sha256); every bundled
image is then for training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from psychovis.errors import DataError, ParamsError
from psychovis.images import BUNDLED_IMAGES, DEFAULT_MIN_SIZE, bundled_images, read_image_folder
from psychovis.validation import integer_at_least

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


PHOTO_SET = "scratch"
"""``image_dir`` value: hold out the fetched photographs (:mod:`psychovis.photos`), train on the bundled."""


def _photo_split(test_images: int, min_size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every bundled image for training; the first ``test_images`` fetched photographs (sha256 order) held out."""
    from psychovis import photos

    entries = sorted(photos.manifest(), key=lambda photo: photo.sha256)
    if test_images > len(entries):
        raise DataError(f"test_images={test_images} exceeds the {len(entries)} photographs of image_dir: {PHOTO_SET}")
    test = photos.load_photos(photos.DEFAULT_FOLDER, [photo.name for photo in entries[:test_images]])
    return _checked_bundled(min_size), test


def _checked_bundled(min_size: int) -> dict[str, np.ndarray]:
    images = bundled_images()
    for name, image in images.items():
        if min(image.shape[:2]) < min_size:
            raise DataError(
                f"bundled image {name!r} is {image.shape[1]}x{image.shape[0]} px, smaller than the minimum "
                f"{min_size} px; lower the crop size"
            )
    return images


def load_dataset(
    image_dir: str | None, test_images: int, min_size: int = DEFAULT_MIN_SIZE
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split the bundled images, or a user's folder, into training and test images.

    Args:
        image_dir: a folder of images, None for :data:`BUNDLED_IMAGES`, or :data:`PHOTO_SET` (``"scratch"``)
            to hold out the fetched photographs and train on every bundled image.
        test_images: how many images to hold out (at least 1). Bundled: the first ones of
            :data:`TEST_IMAGES`, extended in a fixed order when more are asked for. Folder: the
            last ``test_images`` file names in sorted order.
        min_size: the smallest accepted height and width in pixels (e.g. the training crop size).

    Returns:
        (train, test): name -> HxWx3 float32 RGB array in [0, 1]; disjoint, each in a fixed order.

    Raises:
        ParamsError: ``test_images`` or ``min_size`` is not a positive integer.
        DataError: an image is unreadable or too small, or fewer than ``test_images + 1`` images exist, or
            (``scratch``) the photographs are not fetched or fail their sha256 (one line saying how to fetch).
    """
    test_images = integer_at_least("test_images", test_images)
    min_size = integer_at_least("min_size", min_size)
    if image_dir is None:
        if test_images >= len(BUNDLED_IMAGES):
            raise DataError(
                f"test_images={test_images} leaves no training image: only {len(BUNDLED_IMAGES)} bundled images "
                f"exist; lower test_images to at most {len(BUNDLED_IMAGES) - 1} or set an image folder"
            )
        images = _checked_bundled(min_size)
        test_names = set(_TEST_ORDER[:test_images])
        test = {name: images[name] for name in _TEST_ORDER[:test_images]}
        train = {name: image for name, image in images.items() if name not in test_names}
        return train, test
    if image_dir == PHOTO_SET:
        return _photo_split(test_images, min_size)
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
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """Draw a batch of random square crops, each flipped left-right with probability 1/2.

    Images are drawn uniformly with replacement, then a position uniformly within the chosen
    image, all from ``generator`` (so a seed fixes the batch; the generator advances).

    Under data-parallel training every rank holds the same seeded generator and draws the whole
    global batch, then cuts only its own ``shard``: the global batch, and the generator's state
    after it, are the same whatever the number of ranks.

    Args:
        images: HxWx3 float arrays in [0, 1] (a mapping's keys name them in errors).
        crop_size: side of each crop in pixels.
        batch_size: number of crops.
        generator: a CPU ``torch.Generator``.
        shard: ``(rank, ranks)``: return only the rank-th of ``ranks`` equal contiguous slices of
            the batch (``batch_size`` must divide evenly).

    Returns:
        A float32 tensor of shape (batch_size / ranks, 3, crop_size, crop_size) on the CPU.

    Raises:
        ParamsError: no images, ``crop_size`` / ``batch_size`` below 1, or a batch that the ranks
            cannot share evenly.
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
    rank, ranks = shard
    if ranks < 1 or not 0 <= rank < ranks or batch_size % ranks:
        raise ParamsError(
            f"a batch of {batch_size} cannot be shared by {ranks} processes evenly (rank {rank}); "
            "make train.batch_size a multiple of train.processes"
        )
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
    mine = slice(rank * batch_size // ranks, (rank + 1) * batch_size // ranks)
    which, tops, lefts, flips = which[mine], tops[mine], lefts[mine], flips[mine]
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
    integer_at_least("scale", scale)


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
