"""Base superpixels of a pool: global ids, the maps of a pool, and their file (``superpixels.h5``).

Label maps are *local*: image i's superpixels are numbered ``0 .. S_i - 1`` (contiguous, no gaps).
A *global* superpixel id numbers every superpixel of the pool: ``offsets[i] + local id``, where
``offsets`` (int64, shape (N + 1,)) is the running sum of ``S_i`` with ``offsets[0] = 0`` and
``offsets[N] = S``. Global ids of one image are contiguous, so per-superpixel arrays of a batch of
images concatenate in pool order.

Computing the maps (SEEDS, oracle components) and writing them is :mod:`alseg.superpixel_methods`
(OpenCV, scikit-image: imported only by the step that computes them); statistics of per-pixel arrays
over regions are :mod:`alseg.region_stats`. Torch-free.

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

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from alseg.atomic import atomic_path
from alseg.h5attrs import _attr_value, _decode_attr

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
