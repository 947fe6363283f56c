"""Base superpixels (SEEDS, oracle), their file, and the one-pass region statistics."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest

from alseg.region_stats import (
    region_class_counts,
    region_means,
    region_pixel_counts,
    region_sums,
)
from alseg.superpixel_methods import (
    SEEDS_DEFAULTS,
    compute_superpixels,
    map_seeds,
    oracle_superpixels,
    relabel_contiguous,
    seeds_grid_count,
    seeds_input,
    seeds_request_for_size,
    seeds_superpixels,
)
from alseg.superpixels import SuperpixelFileError, image_of_superpixel, read_superpixels


def _textured_image(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Four flat colour quadrants plus noise: SEEDS has edges to follow."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), dtype=np.float64)
    image[: height // 2, : width // 2] = (200, 30, 30)
    image[: height // 2, width // 2 :] = (30, 200, 30)
    image[height // 2 :, : width // 2] = (30, 30, 200)
    image[height // 2 :, width // 2 :] = (200, 200, 30)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_relabel_contiguous_keeps_order_and_shape() -> None:
    labels = np.array([[7, 7, 3], [3, 12, 7]])
    relabelled, count = relabel_contiguous(labels)
    assert count == 3
    assert relabelled.dtype == np.int32
    np.testing.assert_array_equal(relabelled, [[1, 1, 0], [0, 2, 1]])


def test_seeds_grid_count_matches_opencv() -> None:
    for width, height in [(480, 360), (128, 96), (500, 375)]:
        for request in (10, 37, 165, 660, 675, 700, 1500):
            seeds = cv2.ximgproc.createSuperpixelSEEDS(width, height, 3, request, SEEDS_DEFAULTS.num_levels,
                                                       SEEDS_DEFAULTS.prior, SEEDS_DEFAULTS.histogram_bins, True)
            assert seeds_grid_count(width, height, request, 5) == seeds.getNumberOfSuperpixels()


def test_seeds_request_hits_the_average_size() -> None:
    # 360 x 480 at 256 px per superpixel: asking 675 gives a grid of 165; the search finds 660
    request = seeds_request_for_size(480, 360, 256.0, 5)
    assert seeds_grid_count(480, 360, request, 5) == 660
    with pytest.raises(ValueError, match="pixels_per_superpixel"):
        seeds_request_for_size(480, 360, 0.0, 5)


def test_seeds_input_is_equalised_hsv() -> None:
    image = _textured_image(0)
    hsv = seeds_input(image)
    assert hsv.dtype == np.uint8 and hsv.shape == image.shape
    with pytest.raises(ValueError, match="uint8"):
        seeds_input(image.astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        seeds_input(image[..., 0])


def test_seeds_superpixels_contiguous_and_deterministic() -> None:
    image = _textured_image(1)
    labels, count = seeds_superpixels(image, pixels_per_superpixel=64)
    again, count_again = seeds_superpixels(image, pixels_per_superpixel=64)
    np.testing.assert_array_equal(labels, again)
    assert count == count_again
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2]
    np.testing.assert_array_equal(np.unique(labels), np.arange(count))
    assert 0.5 * 96 * 128 / 64 <= count <= 1.5 * 96 * 128 / 64


def test_map_seeds_threads_give_the_same_maps() -> None:
    images = np.stack([_textured_image(s, 48, 64) for s in range(5)])
    one = list(map_seeds(images, 32, workers=1))
    two = list(map_seeds(images, 32, workers=2))
    assert [c for _, c in one] == [c for _, c in two]
    for (a, _), (b, _) in zip(one, two):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="workers"):
        list(map_seeds(images, 32, workers=0))


def test_oracle_superpixels_are_connected_components() -> None:
    mask = np.array([
        [0, 0, 1, 1],
        [0, 2, 2, 1],
        [0, 9, 9, 0],
        [1, 9, 0, 0],
    ], dtype=np.uint8)
    labels, count = oracle_superpixels(mask)
    # components: 0 (left column), 1 (top right), 2, 9 (void, its own), 0 (bottom right), 1 (bottom left)
    assert count == 6
    np.testing.assert_array_equal(np.unique(labels), np.arange(6))
    assert labels[0, 0] == labels[2, 0] and labels[2, 3] == labels[3, 2]
    assert labels[0, 0] != labels[3, 3]  # same class, not connected (4-neighbours)
    assert len(np.unique(mask[labels == labels[2, 1]])) == 1  # one value per component
    # diagonal contact does not connect
    _, count_diag = oracle_superpixels(np.array([[1, 0], [0, 1]], dtype=np.uint8))
    assert count_diag == 4


def test_compute_write_read_roundtrip(tmp_path) -> None:
    images = np.stack([_textured_image(s) for s in range(3)])
    path = tmp_path / "sp.h5"
    offsets = compute_superpixels(path, images=images, method="seeds", pixels_per_superpixel=64,
                                  attrs={"dataset": "toy"})
    maps = read_superpixels(path, expected_shape=(3, 96, 128))
    assert maps.labels.dtype == np.uint16
    np.testing.assert_array_equal(maps.offsets, offsets)
    assert maps.attrs["method"] == "seeds" and maps.attrs["dataset"] == "toy"
    assert maps.attrs["seeds"]["num_levels"] == 5
    for i in range(3):
        labels, count = seeds_superpixels(images[i], 64)
        np.testing.assert_array_equal(maps.labels[i], labels)
        assert offsets[i + 1] - offsets[i] == count
    glob = maps.global_labels()
    assert glob.min() == 0 and glob.max() == offsets[-1] - 1
    np.testing.assert_array_equal(maps.image_of(np.array([0, offsets[1], offsets[-1] - 1])), [0, 1, 2])
    np.testing.assert_array_equal(image_of_superpixel(offsets), maps.image_of(np.arange(offsets[-1])))
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(h5["pixel_count"][:], np.bincount(glob.reshape(-1)))
    subset = read_superpixels(path, images=np.array([1, 2]))
    np.testing.assert_array_equal(subset.labels, maps.labels[1:])
    np.testing.assert_array_equal(subset.global_labels(), glob[1:])


def test_oracle_file(tmp_path) -> None:
    masks = np.zeros((2, 8, 8), dtype=np.uint8)
    masks[0, :, 4:] = 1
    masks[1, 2:4, 2:4] = 11
    compute_superpixels(tmp_path / "oracle.h5", masks=masks, method="oracle")
    maps = read_superpixels(tmp_path / "oracle.h5")
    np.testing.assert_array_equal(maps.counts, [2, 2])
    assert maps.attrs["method"] == "oracle"


def test_read_errors_name_the_file(tmp_path) -> None:
    images = np.stack([_textured_image(s, 32, 48) for s in range(2)])
    path = tmp_path / "sp.h5"
    compute_superpixels(path, images=images, pixels_per_superpixel=32)
    with pytest.raises(SuperpixelFileError, match="sp.h5.*shape"):
        read_superpixels(path, expected_shape=(2, 64, 48))
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_superpixels(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SuperpixelFileError, match="corrupt.h5"):
        read_superpixels(corrupt)
    with h5py.File(path, "a") as h5:
        h5["labels"][0, 0, 0] = 60000
    with pytest.raises(SuperpixelFileError, match="beyond its count"):
        read_superpixels(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["labels"] = np.zeros((1, 2, 2))
    with pytest.raises(SuperpixelFileError, match="not an alseg superpixel file"):
        read_superpixels(other)


def test_compute_bad_inputs(tmp_path) -> None:
    with pytest.raises(ValueError, match="need the images"):
        compute_superpixels(tmp_path / "x.h5", method="seeds")
    with pytest.raises(ValueError, match="masks"):
        compute_superpixels(tmp_path / "x.h5", method="oracle")
    with pytest.raises(ValueError, match="unknown superpixel method"):
        compute_superpixels(tmp_path / "x.h5", images=np.zeros((1, 8, 8, 3), np.uint8), method="slic")
    assert not (tmp_path / "x.h5").exists()


def test_region_statistics_match_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    region = rng.integers(-1, 6, size=(4, 5, 7))  # -1: in no region
    values = rng.random((4, 5, 7))
    channels = rng.random((4, 5, 7, 3))
    classes = rng.integers(0, 4, size=(4, 5, 7))  # 3 plays the ignore value for num_classes=3
    counts = region_pixel_counts(region, 7)
    sums = region_sums(region, values, 7)
    means = region_means(region, channels, 7)
    class_counts = region_class_counts(region, classes, 7, 3)
    for r in range(7):
        inside = region == r
        assert counts[r] == inside.sum()
        assert sums[r] == pytest.approx(values[inside].sum())
        if inside.any():
            np.testing.assert_allclose(means[r], channels[inside].mean(axis=0))
        else:
            assert np.isnan(means[r]).all()
        np.testing.assert_array_equal(class_counts[r], [(classes[inside] == c).sum() for c in range(3)])
    with pytest.raises(ValueError, match="out of range"):
        region_pixel_counts(region, 5)
    with pytest.raises(ValueError, match="do not match"):
        region_sums(region, values[:2], 7)
    with pytest.raises(ValueError, match="integers"):
        region_pixel_counts(values, 7)
