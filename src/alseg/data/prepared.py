"""The prepared dataset: one HDF5 file per dataset that every later step reads.

Layout (docs/architecture.md): ``/<split>/images`` uint8 (N, H, W, 3), ``/<split>/masks`` uint8
(N, H, W), ``/<split>/stems`` str (N,) for split in train, val, test; attrs ``classes`` (JSON list),
``ignore_index``, ``height``, ``width``, ``kind``, ``source``, and ``spec`` (the normalised dataset
spec, JSON, for provenance).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from alseg.atomic import atomic_path
from alseg.data.adapters import SourceItem, normalise_spec, open_source
from alseg.data.errors import DatasetError
from alseg.data.files import check_label_values, resize_image, resize_mask
from alseg.data.splits import SPLITS

# gzip level 1, one chunk per image. Measured on the full CamVid (701 images 360x480, 4 read
# threads): gzip-1 writes 220 MiB in 6.5 s and reads all splits back in 2.2 s; lzf 272 MiB, 4.3 s,
# 1.8 s; gzip-4 218 MiB, 8.9 s, 2.3 s; uncompressed 462 MiB. gzip-1 is the smallest but one at
# about lzf's speed, and unlike lzf (an h5py-only filter) every HDF5 tool can read it. The shuffle
# filter does nothing for one-byte pixels. One chunk per image: reading an image decompresses only it.
_COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1}
_READ_WORKERS = 4
_BATCH = 32  # items read in parallel at a time; bounds memory for large images
_PROGRESS_MIN_ITEMS = 200
_READ_BYTES = 1 << 25  # most bytes one read of load_rows decompresses at a time


@dataclass(frozen=True)
class Split:
    """One split of a prepared dataset, in memory.

    Attributes
    ----------
    images : ndarray of uint8, shape (N, H, W, 3)
        RGB images.
    masks : ndarray of uint8, shape (N, H, W)
        Class id per pixel, or the dataset's ignore value.
    stems : list of str, length N
        Image names (file stem in the source).
    """

    images: np.ndarray
    masks: np.ndarray
    stems: list[str]

    def __len__(self) -> int:
        return len(self.stems)


@dataclass(frozen=True)
class DatasetInfo:
    """What a prepared dataset holds, from its attributes (no pixel is read).

    Attributes
    ----------
    classes : list of str
        Class names, index = class id.
    ignore_index : int
        Mask value of unlabelled (void) pixels.
    height, width : int
        Size of every image.
    sizes : dict of str to int
        Number of images of train, val and test.
    kind, source : str
        Adapter name and source folder (or generator description).
    """

    classes: list[str]
    ignore_index: int
    height: int
    width: int
    sizes: dict[str, int]
    kind: str
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def prepare_dataset(spec: Mapping[str, Any], out_path: str | os.PathLike[str]) -> None:
    """Read, validate and resize a dataset and write its prepared HDF5 file atomically.

    Parameters
    ----------
    spec : mapping
        A dataset spec (keys in :mod:`alseg.data.adapters`).
    out_path : str or PathLike
        The prepared file; written under a temporary name and renamed, so it exists only complete.

    Raises
    ------
    DatasetError
        For a bad spec or source (naming the file and the problem): missing or unreadable files, a
        mask whose size differs from its image, mask values that are neither a class id nor the
        ignore value, an empty split, or images of different sizes without ``resize``. Nothing is
        written at ``out_path`` then.
    """
    full = normalise_spec(spec)
    source = open_source(full)
    for split, items in source.splits.items():
        if not items:
            raise DatasetError(f"{source.source}: split {split!r} is empty ({full['kind']} dataset)")
    total = sum(len(items) for items in source.splits.values())
    verbose = total >= _PROGRESS_MIN_ITEMS
    started = time.perf_counter()
    first_image: tuple[str, tuple[int, int]] | None = None  # (file, size) that fixes the size

    with (
        atomic_path(out_path) as tmp,
        h5py.File(tmp, "w") as h5,
        ThreadPoolExecutor(_READ_WORKERS) as pool,
    ):
        for split in SPLITS:
            items = source.splits[split]
            images_out = masks_out = None
            for start in range(0, len(items), _BATCH):
                batch = items[start : start + _BATCH]
                loaded = pool.map(
                    lambda item: _load_item(item, source.classes, source.ignore_index, full["resize"]),
                    batch,
                )
                for index, (item, (image, mask)) in enumerate(zip(batch, loaded), start):
                    size = (int(image.shape[0]), int(image.shape[1]))
                    if first_image is None:
                        first_image = (item.image, size)
                    elif size != first_image[1]:
                        raise DatasetError(
                            f"{item.image} is {size[0]}x{size[1]} (HxW) but {first_image[0]} is "
                            f"{first_image[1][0]}x{first_image[1][1]}: images of one dataset must "
                            "share a size; set resize: [H, W] in the dataset spec"
                        )
                    if images_out is None:
                        images_out, masks_out = _create_split(h5, split, items, size)
                    images_out[index] = image
                    masks_out[index] = mask
                if verbose:
                    print(
                        f"prepare_dataset {source.kind}: {split} {start + len(batch)}/{len(items)} "
                        f"images ({time.perf_counter() - started:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        assert first_image is not None  # every split is non-empty
        h5.attrs["classes"] = json.dumps(list(source.classes))
        h5.attrs["ignore_index"] = source.ignore_index
        h5.attrs["height"], h5.attrs["width"] = first_image[1]
        h5.attrs["kind"] = source.kind
        h5.attrs["source"] = source.source
        h5.attrs["spec"] = json.dumps(full, sort_keys=True)


def _load_item(
    item: SourceItem, classes: tuple[str, ...], ignore_index: int, resize: list[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair, check it and resize it: image uint8 (H, W, 3), mask uint8 (H, W)."""
    image, mask = item.read()
    if image.shape[:2] != mask.shape:
        raise DatasetError(
            f"{item.mask}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
            f"{item.image} is {image.shape[0]}x{image.shape[1]}"
        )
    check_label_values(mask, len(classes), ignore_index, item.mask)
    mask = mask.astype(np.uint8, copy=False)
    if resize is not None:
        image, mask = resize_image(image, *resize), resize_mask(mask, *resize)
    return image, mask


def _create_split(
    h5: h5py.File, split: str, items: list[SourceItem], size: tuple[int, int]
) -> tuple[h5py.Dataset, h5py.Dataset]:
    n, (height, width) = len(items), size
    group = h5.create_group(split)
    images = group.create_dataset(
        "images", (n, height, width, 3), dtype=np.uint8, chunks=(1, height, width, 3), **_COMPRESSION
    )
    masks = group.create_dataset(
        "masks", (n, height, width), dtype=np.uint8, chunks=(1, height, width), **_COMPRESSION
    )
    group.create_dataset("stems", data=[item.stem for item in items], dtype=h5py.string_dtype())
    return images, masks


@contextlib.contextmanager
def _open_prepared(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open a prepared file for reading; any HDF5 or layout error becomes a DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: prepared dataset not found (the prepare_dataset step writes it)")
    try:
        with h5py.File(path, "r") as h5:
            yield h5
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise _unreadable(path, err) from err


def _unreadable(path: str | os.PathLike[str], err: Exception) -> DatasetError:
    """The error of a prepared file that HDF5 cannot read."""
    return DatasetError(f"{path}: cannot read the prepared dataset, it is corrupt or truncated ({err}); delete it "
                        "so that the workflow rebuilds it")


def dataset_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Read a prepared dataset's description from its attributes and dataset shapes (no pixels).

    Raises
    ------
    DatasetError
        If the file is missing, corrupt, or lacks part of the layout.
    """
    with _open_prepared(path) as h5:
        attrs = h5.attrs
        return DatasetInfo(
            classes=[str(c) for c in json.loads(attrs["classes"])],
            ignore_index=int(attrs["ignore_index"]),
            height=int(attrs["height"]),
            width=int(attrs["width"]),
            sizes={split: int(h5[split]["images"].shape[0]) for split in SPLITS},
            kind=str(attrs["kind"]),
            source=str(attrs["source"]),
        )


def _check_split(path: str | os.PathLike[str], split: str) -> None:
    """A DatasetError naming the file when ``split`` is not a split name."""
    if split not in SPLITS:
        raise DatasetError(f"{path}: no split {split!r}; splits are {', '.join(SPLITS)}")


def load_split(path: str | os.PathLike[str], split: str) -> Split:
    """Read one split of a prepared dataset into memory.

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`prepare_dataset`.
    split : str
        "train", "val" or "test".

    Returns
    -------
    Split
        images uint8 (N, H, W, 3), masks uint8 (N, H, W), stems.

    Raises
    ------
    DatasetError
        If ``split`` is not a split name, or the file is missing, corrupt or truncated.
    """
    _check_split(path, split)
    with _open_prepared(path) as h5:
        group = h5[split]
        images = group["images"][()]
        masks = group["masks"][()]
        stems = [str(s) for s in group["stems"].asstr()[()]]
    if images.shape[:3] != masks.shape or len(stems) != len(images) or images.dtype != np.uint8:
        raise DatasetError(
            f"{path}: split {split!r} is inconsistent (images {images.shape}, masks {masks.shape}, "
            f"{len(stems)} stems); delete the file so that the workflow rebuilds it"
        )
    return Split(images=images, masks=masks, stems=stems)


def load_masks(path: str | os.PathLike[str], split: str, start: int, stop: int) -> np.ndarray:
    """The masks of images ``start .. stop`` of one split (uint8 (stop - start, H, W)), without the rest of
    the split: steps that stream the pool read it a chunk at a time.

    Raises
    ------
    DatasetError
        If ``split`` is not a split name, the range is outside it, or the file is missing or corrupt.
    """
    return _load_range(path, split, "masks", start, stop)


def load_rows(path: str | os.PathLike[str], split: str, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (int (D,), any order, repeats allowed) of one split's ``images`` or ``masks``, in that
    order, without the rest of the split: each run of consecutive rows is one read of at most
    :data:`_READ_BYTES`, so a request costs its own size and one read's buffer.

    Raises
    ------
    DatasetError
        If ``split`` is not a split name, a row is outside it, or the file is missing or corrupt.
    """
    _check_split(path, split)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    order = np.argsort(rows, kind="stable")
    ascending = rows[order]
    with _open_prepared(path) as h5:
        data = h5[split][name]
        if rows.size and (ascending[0] < 0 or ascending[-1] >= data.shape[0]):
            raise DatasetError(f"{path}: image {int(ascending[0] if ascending[0] < 0 else ascending[-1])} is "
                               f"outside split {split!r} of {data.shape[0]}")
        out = np.empty((rows.size, *data.shape[1:]), dtype=data.dtype)
        per_read = max(1, _READ_BYTES // max(out[:1].nbytes, 1))
        breaks = np.flatnonzero(np.diff(ascending) != 1) + 1
        for lo, hi in zip([0, *breaks], [*breaks, rows.size]):
            for a in range(int(lo), int(hi), per_read):
                b = min(a + per_read, int(hi))
                out[order[a:b]] = data[ascending[a]:ascending[b - 1] + 1]
    return out


def _load_range(path: str | os.PathLike[str], split: str, name: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start .. stop`` of one split's ``images`` or ``masks``."""
    _check_split(path, split)
    with _open_prepared(path) as h5:
        rows = h5[split][name]
        if not 0 <= start <= stop <= rows.shape[0]:
            raise DatasetError(f"{path}: images {start} .. {stop} are outside split {split!r} of {rows.shape[0]}")
        return rows[start:stop]


class ImagesOnDisk:
    """The images of one split as an array-like read from the file as they are asked for: ``shape``,
    ``dtype``, ``ndim``, ``nbytes``, ``len``, ``images[start:stop]`` (uint8 (n, H, W, 3)) and ``images[i]``
    (uint8 (H, W, 3)), for steps that need part of a pool too large to hold (an inference shard) or a few
    images at a time (training's samples). Image reads keep the file open; h5py serialises reads from
    several threads."""

    def __init__(self, path: str | os.PathLike[str], split: str) -> None:
        self.path, self.split = Path(path), split
        _check_split(path, split)
        with _open_prepared(path) as h5:
            self.shape: tuple[int, ...] = tuple(h5[split]["images"].shape)
            self.dtype = h5[split]["images"].dtype
        self._h5: h5py.File | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | int | np.integer) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            index = int(rows) + (len(self) if rows < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"{self.path}: image {int(rows)} is outside split {self.split!r} of {len(self)}")
            return self._read_one(index)
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("ImagesOnDisk reads consecutive images or one image: index it with a slice or an int")
        start, stop, _ = rows.indices(len(self))
        return _load_range(self.path, self.split, "images", start, max(start, stop))

    def _read_one(self, index: int) -> np.ndarray:
        try:
            if self._h5 is None:
                self._h5 = h5py.File(self.path, "r")
            return self._h5[self.split]["images"][index]
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise _unreadable(self.path, err) from err

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": None}  # an open HDF5 file does not pickle; the copy reopens it


def load_stems(path: str | os.PathLike[str], split: str) -> list[str]:
    """The image names of one split of a prepared dataset, without reading its pixels."""
    _check_split(path, split)
    with _open_prepared(path) as h5:
        return [str(s) for s in h5[split]["stems"].asstr()[()]]
