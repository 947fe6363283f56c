"""An inference dump in shards: the same contents as one file, read the same way, and refused when mixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from alseg.acquire.pixel import STRATEGY_FIELDS
from alseg.infer import write_inference
from alseg.inference_file import (
    InferenceDump,
    InferenceFileError,
    dump_file_names,
    read_inference,
    read_superpixel_fields,
    shard_ranges,
)
from alseg.models import build_model
from alseg.pixel_dump import PixelDumpRequest, read_pixel_candidates
from alseg.superpixels import SuperpixelMaps

NUM_CLASSES = 4
BATCH = 2


@pytest.mark.parametrize(("num_images", "shards", "batch", "expected"), [
    (7, 1, 2, [(0, 7)]),
    (7, 3, 2, [(0, 2), (2, 4), (4, 7)]),
    (8, 2, 3, [(0, 3), (3, 8)]),
    (3, 4, 2, [(0, 0), (0, 2), (2, 2), (2, 3)]),
    (0, 2, 4, [(0, 0), (0, 0)]),
])
def test_shard_ranges_are_whole_batches_covering_the_pool(num_images, shards, batch, expected) -> None:
    ranges = shard_ranges(num_images, shards, batch)
    assert ranges == expected
    assert all(start % batch == 0 for start, _ in ranges)


def test_shard_ranges_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="shards and batch_size must be >= 1"):
        shard_ranges(5, 0, 2)


def test_dump_file_names() -> None:
    assert dump_file_names(1) == ["inference.h5"]
    assert dump_file_names(3) == ["inference.h5", "inference_shard1.h5", "inference_shard2.h5"]


@pytest.fixture(scope="module")
def pool() -> tuple[torch.nn.Module, np.ndarray, SuperpixelMaps]:
    torch.manual_seed(0)
    model = build_model({"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.5}, NUM_CLASSES).eval()
    images = np.random.default_rng(0).integers(0, 256, (7, 16, 20, 3), dtype=np.uint8)
    # superpixels: 2 x 2 blocks in even images, 2 x 1 in odd ones (superpixel counts differ between images)
    blocks = np.zeros((7, 16, 20), np.int32)
    blocks[:, :, 10:] = 1
    blocks[::2, 8:, :] += 2
    counts = np.where(np.arange(7) % 2 == 0, 4, 2)
    maps = SuperpixelMaps(labels=blocks, offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                          images=np.arange(7), attrs={"method": "blocks", "pixels_per_superpixel": 80})
    return model, images, maps


def _own_maps(maps: SuperpixelMaps, start: int, stop: int) -> SuperpixelMaps:
    """The maps of pool images start..stop only, as a shard job reads them."""
    return SuperpixelMaps(labels=maps.labels[start:stop], offsets=maps.offsets, images=np.arange(start, stop),
                          attrs=maps.attrs)


def _write(paths: list[Path], pool, mc_passes: int, own_maps: bool = False) -> None:
    model, images, maps = pool
    ranges = shard_ranges(len(images), len(paths), BATCH)
    # a pixel already asked in image 3: eligibility is by pool index in every shard
    asked = np.ones(images.shape[:3], bool)
    asked[3, 0, :5] = False
    request = PixelDumpRequest(2, 10.0, lambda start, stop: asked[start:stop], {"asked": "test"})
    for path, image_range in zip(paths, ranges):
        write_inference(path, model, images, NUM_CLASSES, batch_size=BATCH, mc_passes=mc_passes, seed=5,
                        groups=("pixel", "image", "superpixel"),
                        superpixels=_own_maps(maps, *image_range) if own_maps else maps, pixels=request,
                        image_range=image_range, shards=len(paths), attrs={"round": 0}, log=lambda line: None)


def _contents(paths: list[Path], n: int) -> dict[str, np.ndarray]:
    out = dict(read_inference(paths))
    out.update({f"superpixel/{k}": v for k, v in read_superpixel_fields(paths).items()})
    with InferenceDump(paths) as dump:
        for strategy in STRATEGY_FIELDS:
            candidates = read_pixel_candidates(dump, strategy, 0, n)
            out.update({f"{strategy}/index": candidates.index, f"{strategy}/offsets": candidates.offsets,
                        f"{strategy}/cover": candidates.cover, f"{strategy}/eligible": candidates.eligible,
                        **{f"{strategy}/{k}": v for k, v in candidates.fields.items()}})
    return out


@pytest.mark.parametrize("mc_passes, own_maps", [(0, False), (3, False), (0, True)])
def test_shards_hold_exactly_what_one_file_holds(tmp_path: Path, pool, mc_passes: int, own_maps: bool) -> None:
    """Also when each shard gets the superpixel maps of its own images only (``own_maps``)."""
    one = [tmp_path / "one.h5"]
    three = [tmp_path / name for name in dump_file_names(3)]
    _write(one, pool, mc_passes)
    _write(three, pool, mc_passes, own_maps)
    whole, joined = _contents(one, 7), _contents(three, 7)
    assert whole.keys() == joined.keys()
    for key in whole:
        np.testing.assert_array_equal(joined[key], whole[key], err_msg=key)
    assert whole["superpixel/pixel_count"].sum() == 7 * 16 * 20
    with InferenceDump(three) as dump:
        assert dump.ranges == [(0, 2), (2, 4), (4, 7)]


def test_more_shards_than_batches_leave_empty_shards_that_read_as_nothing(tmp_path: Path, pool) -> None:
    """7 images in 4 batches of 2, in 6 shards: two hold no image (and no image group's features)."""
    one = [tmp_path / "one.h5"]
    six = [tmp_path / name for name in dump_file_names(6)]
    _write(one, pool, 0)
    _write(six, pool, 0, own_maps=True)
    whole, joined = _contents(one, 7), _contents(six, 7)
    for key in whole:
        np.testing.assert_array_equal(joined[key], whole[key], err_msg=key)
    with InferenceDump(six) as dump:
        assert dump.ranges == [(0, 2), (2, 4), (4, 6), (6, 7)]


@pytest.mark.parametrize("maps_of, image_range", [((0, 3), (2, 4)), ((3, 7), (2, 4)), ((2, 7), (0, 7))])
def test_maps_that_miss_part_of_the_shard_are_refused(tmp_path: Path, pool, maps_of, image_range) -> None:
    """A shard (or a whole file, 0..7) needs the maps of all its images."""
    model, images, maps = pool
    with pytest.raises(ValueError, match=f"do not cover pool images {image_range[0]}..{image_range[1]}"):
        write_inference(tmp_path / "shard.h5", model, images, NUM_CLASSES, batch_size=BATCH, groups=("superpixel",),
                        superpixels=_own_maps(maps, *maps_of), image_range=image_range, log=lambda line: None)
    assert not (tmp_path / "shard.h5").exists()


def test_mc_passes_differ_between_batches_and_seeds(tmp_path: Path, pool) -> None:
    """Each batch's dropout masks come from its own seed: the passes are not the deterministic pass."""
    _write([tmp_path / "plain.h5"], pool, 0)
    _write([tmp_path / "mc.h5"], pool, 3)
    plain, mc = read_inference(tmp_path / "plain.h5"), read_inference(tmp_path / "mc.h5")
    assert not np.allclose(plain["class_presence"], mc["class_presence"])


def test_the_reader_refuses_a_missing_or_foreign_shard(tmp_path: Path, pool) -> None:
    paths = [tmp_path / name for name in dump_file_names(3)]
    _write(paths, pool, 0)
    with pytest.raises(InferenceFileError, match=r"2 file\(s\), but the dump was written as \[3\] shard"):
        InferenceDump(paths[:2]).__enter__()
    with pytest.raises(InferenceFileError, match="consecutive images"):
        InferenceDump([paths[0], paths[2]]).__enter__()
    model, images, maps = pool
    other = build_model({"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.5}, NUM_CLASSES).eval()
    write_inference(paths[1], other, images, NUM_CLASSES, batch_size=BATCH, groups=("image",),
                    image_range=shard_ranges(7, 3, BATCH)[1], shards=3, attrs={"round": 0}, log=lambda line: None)
    with pytest.raises(InferenceFileError, match="inference_shard1.h5: a shard of another dump"):
        read_inference(paths)


def test_an_image_range_must_be_whole_batches(tmp_path: Path, pool) -> None:
    model, images, _ = pool
    with pytest.raises(ValueError, match="not a range of whole batches"):
        write_inference(tmp_path / "x.h5", model, images, NUM_CLASSES, batch_size=BATCH, image_range=(1, 4))
    assert not (tmp_path / "x.h5").exists()
