"""Where the region of a query comes from, and how it is drawn.

A query of a unit with regions (superpixel queries) names its region by ``(image_index, superpixel)``:
the ``superpixel`` column of ``queries.csv`` is the region's id. The annotation page and the Label
Studio export get the region's pixels from a :class:`RegionSource`: any callable
``source(image_index, region) -> bool mask (H, W)``. Two are built in:

- :func:`regions_from_label_maps`: label maps in memory, ``maps[i]`` holding the region id of every
  pixel of pool image ``i``;
- :func:`regions_from_superpixel_file`: a base superpixel file (``superpixels.h5``: local ``/labels``
  per image and ``/offsets``), the query's ``superpixel`` being a *global* base id, or, given
  ``members``, a merged region made of several base superpixels;
- :func:`regions_from_file`: either of the above from a file (HDF5 or ``.npy``), read one image at a
  time.

Anything else (for example merged regions computed on the fly) is a callable with that signature.
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class RegionError(ValueError):
    """A region cannot be drawn: no source, a missing file, or a region with no pixel."""


class RegionSource(Protocol):
    """``source(image_index, region)``: the pixels of region ``region`` of pool image ``image_index``."""

    def __call__(self, image_index: int, region: int) -> np.ndarray:
        """Return a boolean mask of shape (H, W), True inside the region."""
        ...


def regions_from_label_maps(label_maps: np.ndarray) -> RegionSource:
    """A region source over label maps in memory.

    Parameters
    ----------
    label_maps : ndarray of int, shape (N, H, W)
        Region id of every pixel of every pool image.
    """
    maps = np.asarray(label_maps)
    if maps.ndim != 3:
        raise RegionError(f"region label maps must be (N, H, W), got shape {maps.shape}")

    def source(image_index: int, region: int) -> np.ndarray:
        if not 0 <= image_index < len(maps):
            raise RegionError(f"no region map for pool image {image_index} ({len(maps)} maps)")
        return maps[image_index] == region

    return source


def regions_from_file(path: str | os.PathLike[str], key: str | None = None) -> RegionSource:
    """A region source over a file, read one image at a time (cached).

    Parameters
    ----------
    path : str or PathLike
        A ``.npy`` file of (N, H, W) region ids; or an HDF5 file holding either such a dataset at
        ``key`` (default ``superpixels``), or, when ``key`` is not given and the file has ``/labels``
        and ``/offsets``, base superpixels (see :func:`regions_from_superpixel_file`).
    key : str, optional
        The dataset of region ids inside an HDF5 file.
    """
    path = Path(path)
    if not path.is_file():
        raise RegionError(f"{path}: region file not found")
    if path.suffix == ".npy":
        return regions_from_label_maps(np.load(path, mmap_mode="r"))
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if key is None and "labels" in h5 and "offsets" in h5:
                return regions_from_superpixel_file(path)
            key = key or "superpixels"
            if key not in h5 or h5[key].ndim != 3:
                raise RegionError(f"{path}: no (N, H, W) dataset {key!r} of region ids")
            count = int(h5[key].shape[0])
    except OSError as err:
        raise RegionError(f"{path}: cannot read the region file ({err})") from err
    label_map = _cached_maps(path, key, count)
    return lambda image_index, region: label_map(int(image_index)) == region


def regions_from_superpixel_file(
    path: str | os.PathLike[str], members: Mapping[int, Sequence[int]] | None = None
) -> RegionSource:
    """A region source over a base superpixel file (``/labels`` local ids, ``/offsets``).

    Parameters
    ----------
    path : str or PathLike
        HDF5 with ``/labels`` (N, H, W), image ``i``'s superpixels numbered ``0 .. S_i - 1``, and
        ``/offsets`` (N + 1,): base superpixel ``k`` of image ``i`` has the global id
        ``offsets[i] + k``.
    members : mapping of int to sequence of int, optional
        The global base ids that make up each region (merged regions: the query's part of it).
        Without it a region is the one base superpixel whose global id it is.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            offsets = np.asarray(h5["offsets"][()], dtype=np.int64)
            count = int(h5["labels"].shape[0])
    except (OSError, KeyError) as err:
        raise RegionError(f"{path}: not a superpixel file with /labels and /offsets ({err})") from err
    label_map = _cached_maps(path, "labels", count)

    def source(image_index: int, region: int) -> np.ndarray:
        ids = label_map(int(image_index)).astype(np.int64) + offsets[image_index]
        if members is None:
            return ids == region
        return np.isin(ids, np.asarray(members.get(int(region), ()), dtype=np.int64))

    return source


def _cached_maps(path: Path, key: str, count: int) -> Callable[[int], np.ndarray]:
    """Read ``h5[key][i]`` on demand, keeping the last few images."""
    import h5py

    @functools.lru_cache(maxsize=16)
    def label_map(image_index: int) -> np.ndarray:
        if not 0 <= image_index < count:
            raise RegionError(f"{path}: no region map for pool image {image_index} ({count} maps)")
        with h5py.File(path, "r") as h5:
            return np.asarray(h5[key][image_index])

    return label_map


def region_mask(
    source: RegionSource | None, image_index: int, region: int, shape: tuple[int, int]
) -> np.ndarray:
    """The checked mask of one region: boolean, of the image's ``shape``, with at least one pixel.

    Raises
    ------
    RegionError
        If there is no source, or the mask has another shape or no pixel.
    """
    if source is None:
        raise RegionError(
            "superpixel queries need the region of each query: pass the superpixel label maps of the "
            "pool (--regions FILE)"
        )
    mask = np.asarray(source(int(image_index), int(region))).astype(bool, copy=False)
    if mask.shape != tuple(shape):
        raise RegionError(
            f"region {region} of pool image {image_index} is {mask.shape}, the image is {tuple(shape)}"
        )
    if not mask.any():
        raise RegionError(f"region {region} of pool image {image_index} has no pixel")
    return mask


def encode_mask(mask: np.ndarray) -> dict[str, object]:
    """A compact JSON form of a region mask: its bounding box and the bits inside it.

    Returns
    -------
    dict
        ``bbox``: ``[y0, x0, height, width]``; ``bits``: base64 of ``numpy.packbits`` of the box,
        row-major, most significant bit first; ``pixels``: the number of pixels in the region.
    """
    ys, xs = np.nonzero(mask)
    y0, x0 = int(ys.min()), int(xs.min())
    crop = mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1]
    return {
        "bbox": [y0, x0, int(crop.shape[0]), int(crop.shape[1])],
        "bits": base64.b64encode(np.packbits(crop.ravel()).tobytes()).decode("ascii"),
        "pixels": int(ys.size),
    }


def outline_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """The outer outline of each connected part of a region, as polygons in image coordinates.

    Returns
    -------
    list of ndarray of float, shape (K, 2)
        ``(x, y)`` vertices in pixel units (the pixel at row r, column c spans ``[c, c+1) x [r, r+1)``),
        tracing each part a quarter pixel inside its border; every polygon has at least 4 vertices,
        also for a part of one pixel.
    """
    import cv2

    doubled = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(c.reshape(-1, 2).astype(np.float64) + 0.5) / 2 for c in contours]
