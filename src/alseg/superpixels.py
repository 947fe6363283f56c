"""Base superpixels (SEEDS, or oracle connected components), their file, and one-pass region statistics.

Torch-free. Every function works on numpy arrays; the only Python loops are over images.

Label maps are *local*: image i's superpixels are numbered ``0 .. S_i - 1`` (contiguous, no gaps).
A *global* superpixel id numbers every superpixel of the pool: ``offsets[i] + local id``, where
``offsets`` (int64, shape (N + 1,)) is the running sum of ``S_i`` with ``offsets[0] = 0`` and
``offsets[N] = S``. Global ids of one image are contiguous, so per-superpixel arrays of a batch of
images concatenate in pool order.

The file (``superpixels.h5``; the table is in ``docs/superpixels.md``):

==================  ======  ===========  ================================================================
path                dtype   shape        meaning
==================  ======  ===========  ================================================================
``/labels``         uint16  (N, H, W)    local superpixel id per pixel, ``0 .. S_i - 1``; one chunk per
                    /int32               image, gzip + shuffle (uint16 when every ``S_i <= 65536``)
``/offsets``        int64   (N + 1,)     global id of image i's superpixel k is ``offsets[i] + k``
``/pixel_count``    int32   (S,)         pixels of each superpixel, by global id
attrs                                    ``format`` = ``alseg-superpixels``, ``version``, ``method``
                                         (``seeds`` or ``oracle``), ``num_images``, ``height``,
                                         ``width``, ``num_superpixels`` (S), the method's parameters
                                         (JSON) and the caller's attributes
==================  ======  ===========  ================================================================
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
from skimage.measure import label as connected_components

from alseg.atomic import atomic_path

FILE_FORMAT = "alseg-superpixels"
FILE_VERSION = 1
METHODS = ("seeds", "oracle")
#: gzip level 4 with byte shuffle. Measured on 20 CamVid train SEEDS maps (360 x 480, 660 superpixels,
#: uint16 346 kB raw): 24.2 kB per image written at 1.7 ms; gzip-1+shuffle 32.7 kB at 1.2 ms, gzip-6 22.6 kB
#: at 3.0 ms, gzip-9 22.3 kB at 6.6-8.0 ms, lzf 54-63 kB at 0.7 ms.
LABEL_COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_UINT16_LIMIT = 1 << 16


class SuperpixelFileError(ValueError):
    """A missing, corrupt, incomplete or mismatched superpixel file (the message names the file)."""


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
    images : ndarray of uint8, shape (N, H, W, 3)
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
        for image in images:
            yield seeds_superpixels(image, pixels_per_superpixel, params)
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
    :func:`alseg.acquire.superpixel.superpixel_edges`.

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


# --------------------------------------------------------------------------------------------------
# Maps of a pool and their file
# --------------------------------------------------------------------------------------------------


@dataclass
class SuperpixelMaps:
    """Local label maps of some images of a pool, and the pool's global id offsets.

    Attributes
    ----------
    labels : ndarray of uint16 or int32, shape (n, H, W)
        Local ids of the images ``images``.
    offsets : ndarray of int64, shape (N + 1,)
        Of the whole pool (not only the images read).
    images : ndarray of int64, shape (n,)
        Pool indices of the maps in ``labels`` (all images: ``arange(N)``).
    attrs : dict
        File attributes (JSON-decoded).
    """

    labels: np.ndarray
    offsets: np.ndarray
    images: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_superpixels(self) -> int:
        """S, over the whole pool."""
        return int(self.offsets[-1])

    @property
    def counts(self) -> np.ndarray:
        """``S_i`` of every pool image, int64 (N,)."""
        return np.diff(self.offsets)

    def global_labels(self) -> np.ndarray:
        """Global ids of ``labels``, int64 (n, H, W)."""
        return self.labels.astype(np.int64) + self.offsets[self.images][:, None, None]

    def image_of(self, ids: np.ndarray) -> np.ndarray:
        """Pool image index of global ids (int64, same shape)."""
        return np.searchsorted(self.offsets, np.asarray(ids), side="right") - 1


def image_of_superpixel(offsets: np.ndarray) -> np.ndarray:
    """Pool image index of every global superpixel id, int64 (S,)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.repeat(np.arange(offsets.size - 1), np.diff(offsets))


def offsets_from_counts(counts: Iterable[int]) -> np.ndarray:
    """``offsets`` (int64, (N + 1,)) from the per-image counts ``S_i``."""
    counts = np.asarray(list(counts), dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _attr_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)) or value is None:
        return json.dumps(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and (value[:1] in ("[", "{") or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_superpixels(
    path: str | os.PathLike[str],
    label_maps: Iterable[tuple[np.ndarray, int]],
    num_images: int,
    height: int,
    width: int,
    method: str,
    max_per_image: int | None = None,
    attrs: dict[str, Any] | None = None,
) -> np.ndarray:
    """Write label maps, one image at a time, to a superpixel file (atomically).

    Parameters
    ----------
    path : path
    label_maps : iterable of (labels, count)
        ``num_images`` pairs in pool order, as returned by :func:`seeds_superpixels` or
        :func:`oracle_superpixels`: int (H, W) contiguous local ids and their count.
    num_images, height, width : int
    method : {"seeds", "oracle"}
    max_per_image : int, optional
        An upper bound of ``S_i``: uint16 maps when it is at most 65536 (default: ``H * W``).
    attrs : dict, optional
        Extra attributes (method parameters, dataset checksum, ...); lists and dicts become JSON.

    Returns
    -------
    offsets : ndarray of int64, shape (N + 1,)
    """
    if method not in METHODS:
        raise ValueError(f"unknown superpixel method {method!r}; expected one of {METHODS}")
    bound = height * width if max_per_image is None else max_per_image
    dtype = np.uint16 if bound <= _UINT16_LIMIT else np.int32
    counts = np.zeros(num_images, dtype=np.int64)
    pixel_counts: list[np.ndarray] = []
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        chunks = (1, height, width) if num_images else None
        labels_ds = h5.create_dataset("labels", shape=(num_images, height, width), dtype=dtype, chunks=chunks,
                                      **(LABEL_COMPRESSION if num_images else {}))
        written = 0
        for i, (labels, count) in enumerate(label_maps):
            if i >= num_images:
                raise ValueError(f"more than num_images={num_images} label maps given")
            labels = np.asarray(labels)
            if labels.shape != (height, width):
                raise ValueError(f"image {i}: label map of shape {labels.shape}, expected {(height, width)}")
            if count > bound:
                raise ValueError(f"image {i}: {count} superpixels exceed max_per_image={bound}")
            sizes = np.bincount(labels.reshape(-1), minlength=count)
            if sizes.size != count or (count and sizes.min() == 0):
                raise ValueError(f"image {i}: labels are not contiguous ids 0..{count - 1}")
            labels_ds[i] = labels.astype(dtype, copy=False)
            counts[i] = count
            pixel_counts.append(sizes.astype(np.int32))
            written += 1
        if written != num_images:
            raise ValueError(f"{written} label maps given, expected {num_images}")
        offsets = offsets_from_counts(counts)
        h5.create_dataset("offsets", data=offsets)
        h5.create_dataset("pixel_count", data=np.concatenate(pixel_counts) if pixel_counts
                          else np.zeros(0, dtype=np.int32))
        all_attrs = dict(attrs or {})
        all_attrs.update(format=FILE_FORMAT, version=FILE_VERSION, method=method, num_images=num_images,
                         height=height, width=width, num_superpixels=int(offsets[-1]))
        for key, value in all_attrs.items():
            h5.attrs[key] = _attr_value(value)
    return offsets


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
    images : ndarray of uint8, shape (N, H, W, 3), optional
        RGB pool images (needed for ``seeds``).
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


def read_superpixels(
    path: str | os.PathLike[str],
    images: np.ndarray | slice | None = None,
    expected_shape: tuple[int, int, int] | None = None,
) -> SuperpixelMaps:
    """Read (some images of) a superpixel file, checking it.

    Parameters
    ----------
    path : path
    images : ndarray of int or slice, optional
        Pool indices to read (increasing); None reads all.
    expected_shape : (N, H, W), optional
        The pool's shape: a file made for another dataset or size is an error.

    Returns
    -------
    SuperpixelMaps

    Raises
    ------
    FileNotFoundError, SuperpixelFileError
        Missing file; unreadable, corrupt or inconsistent file; wrong shape. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"superpixel file not found: {path}")
    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
            if attrs.get("format") != FILE_FORMAT:
                raise SuperpixelFileError(f"{path}: not an alseg superpixel file (format {attrs.get('format')!r})")
            missing = [name for name in ("labels", "offsets", "pixel_count") if name not in h5]
            if missing:
                raise SuperpixelFileError(f"{path}: superpixel file lacks {missing}")
            shape = tuple(h5["labels"].shape)
            if expected_shape is not None and shape != tuple(expected_shape):
                raise SuperpixelFileError(
                    f"{path}: superpixel maps have shape {shape} but the pool is {tuple(expected_shape)}; "
                    "delete the file to recompute it")
            offsets = h5["offsets"][:].astype(np.int64)
            if offsets.shape != (shape[0] + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 1):
                raise SuperpixelFileError(f"{path}: offsets are inconsistent with {shape[0]} images")
            if h5["pixel_count"].shape != (offsets[-1],):
                raise SuperpixelFileError(f"{path}: pixel_count has {h5['pixel_count'].shape[0]} entries, "
                                          f"expected {offsets[-1]}")
            index = np.arange(shape[0]) if images is None else np.arange(shape[0])[images]
            labels = h5["labels"][images if images is not None else slice(None)]
    except (SuperpixelFileError, FileNotFoundError):
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise SuperpixelFileError(f"{path}: cannot read superpixel file (corrupt or incomplete): {err}") from err
    if labels.size:
        per_image_max = labels.reshape(len(index), -1).max(axis=1).astype(np.int64)
        bad = np.flatnonzero(per_image_max >= np.diff(offsets)[index])
        if bad.size:
            raise SuperpixelFileError(f"{path}: image {int(index[bad[0]])} holds superpixel ids beyond its count")
    return SuperpixelMaps(labels=labels, offsets=offsets, images=index.astype(np.int64), attrs=attrs)


# --------------------------------------------------------------------------------------------------
# Region statistics in one pass (np.bincount), never one scan per region
# --------------------------------------------------------------------------------------------------


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
