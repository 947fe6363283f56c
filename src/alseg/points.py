"""Labelled pixels over the pool: the training labels of every query unit.

:class:`PointLabels` holds the labelled points (image, row, column, class), sparse or, for full
supervision, every non-ignore pixel of dense masks (:meth:`PointLabels.from_masks`); ``_PointsByImage``
groups them by image for batch preparation (:mod:`alseg.batches`). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @classmethod
    def from_masks(cls, masks: np.ndarray, ignore_index: int | None) -> PointLabels:
        """Every non-ignore pixel of dense masks as a point (full supervision).

        Parameters
        ----------
        masks : ndarray of int, shape (N, H, W)
        ignore_index : int or None

        Returns
        -------
        PointLabels
            Points sorted by (image, y, x). One ``nonzero`` per image keeps the int64 temporaries at one
            image's size (CamVid train: 63M points, about 0.9 GB as int32/int16).
        """
        parts: list[tuple[np.ndarray, ...]] = []
        for index, mask in enumerate(masks):
            labelled = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
            ys, xs = np.nonzero(labelled)
            parts.append((np.full(ys.size, index, np.int32), ys.astype(np.int32), xs.astype(np.int32),
                          mask[ys, xs].astype(np.int16)))
        if not parts:
            return cls(*(np.zeros(0, dtype) for dtype in (np.int32, np.int32, np.int32, np.int16)))
        return cls(*(np.concatenate(column) for column in zip(*parts)))

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
class _PointsByImage:
    """Points grouped by image: image i's points are ``y[start[i]:start[i+1]]`` etc. (views, no copies)."""

    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray
    start: np.ndarray

    @classmethod
    def group(cls, labels: PointLabels, num_images: int) -> _PointsByImage:
        order = np.argsort(labels.image, kind="stable")
        start = np.searchsorted(labels.image[order], np.arange(num_images + 1))
        return cls(labels.y[order], labels.x[order], labels.cls[order], start)

    def of(self, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = self.start[image], self.start[image + 1]
        return self.y[lo:hi], self.x[lo:hi], self.cls[lo:hi]
