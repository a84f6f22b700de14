"""Tests of psychovis.sr.data: the train/test split, random crops, bicubic resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psychovis.errors import DataError, ParamsError
from psychovis.images import BUNDLED_IMAGES
from psychovis.sr import data as sr_data
from psychovis.sr.data import TEST_IMAGES, crop_to_multiple, downsample, load_dataset, random_crops, upsample_bicubic


def test_split_is_fixed_disjoint_and_extends_in_order() -> None:
    assert TEST_IMAGES == ("chelsea", "coffee", "grace_hopper")
    assert set(TEST_IMAGES) <= set(BUNDLED_IMAGES)
    assert sorted(sr_data._TEST_ORDER) == sorted(BUNDLED_IMAGES)
    train, test = load_dataset(None, 3, 32)
    assert tuple(test) == TEST_IMAGES
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(BUNDLED_IMAGES)
    assert list(train) == [name for name in BUNDLED_IMAGES if name not in TEST_IMAGES]

    train5, test5 = load_dataset(None, 5, 32)
    assert list(test5)[:3] == list(TEST_IMAGES) and len(test5) == 5
    assert set(train5).isdisjoint(test5) and len(train5) == len(BUNDLED_IMAGES) - 5
    assert list(load_dataset(None, 5, 32)[1]) == list(test5)
    assert list(load_dataset(None, 1, 32)[1]) == ["chelsea"]

    with pytest.raises(DataError, match="no training image"):
        load_dataset(None, len(BUNDLED_IMAGES), 32)
    with pytest.raises(DataError, match="smaller than the minimum"):
        load_dataset(None, 3, 400)
    with pytest.raises(ParamsError):
        load_dataset(None, 0, 32)


def test_random_crops_deterministic_shape_range_and_flip() -> None:
    rng = np.random.default_rng(0)
    pool = [rng.random((50, 70, 3), dtype=np.float32), rng.random((33, 90, 3), dtype=np.float32)]
    first = random_crops(pool, 32, 16, torch.Generator().manual_seed(1))
    again = random_crops(pool, 32, 16, torch.Generator().manual_seed(1))
    other = random_crops(pool, 32, 16, torch.Generator().manual_seed(2))
    assert first.shape == (16, 3, 32, 32) and first.dtype == torch.float32 and first.is_contiguous()
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert torch.equal(first, again) and not torch.equal(first, other)

    # every crop is a (possibly mirrored) window of one of the images
    ramp = np.broadcast_to(np.arange(64, dtype=np.float32)[None, :, None] / 64, (40, 64, 3)).copy()
    ramp[:, :, 1] = np.arange(40, dtype=np.float32)[:, None] / 40
    crops = random_crops({"ramp": ramp}, 8, 2000, torch.Generator().manual_seed(3))
    steps = crops[:, 0, 0, 1:] - crops[:, 0, 0, :-1]
    increasing = (steps > 0).all(dim=1)
    decreasing = (steps < 0).all(dim=1)
    assert bool((increasing | decreasing).all()) and 900 < int(decreasing.sum()) < 1100
    lefts = (torch.where(increasing, crops[:, 0, 0, 0], crops[:, 0, 0, -1]) * 64).round()
    tops = (crops[:, 1, 0, 0] * 40).round()
    assert lefts.min() == 0 and lefts.max() == 64 - 8
    assert tops.min() == 0 and tops.max() == 40 - 8
    assert bool((crops[:, 1, 1:, 0] > crops[:, 1, :-1, 0]).all())  # never flipped vertically


@pytest.mark.parametrize("ranks", [2, 4])
def test_rank_shards_of_random_crops_make_the_global_batch(ranks: int) -> None:
    images = [np.random.default_rng(index).random((40 + index, 50, 3), dtype=np.float32) for index in range(3)]
    whole_generator = torch.Generator().manual_seed(5)
    whole = random_crops(images, 16, 8, whole_generator)
    shards = []
    for rank in range(ranks):
        generator = torch.Generator().manual_seed(5)  # every rank seeds its own, identically
        shards.append(random_crops(images, 16, 8, generator, shard=(rank, ranks)))
        # ... and ends in the same state as a single process, so the next batch agrees too
        assert torch.equal(generator.get_state(), whole_generator.get_state())
    assert all(shard.shape == (8 // ranks, 3, 16, 16) for shard in shards)
    assert torch.equal(torch.cat(shards), whole)


def test_random_crops_refuses_a_batch_the_ranks_cannot_share() -> None:
    images = [np.zeros((32, 32, 3), dtype=np.float32)]
    with pytest.raises(ParamsError, match=r"multiple of train\.processes"):
        random_crops(images, 16, 3, torch.Generator(), shard=(0, 2))
    with pytest.raises(ParamsError, match="rank 2"):
        random_crops(images, 16, 4, torch.Generator(), shard=(2, 2))


def test_random_crops_refuses_small_images() -> None:
    pool = {"big": np.zeros((64, 64, 3), np.float32), "thumb": np.zeros((64, 20, 3), np.float32)}
    with pytest.raises(DataError, match="thumb is 20x64 px"):
        random_crops(pool, 32, 4, torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="#1"):
        random_crops(list(pool.values()), 32, 4, torch.Generator().manual_seed(0))
    with pytest.raises(ParamsError):
        random_crops([], 32, 4, torch.Generator().manual_seed(0))


def test_downsample_and_upsample_shapes_and_constants() -> None:
    hr = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    assert downsample(hr, 4).shape == (2, 3, 12, 16)
    assert downsample(hr[..., :60], 3).shape == (2, 3, 16, 20)
    assert upsample_bicubic(downsample(hr, 4), 4).shape == hr.shape
    assert upsample_bicubic(hr, 3).shape == (2, 3, 144, 192)
    for result in (downsample(hr, 2), upsample_bicubic(hr, 2)):
        assert result.min() >= 0.0 and result.max() <= 1.0

    constant = torch.full((1, 3, 32, 32), 0.37)
    torch.testing.assert_close(downsample(constant, 4), torch.full((1, 3, 8, 8), 0.37))
    torch.testing.assert_close(upsample_bicubic(constant, 4), torch.full((1, 3, 128, 128), 0.37))

    with pytest.raises(ValueError, match="not divisible by scale 3"):
        downsample(hr, 3)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        downsample(hr[0], 2)
    with pytest.raises(ValueError, match="scale"):
        upsample_bicubic(hr, 0)


def test_downsample_is_antialiased() -> None:
    # a pixel-level checkerboard has no content at the low resolution: antialiasing must remove it
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    image = checker.float().expand(1, 3, 64, 64)
    torch.testing.assert_close(downsample(image, 4), torch.full((1, 3, 16, 16), 0.5), atol=0.02, rtol=0)


def test_crop_to_multiple() -> None:
    image = np.arange(50 * 37 * 3, dtype=np.float32).reshape(50, 37, 3)
    cropped = crop_to_multiple(image, 4)
    assert cropped.shape == (48, 36, 3) and cropped.flags.c_contiguous
    np.testing.assert_array_equal(cropped, image[:48, :36])
    assert crop_to_multiple(image[..., 0], 5).shape == (50, 35)
    with pytest.raises(ValueError):
        crop_to_multiple(image, 0)
    with pytest.raises(ValueError, match="smaller than scale"):
        crop_to_multiple(image[:3], 4)
