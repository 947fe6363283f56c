"""Labelled pixels over the pool: the training labels of every query unit.

:class:`PointLabels` holds labelled points (image, row, column, class) one by one; :class:`DenseLabels`
holds whole images labelled by their masks (full supervision, a dense initial set): every non-ignore pixel
is a point, made from the mask when a batch needs it, so a pool's masks take 1 byte per pixel where points
would take 14 (Cityscapes at 512 x 1024: 1.6 GB, not 22 GB). :class:`TrainingLabels` joins the units'
parts in unit order; its points, their number, the images they lie in, each image's points
(:meth:`TrainingLabels.by_image`, for :mod:`alseg.batches`) and the columns a training digest reads
(:meth:`TrainingLabels.column`) are those of the concatenated points, which are never built. Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

#: The columns of labelled points: name in a training digest -> attribute and dtype
POINT_COLUMNS: dict[str, tuple[str, type]] = {"image": ("image", np.int32), "y": ("y", np.int32),
                                              "x": ("x", np.int32), "class": ("cls", np.int16)}


@dataclass
class PointLabels:
    """Labelled pixels over the pool (the train split).

    Attributes
    ----------
    image : ndarray, int32, shape (P,)
        Pool image index of each point.
    y, x : ndarray, int32, shape (P,)
        Row and column.
    cls : ndarray, int16, shape (P,)
        Class id (never the ignore value).
    """

    image: np.ndarray
    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.int32).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.int32).reshape(-1)
        self.x = np.asarray(self.x, dtype=np.int32).reshape(-1)
        self.cls = np.asarray(self.cls, dtype=np.int16).reshape(-1)
        sizes = {a.size for a in (self.image, self.y, self.x, self.cls)}
        if len(sizes) != 1:
            raise ValueError(
                f"PointLabels arrays differ in length: image {self.image.size}, y {self.y.size}, "
                f"x {self.x.size}, cls {self.cls.size}"
            )

    def __len__(self) -> int:
        return int(self.image.size)

    def validate(self, num_images: int, height: int, width: int, num_classes: int) -> None:
        """Raise ValueError if a point lies outside the pool, the image, or the classes."""
        if not len(self):
            return
        problems = []
        if self.image.min() < 0 or self.image.max() >= num_images:
            problems.append(f"image index outside [0, {num_images})")
        if self.y.min() < 0 or self.y.max() >= height or self.x.min() < 0 or self.x.max() >= width:
            problems.append(f"pixel outside the {height}x{width} images")
        if self.cls.min() < 0 or self.cls.max() >= num_classes:
            problems.append(f"class outside [0, {num_classes}) (ignore-value points must not be labels)")
        if problems:
            raise ValueError("invalid labelled points: " + "; ".join(problems))


@dataclass(frozen=True)
class _SparseByImage:
    """Sparse points grouped by image: image i's points are ``y[start[i]:start[i+1]]`` etc. (views, no copies)."""

    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray
    start: np.ndarray

    @classmethod
    def group(cls, labels: PointLabels, num_images: int) -> _SparseByImage:
        order = np.argsort(labels.image, kind="stable")
        start = np.searchsorted(labels.image[order], np.arange(num_images + 1))
        return cls(labels.y[order], labels.x[order], labels.cls[order], start)

    def of(self, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = self.start[image], self.start[image + 1]
        return self.y[lo:hi], self.x[lo:hi], self.cls[lo:hi]


def labelled_counts(masks: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Pixels with a class in each mask (ignore excluded), shape (N,), int64, from masks (N, H, W)."""
    masks = np.asarray(masks)
    if ignore_index is None:
        return np.full(masks.shape[0], masks.shape[1] * masks.shape[2], dtype=np.int64)
    return np.array([np.count_nonzero(mask != ignore_index) for mask in masks], dtype=np.int64)


@dataclass(frozen=True)
class DenseLabels:
    """Whole images labelled by their masks: every non-ignore pixel of ``masks[k]`` is a point of pool image
    ``images[k]``, in row-major order (the order :class:`PointLabels` of the same pixels would list them).

    Attributes
    ----------
    images : ndarray, int32, shape (D,)
        Pool indices of the labelled images, distinct, in the order of their points.
    masks : ndarray of int, shape (D, H, W)
        Their masks (the ignore value marks unlabelled pixels).
    ignore_index : int or None
    """

    images: np.ndarray
    masks: np.ndarray
    ignore_index: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", np.asarray(self.images, dtype=np.int32).reshape(-1))
        if self.masks.ndim != 3 or len(self.masks) != self.images.size:
            raise ValueError(f"DenseLabels: {self.images.size} images need masks of shape (D, H, W) with D = "
                             f"{self.images.size}, got {self.masks.shape}")

    @cached_property
    def counts(self) -> np.ndarray:
        """Points of each image, int64 (D,)."""
        return labelled_counts(self.masks, self.ignore_index)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def row(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points of ``images[k]``: y, x (int32) and class (int16), shape (counts[k],) each."""
        flat = self.masks[k].reshape(-1)
        index = self._labelled(flat)
        return *self._rows_columns(index), flat[index].astype(np.int16)

    def column(self, k: int, attribute: str) -> np.ndarray:
        """One of :meth:`row`'s arrays (``y``, ``x`` or ``cls``), computing only that one."""
        flat = self.masks[k].reshape(-1)
        if attribute == "cls":
            return (flat if self.ignore_index is None else flat[flat != self.ignore_index]).astype(np.int16)
        return self._rows_columns(self._labelled(flat))[attribute == "x"]

    def _labelled(self, flat: np.ndarray) -> np.ndarray:
        """Row-major indices of the labelled pixels of a flattened mask, int32 (one flat ``nonzero`` is
        several times faster than a 2-D one)."""
        if self.ignore_index is None:
            return np.arange(flat.size, dtype=np.int32)
        return np.flatnonzero(flat != self.ignore_index).astype(np.int32)

    def _rows_columns(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """y and x of row-major indices (int32)."""
        ys = index // self.masks.shape[2]
        return ys, index - ys * self.masks.shape[2]

    def points(self) -> PointLabels:
        """The points one by one (14 bytes each: for small sets and tests)."""
        rows = [self.row(k) for k in range(self.images.size)] or [_no_points()]
        ys, xs, classes = (np.concatenate(column) for column in zip(*rows))
        return PointLabels(np.repeat(self.images, self.counts), ys, xs, classes)

    def validate(self, num_images: int, height: int, width: int, num_classes: int) -> None:
        """Raise ValueError if an image lies outside the pool, a mask is not (height, width) or has a class
        outside [0, num_classes) that is not the ignore value."""
        problems = []
        if self.images.size and (self.images.min() < 0 or self.images.max() >= num_images):
            problems.append(f"image index outside [0, {num_images})")
        if self.masks.shape[1:] != (height, width):
            problems.append(f"masks of {self.masks.shape[1]}x{self.masks.shape[2]} for {height}x{width} images")
        for k, mask in enumerate(self.masks):
            classes = mask[mask != self.ignore_index] if self.ignore_index is not None else mask
            if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
                problems.append(f"image {int(self.images[k])}'s mask has a class outside [0, {num_classes})")
                break
        if problems:
            raise ValueError("invalid dense labels: " + "; ".join(problems))


@dataclass(frozen=True)
class _DenseByImage:
    """A pool image's points, made from its mask when asked (``of``); no points for other images."""

    labels: DenseLabels
    row_of: np.ndarray  # int64 (N,): the row of each pool image in ``labels``, -1 if it has none

    def of(self, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = int(self.row_of[image])
        return self.labels.row(k) if k >= 0 else _no_points()


def _no_points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int16)


@dataclass(frozen=True)
class PointsByImage:
    """A pool image's points from every part, in part order (those of the parts' concatenation)."""

    parts: tuple[_SparseByImage | _DenseByImage, ...]

    def of(self, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = [part.of(image) for part in self.parts]
        if len(found) < 2:
            return found[0] if found else _no_points()
        return tuple(np.concatenate([f[i] for f in found]) for i in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainingLabels:
    """The labelled pixels a model trains on: the units' parts, whose points are listed in part order."""

    parts: tuple[PointLabels | DenseLabels, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def images(self) -> np.ndarray:
        """The pool images with a point, sorted, int64."""
        return np.unique(np.concatenate([np.unique(part.image) if isinstance(part, PointLabels) else
                                         part.images[part.counts > 0] for part in self.parts]
                                        or [np.zeros(0, np.int32)])).astype(np.int64)

    def validate(self, num_images: int, height: int, width: int, num_classes: int) -> None:
        """Raise ValueError if a point lies outside the pool, the image, or the classes."""
        for part in self.parts:
            part.validate(num_images, height, width, num_classes)

    def by_image(self, num_images: int) -> PointsByImage:
        """Each pool image's points (``of(image)``: y, x, class), grouped once; dense parts stay masks."""
        groups: list[_SparseByImage | _DenseByImage] = []
        for part in self.parts:
            if isinstance(part, PointLabels):
                groups.append(_SparseByImage.group(part, num_images))
            else:
                row_of = np.full(num_images, -1, dtype=np.int64)
                row_of[part.images] = np.arange(part.images.size)
                groups.append(_DenseByImage(part, row_of))
        return PointsByImage(tuple(groups))

    def column(self, name: str) -> PointColumn:
        """The column ``name`` of :data:`POINT_COLUMNS` of the concatenated points, made a piece at a time."""
        return PointColumn(self, name)


@dataclass(frozen=True)
class PointColumn:
    """One column (image, y, x or class) of a :class:`TrainingLabels`' concatenated points, as consecutive
    pieces (:meth:`pieces`): a dense image's piece is made from its mask, so the column is never held whole."""

    labels: TrainingLabels
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(POINT_COLUMNS[self.name][1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self.labels),)

    def __len__(self) -> int:
        return len(self.labels)

    def pieces(self) -> Iterator[np.ndarray]:
        attribute, dtype = POINT_COLUMNS[self.name]
        for part in self.labels.parts:
            if isinstance(part, PointLabels):
                yield getattr(part, attribute)
                continue
            for k in range(part.images.size):
                if attribute == "image":
                    yield np.full(int(part.counts[k]), part.images[k], dtype=dtype)
                else:
                    yield part.column(k, attribute)
