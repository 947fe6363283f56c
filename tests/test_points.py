"""Labelled pixels for training: dense labels list exactly the points of their masks, and a training's
joined labels give each image the points of the parts' concatenation, with the same digest columns."""

from __future__ import annotations

import numpy as np
import pytest

from alseg.points import POINT_COLUMNS, DenseLabels, PointLabels, TrainingLabels, labelled_counts

VOID = 11


def _masks(count: int, seed: int, shape: tuple[int, int] = (6, 7)) -> np.ndarray:
    masks = np.random.default_rng(seed).integers(0, 12, (count, *shape), dtype=np.uint8)
    masks[0, 0] = VOID  # a void row
    return masks


def _concatenated(labels: TrainingLabels) -> PointLabels:
    """The parts' points one by one, joined in part order (what training used to build)."""
    parts = [p if isinstance(p, PointLabels) else p.points() for p in labels.parts]
    return PointLabels(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("image", "y", "x", "cls")))


def test_dense_labels_are_every_non_void_pixel_in_row_major_order() -> None:
    masks = _masks(3, seed=0)
    dense = DenseLabels(np.array([4, 0, 2]), masks, VOID)
    points = dense.points()
    assert len(dense) == len(points) == int((masks != VOID).sum())
    rows = np.repeat(np.arange(3), dense.counts)
    np.testing.assert_array_equal(points.image, np.array([4, 0, 2])[rows])
    np.testing.assert_array_equal(masks[rows, points.y, points.x], points.cls)
    for k in range(3):  # row-major within an image: sorted by y * width + x
        keys = (points.y * 7 + points.x)[rows == k]
        assert np.all(np.diff(keys) > 0)
    assert points.y.dtype == np.int32 and points.cls.dtype == np.int16


def test_dense_labels_without_an_ignore_value_take_every_pixel() -> None:
    masks = _masks(2, seed=1)
    dense = DenseLabels(np.array([0, 1]), masks, None)
    assert len(dense) == masks.size
    ys, xs, cls = dense.row(1)
    np.testing.assert_array_equal(cls, masks[1].ravel())
    np.testing.assert_array_equal(ys * 7 + xs, np.arange(42))
    np.testing.assert_array_equal(labelled_counts(masks, None), [42, 42])


def test_each_image_gets_the_points_of_the_parts_concatenation() -> None:
    masks = _masks(5, seed=2)
    dense = DenseLabels(np.array([3, 1]), masks[[3, 1]], VOID)
    sparse = PointLabels([1, 4, 1, 0], [0, 2, 5, 1], [3, 3, 0, 6], [2, 7, 1, 0])
    labels = TrainingLabels((dense, sparse))
    whole = _concatenated(labels)
    groups = labels.by_image(5)
    for image in range(5):
        chosen = whole.image == image
        got = groups.of(image)
        for column, expected in zip(got, (whole.y[chosen], whole.x[chosen], whole.cls[chosen])):
            np.testing.assert_array_equal(column, expected)
    np.testing.assert_array_equal(labels.images(), [0, 1, 3, 4])
    assert len(labels) == len(whole)


def test_the_columns_are_the_concatenated_points_in_pieces() -> None:
    masks = _masks(3, seed=3)
    labels = TrainingLabels((PointLabels([2], [1], [1], [5]), DenseLabels(np.array([0, 2]), masks[[0, 2]], VOID)))
    whole = _concatenated(labels)
    for name, (attribute, dtype) in POINT_COLUMNS.items():
        column = labels.column(name)
        assert column.dtype == dtype and column.shape == (len(whole),) and len(column) == len(whole)
        pieces = list(column.pieces())
        assert len(pieces) == 3 and all(piece.dtype == dtype for piece in pieces)
        np.testing.assert_array_equal(np.concatenate(pieces), getattr(whole, attribute))


def test_an_image_with_only_void_pixels_has_no_point() -> None:
    masks = _masks(2, seed=4)
    masks[1] = VOID
    labels = TrainingLabels((DenseLabels(np.array([0, 1]), masks, VOID),))
    np.testing.assert_array_equal(labels.images(), [0])
    assert [c.size for c in labels.by_image(2).of(1)] == [0, 0, 0]


@pytest.mark.parametrize("images, masks, problem", [
    (np.array([0, 5]), _masks(2, seed=5), "image index outside"),
    (np.array([0, 1]), _masks(2, seed=5, shape=(6, 8)), "masks of 6x8 for 6x7 images"),
    (np.array([0, 1]), np.full((2, 6, 7), 40, np.uint8), "class outside"),
])
def test_invalid_dense_labels_are_refused(images, masks, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        TrainingLabels((DenseLabels(images, masks, VOID),)).validate(3, 6, 7, 11)


def test_dense_labels_need_one_mask_per_image() -> None:
    with pytest.raises(ValueError, match="3 images need masks"):
        DenseLabels(np.array([0, 1, 2]), _masks(2, seed=6), VOID)


def test_labels_without_parts_have_no_points() -> None:
    labels = TrainingLabels(())  # a training on image-level answers alone
    assert len(labels) == 0 and labels.images().size == 0
    assert [c.size for c in labels.by_image(3).of(1)] == [0, 0, 0]
    assert all(labels.column(name).shape == (0,) and not list(labels.column(name).pieces()) for name in POINT_COLUMNS)
