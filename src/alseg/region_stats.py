"""Region statistics in one pass: pixel counts, sums, means and class counts of per-pixel arrays.

A region map gives every pixel a region id ``0 .. num_regions - 1`` (or a negative value for a pixel in
no region): base superpixels by global id, merged regions or queries. Every statistic is one
``np.bincount`` over the pixels, never one scan per region. Torch-free.
"""

from __future__ import annotations

import numpy as np


def _region_index(region: np.ndarray, num_regions: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened region ids and the mask of pixels that belong to a region (None: all do)."""
    flat = np.asarray(region).reshape(-1)
    if not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"region ids must be integers, got {flat.dtype}")
    if flat.size and flat.max() >= num_regions:
        raise ValueError(f"region id {int(flat.max())} out of range for num_regions={num_regions}")
    if flat.size and flat.min() < 0:
        inside = flat >= 0
        return flat[inside], inside
    return flat, None


def region_pixel_counts(region: np.ndarray, num_regions: int) -> np.ndarray:
    """Pixels per region.

    Parameters
    ----------
    region : ndarray of int, any shape
        Region id per pixel in ``0 .. num_regions - 1``, or negative for a pixel in no region.
    num_regions : int

    Returns
    -------
    ndarray of int64, shape (num_regions,)
    """
    ids, _ = _region_index(region, num_regions)
    return np.bincount(ids, minlength=num_regions).astype(np.int64)


def region_sums(region: np.ndarray, values: np.ndarray, num_regions: int) -> np.ndarray:
    """Sum of a per-pixel array over each region.

    Parameters
    ----------
    region : ndarray of int, any shape
        As in :func:`region_pixel_counts`.
    values : ndarray of float, shape ``region.shape`` or ``region.shape + (K,)``
        Scalar or K-channel (channels last) values per pixel.
    num_regions : int

    Returns
    -------
    ndarray of float64, shape (num_regions,) or (num_regions, K)
    """
    values = np.asarray(values)
    region = np.asarray(region)
    if values.shape[: region.ndim] != region.shape or values.ndim > region.ndim + 1:
        raise ValueError(f"values of shape {values.shape} do not match regions of shape {region.shape}")
    ids, inside = _region_index(region, num_regions)
    flat = values.reshape(region.size, -1)
    if inside is not None:
        flat = flat[inside]
    sums = np.stack([np.bincount(ids, weights=flat[:, k], minlength=num_regions) for k in range(flat.shape[1])],
                    axis=1)
    return sums[:, 0] if values.ndim == region.ndim else sums


def region_means(region: np.ndarray, values: np.ndarray, num_regions: int) -> np.ndarray:
    """Mean of a per-pixel array over each region (NaN for an empty region).

    Same parameters as :func:`region_sums`; returns float64 (num_regions,) or (num_regions, K).
    """
    sums = region_sums(region, values, num_regions)
    counts = region_pixel_counts(region, num_regions).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / (counts[:, None] if sums.ndim == 2 else counts)


def region_class_counts(region: np.ndarray, classes: np.ndarray, num_regions: int, num_classes: int) -> np.ndarray:
    """Pixels of each class in each region (one bincount over ``region * C + class``).

    Parameters
    ----------
    region : ndarray of int, any shape
        As in :func:`region_pixel_counts`.
    classes : ndarray of int, same shape
        Class per pixel; values outside ``0 .. num_classes - 1`` (the ignore value) are not counted.
    num_regions, num_classes : int

    Returns
    -------
    ndarray of int64, shape (num_regions, num_classes)
    """
    classes = np.asarray(classes)
    if classes.shape != np.shape(region):
        raise ValueError(f"classes of shape {classes.shape} do not match regions of shape {np.shape(region)}")
    ids, inside = _region_index(region, num_regions)
    flat_classes = classes.reshape(-1).astype(np.int64)
    if inside is not None:
        flat_classes = flat_classes[inside]
    valid = (flat_classes >= 0) & (flat_classes < num_classes)
    keys = ids[valid].astype(np.int64) * num_classes + flat_classes[valid]
    return np.bincount(keys, minlength=num_regions * num_classes).reshape(num_regions, num_classes).astype(np.int64)
