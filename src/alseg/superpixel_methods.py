"""Computing base superpixels: SEEDS on the image, or the connected components of the ground truth.

Torch-free; the only Python loops are over images. Every function returns *local* label maps: image i's
superpixels numbered ``0 .. S_i - 1``, contiguous, no gaps (:func:`relabel_contiguous`). Writing them to
the pool's superpixel file (global ids, offsets) is :mod:`alseg.superpixels`' job.

* SEEDS (:func:`seeds_superpixels`, :func:`map_seeds` for a pool on threads): OpenCV's
  ``createSuperpixelSEEDS`` with the official code's parameters (:class:`SeedsParams`) on an equalised
  HSV image (:func:`seeds_input`); the request for an average size is pure arithmetic
  (:func:`seeds_grid_count`, :func:`seeds_request_for_size`).
* Oracle superpixels (:func:`oracle_superpixels`): the 4-connected components of equal ground-truth value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from skimage.measure import label as connected_components

from alseg.superpixels import METHODS, write_superpixels

# --------------------------------------------------------------------------------------------------
# SEEDS
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedsParams:
    """Parameters of ``cv2.ximgproc.createSuperpixelSEEDS``; the defaults are the official code's.

    Attributes
    ----------
    num_levels : int
        Block levels (OpenCV lowers it by itself when the blocks would be smaller than one pixel).
    prior : int
        Shape smoothing prior (0-5).
    histogram_bins : int
        Bins per colour channel.
    double_step : bool
        Run each block level twice.
    iterations : int
        Pixel-level iterations of ``iterate``.
    """

    num_levels: int = 5
    prior: int = 3
    histogram_bins: int = 10
    double_step: bool = True
    iterations: int = 10


SEEDS_DEFAULTS = SeedsParams()

#: Peak memory of one SEEDS call with the default parameters, per image pixel: 5.0-5.2 kB measured from
#: 180 x 240 to 1024 x 2048 at 64 and 256 px per superpixel (OpenCV 5.1; 1.3 kB at 1024 px), rounded up
#: (docs/superpixels.md, "Base superpixels")
SEEDS_BYTES_PER_PIXEL = 5300


def seeds_threads(requested: int, height: int, width: int, available: int | None) -> int:
    """How many images SEEDS may run on at once in ``available`` bytes (each takes
    :data:`SEEDS_BYTES_PER_PIXEL` per pixel): at most ``requested``, at least 1; ``requested`` when the
    available memory is unknown (None)."""
    if available is None:
        return max(1, requested)
    return max(1, min(requested, available // (SEEDS_BYTES_PER_PIXEL * height * width)))


def seeds_input(image: np.ndarray) -> np.ndarray:
    """The image SEEDS sees: per-channel histogram-equalised RGB, converted to 8-bit HSV.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        HSV with hue on the full 0-255 range (``cv2.COLOR_RGB2HSV_FULL``), so that every channel
        spans SEEDS' histogram bins. (The official script passes float HSV with hue in degrees, which
        SEEDS' float path clips into its last bin: hue is then ignored. Its equalisation is one joint
        histogram over the three channels, ``skimage.exposure.equalize_hist``; ours is per channel.)
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    equalised = np.stack([cv2.equalizeHist(np.ascontiguousarray(image[..., c])) for c in range(3)], axis=-1)
    return cv2.cvtColor(equalised, cv2.COLOR_RGB2HSV_FULL)


@lru_cache(maxsize=256)
def seeds_grid_count(width: int, height: int, requested: int, num_levels: int) -> int:
    """Number of superpixels SEEDS makes for a request: its top-level block grid.

    Reproduces the integer arithmetic of OpenCV's ``SuperpixelSEEDSImpl::initialize`` (checked against
    ``getNumberOfSuperpixels`` for many sizes in the tests). SEEDS can only make grid counts, so a
    request of 675 at 360 x 480 gives 165.
    """
    requested = max(requested, 10)
    num_levels = max(num_levels, 2)
    rows = int(math.sqrt(requested * height // width))
    cols = rows * width // height
    if rows < 1 or cols < 1:
        return 0
    levels = num_levels + 1
    while True:
        levels -= 1
        if levels < 1:
            return 0
        block_w = width / cols / (1 << (levels - 1))
        block_h = height / rows / (1 << (levels - 1))
        if block_w >= 1 and block_h >= 1:
            break
    grid_w, grid_h = width // math.ceil(block_w), height // math.ceil(block_h)
    for _ in range(1, levels):
        grid_w //= 2
        grid_h //= 2
    return grid_w * grid_h


@lru_cache(maxsize=64)
def seeds_request_for_size(width: int, height: int, pixels_per_superpixel: float, num_levels: int) -> int:
    """The SEEDS request whose grid comes closest to ``height * width / pixels_per_superpixel`` superpixels.

    Ties go to the smallest request (deterministic). Searching is pure arithmetic (no SEEDS object).
    """
    if pixels_per_superpixel <= 0:
        raise ValueError(f"pixels_per_superpixel must be > 0, got {pixels_per_superpixel}")
    target = height * width / pixels_per_superpixel
    best_request, best_error = 10, math.inf
    for request in range(10, max(11, int(4 * target) + 10)):
        count = seeds_grid_count(width, height, request, num_levels)
        error = abs(count - target) if count > 0 else math.inf
        if error < best_error:
            best_request, best_error = request, error
    return best_request


def relabel_contiguous(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber a non-negative label map to ``0 .. K-1`` (ascending order of the old ids kept), in one pass.

    Parameters
    ----------
    labels : ndarray of int, any shape
        Non-negative ids, possibly with gaps.

    Returns
    -------
    relabelled : ndarray of int32, same shape
    count : int
        K, the number of distinct ids.
    """
    flat = np.asarray(labels).reshape(-1)
    if flat.size == 0:
        return np.zeros(labels.shape, dtype=np.int32), 0
    if flat.min() < 0:
        raise ValueError("labels must be non-negative")
    present = np.bincount(flat) > 0
    lookup = (np.cumsum(present) - 1).astype(np.int32)
    return lookup[flat].reshape(labels.shape), int(present.sum())


def seeds_superpixels(
    image: np.ndarray,
    pixels_per_superpixel: float = 256,
    params: SeedsParams = SEEDS_DEFAULTS,
) -> tuple[np.ndarray, int]:
    """SEEDS superpixels of one image (deterministic).

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB.
    pixels_per_superpixel : float
        Average superpixel size wanted; the request is set by :func:`seeds_request_for_size`.
    params : SeedsParams

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        Contiguous local ids ``0 .. S-1``.
    count : int
        S.
    """
    hsv = seeds_input(image)
    height, width = hsv.shape[:2]
    request = seeds_request_for_size(width, height, float(pixels_per_superpixel), params.num_levels)
    seeds = cv2.ximgproc.createSuperpixelSEEDS(
        width, height, 3, request, params.num_levels, params.prior, params.histogram_bins, params.double_step
    )
    seeds.iterate(hsv, params.iterations)
    return relabel_contiguous(seeds.getLabels())


def map_seeds(
    images: np.ndarray,
    pixels_per_superpixel: float = 256,
    params: SeedsParams = SEEDS_DEFAULTS,
    workers: int = 1,
) -> Iterator[tuple[np.ndarray, int]]:
    """:func:`seeds_superpixels` of every image, in order, on ``workers`` threads (OpenCV releases the GIL).

    Parameters
    ----------
    images : ndarray of uint8, shape (N, H, W, 3), or :class:`alseg.data.ImagesOnDisk`
        Read one image at a time.
    pixels_per_superpixel : float
    params : SeedsParams
    workers : int
        Threads; the result does not depend on it. At most ``2 * workers`` images are in flight.

    Yields
    ------
    (labels, count)
        int32 (H, W) contiguous local ids and their number, image by image.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for i in range(len(images)):
            yield seeds_superpixels(images[i], pixels_per_superpixel, params)
        return
    with ThreadPoolExecutor(workers) as pool:
        window = 2 * workers
        for start in range(0, len(images), window):
            batch = [images[i] for i in range(start, min(start + window, len(images)))]
            yield from pool.map(lambda im: seeds_superpixels(im, pixels_per_superpixel, params), batch)


def oracle_superpixels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Oracle superpixels: the 4-connected components of equal ground-truth value.

    Ignore (void) pixels are not special: each 4-connected void area is a superpixel of its own,
    whose dominant-label query is answered ``skip`` (every pixel belongs to exactly one superpixel,
    and no void pixel dilutes a class region). 4-connectivity matches the adjacency of
    :func:`alseg.acquire.superpixel_merge.superpixel_edges`.

    Parameters
    ----------
    mask : ndarray of int, shape (H, W)
        Class id per pixel, ignore value included.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        Contiguous local ids, numbered in raster order of each component's first pixel.
    count : int
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a mask of shape (H, W), got {mask.shape}")
    components = connected_components(mask.astype(np.int64), background=-1, connectivity=1)
    return (components - 1).astype(np.int32), int(components.max())


def compute_superpixels(
    path: str | os.PathLike[str],
    images: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    method: str = "seeds",
    pixels_per_superpixel: float = 256,
    params: SeedsParams = SEEDS_DEFAULTS,
    attrs: dict[str, Any] | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Compute the base superpixels of a pool and write them to ``path``.

    Parameters
    ----------
    path : path
    images : ndarray of uint8, shape (N, H, W, 3), or :class:`alseg.data.ImagesOnDisk`, optional
        RGB pool images (needed for ``seeds``), read one at a time.
    masks : ndarray of int, shape (N, H, W), optional
        Ground truth (needed for ``oracle``).
    method : {"seeds", "oracle"}
    pixels_per_superpixel : float
        SEEDS average size (ignored by ``oracle``).
    params : SeedsParams
    attrs : dict, optional
        Extra attributes to store.
    workers : int
        SEEDS threads (the maps do not depend on it).

    Returns
    -------
    offsets : ndarray of int64, shape (N + 1,)
    """
    extra = dict(attrs or {})
    if method == "seeds":
        if images is None:
            raise ValueError("SEEDS superpixels need the images")
        n, height, width = images.shape[:3]
        request = seeds_request_for_size(width, height, float(pixels_per_superpixel), params.num_levels)
        grid = seeds_grid_count(width, height, request, params.num_levels)
        extra.update(pixels_per_superpixel=pixels_per_superpixel, seeds=asdict(params), seeds_request=request,
                     seeds_grid=grid, input="per-channel equalizeHist RGB -> HSV_FULL uint8")
        maps: Iterator[tuple[np.ndarray, int]] = map_seeds(images, pixels_per_superpixel, params, workers)
        bound: int | None = grid
    elif method == "oracle":
        if masks is None:
            raise ValueError("oracle superpixels need the ground-truth masks")
        n, height, width = masks.shape
        extra.update(connectivity=4, ignore="own components")
        maps = (oracle_superpixels(masks[i]) for i in range(n))
        bound = None
    else:
        raise ValueError(f"unknown superpixel method {method!r}; expected one of {METHODS}")
    return write_superpixels(path, maps, n, height, width, method, max_per_image=bound, attrs=extra)
