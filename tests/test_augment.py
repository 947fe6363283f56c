"""Augmentation carries sparse labelled points through scale, crop and flip without silent losses."""

from __future__ import annotations

import numpy as np
import pytest

from alseg.augment import NO_AUGMENT, augment_sample, normalise_images, scale_points


def _image_and_points(height: int = 40, width: int = 56, count: int = 300, seed: int = 0):
    """A random image whose class map is known, and points sampled on it (classes read from the map)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    class_map = (np.arange(height)[:, None] // 5 * 7 + np.arange(width)[None, :] // 3) % 13
    flat = rng.choice(height * width, size=count, replace=False)
    ys, xs = np.divmod(flat, width)
    return image, ys, xs, class_map[ys, xs], class_map


def _only(**keys):
    return {**NO_AUGMENT, **keys}


@pytest.mark.parametrize("scale", [0.3, 0.5, 0.77, 1.0, 1.6, 2.0])
def test_every_point_survives_scaling_exactly_once(scale: float) -> None:
    image, ys, xs, classes, _ = _image_and_points()
    out = augment_sample(image, ys, xs, classes, np.random.default_rng(0), _only(scale=[scale, scale]))
    height, width = round(40 * scale), round(56 * scale)
    assert out.image.shape == (3, height, width)
    assert out.n_outside == 0
    assert out.ys.size == ys.size  # none lost, none duplicated
    np.testing.assert_array_equal(out.classes, classes)  # each point keeps its own class
    assert out.ys.min() >= 0 and out.ys.max() < height and out.xs.min() >= 0 and out.xs.max() < width
    # the pixel-centre mapping, in floating point
    np.testing.assert_array_equal(out.ys, np.floor((ys + 0.5) * height / 40).astype(int))
    np.testing.assert_array_equal(out.xs, np.floor((xs + 0.5) * width / 56).astype(int))


def test_scaled_point_lands_on_the_same_content() -> None:
    """Upscaling a class-map image: a mapped point reads its original class from the resized map."""
    _, ys, xs, classes, class_map = _image_and_points()
    import cv2

    big = cv2.resize(class_map.astype(np.uint8), (112, 80), interpolation=cv2.INTER_NEAREST)
    mapped_y, mapped_x = scale_points(ys, xs, (40, 56), (80, 112))
    np.testing.assert_array_equal(big[mapped_y, mapped_x], classes)


def test_downscaling_keeps_colliding_points() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    ys, xs, classes = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([1, 2, 3, 4])
    out = augment_sample(image, ys, xs, classes, None, _only(scale=[0.5, 0.5]))
    assert out.image.shape == (3, 4, 4)
    np.testing.assert_array_equal(out.ys, [0, 0, 0, 0])
    np.testing.assert_array_equal(out.xs, [0, 0, 0, 0])
    np.testing.assert_array_equal(out.classes, [1, 2, 3, 4])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [(0.5, 0.5), (1.0, 1.0), (1.5, 2.0)])
def test_crop_keeps_inside_points_once_and_counts_the_rest(seed: int, scale: tuple[float, float]) -> None:
    image, ys, xs, classes, _ = _image_and_points(seed=seed)
    # identify points by a unique "class" so that each can be tracked through the crop
    ids = np.arange(ys.size)
    cfg = _only(scale=list(scale), crop=[24, 32], flip=False)
    out = augment_sample(image, ys, xs, ids, np.random.default_rng(seed), cfg)
    assert out.image.shape == (3, 24, 32)
    assert np.unique(out.classes).size == out.classes.size  # no point kept twice
    assert out.n_outside == ys.size - out.classes.size  # every removed point is counted
    assert out.ys.min(initial=0) >= 0 and out.ys.max(initial=0) < 24
    assert out.xs.min(initial=0) >= 0 and out.xs.max(initial=0) < 32
    # kept points sit at a constant offset from their scaled position (one window)
    rng = np.random.default_rng(seed)
    factor = rng.uniform(*scale) if scale[1] > scale[0] else scale[0]
    new_size = (round(40 * factor), round(56 * factor))
    sy, sx = scale_points(ys[out.classes], xs[out.classes], (40, 56), new_size)
    assert np.unique(sy - out.ys).size <= 1 and np.unique(sx - out.xs).size <= 1
    # every point whose scaled position falls in that window was kept
    if out.classes.size:
        top, left = int((sy - out.ys)[0]), int((sx - out.xs)[0])
        all_y, all_x = scale_points(ys, xs, (40, 56), new_size)
        inside = (all_y >= top) & (all_y < top + 24) & (all_x >= left) & (all_x < left + 32)
        np.testing.assert_array_equal(np.sort(out.classes), ids[inside])


def test_crop_larger_than_image_pads_and_keeps_all_points() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    out = augment_sample(image, ys, xs, classes, np.random.default_rng(3), _only(crop=[64, 80]))
    assert out.image.shape == (3, 64, 80)
    assert out.n_outside == 0 and out.ys.size == ys.size
    # padding is the mean colour: exactly 0 after normalisation; 64*80 - 40*56 pixels of it
    padding = np.all(out.image == 0, axis=0)
    assert padding.sum() == 64 * 80 - 40 * 56
    assert not padding[out.ys, out.xs].any()


def test_flip_maps_x() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    flipped = None
    for seed in range(20):  # flip has probability 0.5: find a draw that flips
        out = augment_sample(image, ys, xs, classes, np.random.default_rng(seed), _only(flip=True))
        if not np.array_equal(out.xs, xs):
            flipped = out
            break
    assert flipped is not None
    np.testing.assert_array_equal(flipped.xs, 56 - 1 - xs)
    np.testing.assert_array_equal(flipped.ys, ys)
    np.testing.assert_array_equal(flipped.image, normalise_images(image[:, ::-1]))


def test_no_augmentation_changes_nothing() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    for cfg in (None, NO_AUGMENT):
        out = augment_sample(image, ys, xs, classes, None, cfg)
        np.testing.assert_array_equal(out.ys, ys)
        np.testing.assert_array_equal(out.xs, xs)
        np.testing.assert_array_equal(out.classes, classes)
        assert out.n_outside == 0
        np.testing.assert_array_equal(out.image, normalise_images(image))
        assert out.image.dtype == np.float32


def test_photometric_ops_touch_only_the_image() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    cfg = _only(color_jitter=0.5, grayscale=1.0, blur=1.0)
    out = augment_sample(image, ys, xs, classes, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(out.ys, ys)
    np.testing.assert_array_equal(out.xs, xs)
    assert not np.array_equal(out.image, normalise_images(image))


def test_full_augmentation_is_reproducible_and_never_loses_points_silently() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    cfg = {"scale": [0.5, 2.0], "crop": [32, 32]}
    a = augment_sample(image, ys, xs, classes, np.random.default_rng(7), cfg)
    b = augment_sample(image, ys, xs, classes, np.random.default_rng(7), cfg)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.ys, b.ys)
    assert a.ys.size + a.n_outside == ys.size


def test_out_size_gives_batchable_samples() -> None:
    image, ys, xs, classes, _ = _image_and_points()
    for seed in range(4):
        out = augment_sample(image, ys, xs, classes, np.random.default_rng(seed), {}, out_size=(40, 56))
        assert out.image.shape == (3, 40, 56)
        assert out.ys.size + out.n_outside == ys.size


def test_points_outside_the_image_are_rejected() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        augment_sample(image, np.array([4]), np.array([0]), np.array([0]), None, None)
