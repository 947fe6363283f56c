"""The files of superpixel experiments: the base superpixels of a dataset, and a round's ``regions.npz``.

- ``results/datasets/<dataset>.superpixels-<seeds-<size>|oracle>.h5``: the base superpixels of the pool,
  computed once per dataset and setting (:func:`compute_base_superpixels`) and shared by every experiment
  and round; its name comes from :func:`superpixel_file_name` only;
- ``round_<r>/regions.npz``: the side file of a round's selection, its merge record and the base
  superpixels each query covers (:class:`RoundRegions`).

docs/superpixels.md describes both.
"""

from __future__ import annotations

import os
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from alseg.atomic import atomic_path
from alseg.data import ImagesOnDisk, dataset_info, load_masks
from alseg.data.prepared import load_stems
from alseg.joblog import log
from alseg.queries import Table
from alseg.superpixels import SuperpixelFileError, SuperpixelMaps, read_superpixels

PathLike = str | os.PathLike[str]

REGIONS_FORMAT = "alseg-regions"
REGIONS_VERSION = 1
_REGIONS_ARRAYS = ("parent", "query_region", "query_image", "base_id", "base_query", "base_pixels")


#: The setting part of a base superpixel file's name (``seeds-<pixels per superpixel>`` or ``oracle``)
SETTING_PATTERN = r"seeds-[1-9][0-9]*|oracle"


def superpixel_file_name(dataset: str, settings: Mapping[str, Any]) -> str:
    """File name of a dataset's base superpixels under ``results/datasets/``, from an experiment's
    ``superpixel`` settings: ``<dataset>.superpixels-seeds-<size>.h5`` or ``<dataset>.superpixels-oracle.h5``
    (oracle components have no size)."""
    method = settings["method"]
    setting = "oracle" if method == "oracle" else f"{method}-{int(settings['pixels_per_superpixel'])}"
    return f"{dataset}.superpixels-{setting}.h5"


def parse_superpixel_setting(setting: str) -> tuple[str, int]:
    """``seeds-64`` -> (``seeds``, 64); ``oracle`` -> (``oracle``, 0)."""
    match = re.fullmatch(r"(seeds)-([1-9][0-9]*)|(oracle)", setting)
    if match is None:
        raise ValueError(f"unknown superpixel setting {setting!r} (expected seeds-<pixels> or oracle)")
    if match.group(3):
        return "oracle", 0
    return "seeds", int(match.group(2))


def compute_base_superpixels(
    dataset: PathLike, method: str, pixels_per_superpixel: int, out: PathLike, workers: int = 1
) -> None:
    """Compute the base superpixels of the pool (``train`` split) once and write them to ``out``.

    Parameters
    ----------
    dataset : path
        The prepared dataset.
    method : {"seeds", "oracle"}
        SEEDS (official parameters), or ground-truth connected components (the upper bound).
    pixels_per_superpixel : int
        SEEDS average size (ignored by ``oracle``).
    out : path
    workers : int
        SEEDS threads (the maps do not depend on it).
    """
    from alseg.superpixel_methods import compute_superpixels  # OpenCV and scikit-image: this step only

    info = dataset_info(dataset)
    n = len(load_stems(dataset, "train"))
    workers = seeds_workers(max(1, int(workers)), info.height, info.width) if method == "seeds" else 1
    started = time.perf_counter()
    offsets = compute_superpixels(  # SEEDS reads one image at a time; the oracle holds the masks (1 byte/pixel)
        out,
        images=ImagesOnDisk(dataset, "train") if method == "seeds" else None,
        masks=load_masks(dataset, "train", 0, n) if method == "oracle" else None,
        method=method,
        pixels_per_superpixel=pixels_per_superpixel,
        attrs={"dataset": str(dataset), "ignore_index": info.ignore_index},
        workers=workers,
    )
    total = int(offsets[-1])
    log(f"{total} {method} superpixels over {n} pool images ({total / max(n, 1):.1f} per image, "
        f"{n * info.height * info.width / max(total, 1):.1f} px each) in {time.perf_counter() - started:.1f} s "
        f"on {workers} threads -> {out}")


def read_pool_superpixels(
    path: PathLike, pool_shape: tuple[int, int, int], images: np.ndarray | None = None
) -> SuperpixelMaps:
    """The base superpixels of (some images of) the pool, checked against the pool's shape.

    Raises
    ------
    FileNotFoundError, SuperpixelFileError
        Missing, corrupt or mismatched file; the message names it.
    """
    return read_superpixels(path, images=images, expected_shape=pool_shape)


def seeds_workers(requested: int, height: int, width: int) -> int:
    """SEEDS threads for images of ``height`` x ``width`` that fit the memory this process may use
    (:func:`alseg.superpixel_methods.seeds_threads`); logs when that is fewer than ``requested``, and warns
    when even one image may not fit."""
    from alseg.host_memory import available_bytes
    from alseg.superpixel_methods import SEEDS_BYTES_PER_PIXEL, seeds_threads

    available = available_bytes()
    threads = seeds_threads(requested, height, width, available)
    per_thread = SEEDS_BYTES_PER_PIXEL * height * width
    if available is not None and per_thread > available:
        log(f"warning: SEEDS needs about {per_thread / 1e9:.1f} GB per image at {height} x {width}, more than the "
            f"{available / 1e9:.1f} GB this job may use: it may run out of memory (a cluster job: give the "
            f"superpixels rule more memory, e.g. --set-resources superpixels:mem_mb=...)")
    elif threads < requested:
        log(f"SEEDS needs about {per_thread / 1e9:.1f} GB per image at {height} x {width} and this job may use "
            f"{available / 1e9:.1f} GB: {threads} threads instead of {requested}")
    return threads


def superpixel_offsets(path: PathLike, num_images: int) -> np.ndarray:
    """``/offsets`` of a superpixel file (int64 (N + 1,)), checked against the pool's ``num_images``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"superpixel file not found: {path}")
    try:
        with h5py.File(path, "r") as h5:
            offsets = h5["offsets"][()].astype(np.int64)
    except (OSError, KeyError) as err:
        raise SuperpixelFileError(f"{path}: cannot read /offsets (corrupt or not a superpixel file): {err}") from err
    if offsets.shape != (num_images + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 1):
        raise SuperpixelFileError(f"{path}: offsets do not fit the {num_images} pool images; delete it to recompute")
    return offsets


def base_pixel_counts(path: PathLike) -> np.ndarray:
    """``/pixel_count`` of a superpixel file (int64 (S,)), already checked by :func:`read_pool_superpixels`."""
    try:
        with h5py.File(path, "r") as h5:
            return h5["pixel_count"][()].astype(np.int64)
    except (OSError, KeyError) as err:
        raise SuperpixelFileError(f"{path}: cannot read /pixel_count (corrupt or incomplete): {err}") from err


class RegionsFileError(ValueError):
    """A missing, corrupt or inconsistent ``regions.npz`` (the message names the file)."""


@dataclass
class RoundRegions:
    """A round's merge record and the base superpixels of each query (``round_<r>/regions.npz``).

    Attributes
    ----------
    parent : ndarray of int64, shape (S,)
        Region of every base superpixel this round, named by its seed's global base id
        (``parent[seed] == seed``; ``arange(S)`` without merging).
    query_region : ndarray of int64, shape (Q,)
        Region id of each query (the ``superpixel`` column of ``queries.csv``).
    query_image : ndarray of int64, shape (Q,)
        Pool image of each query.
    base_id : ndarray of int64, shape (M,)
        The base superpixels the queries cover (each region's part never asked before), grouped by
        query, ascending within a query.
    base_query : ndarray of int64, shape (M,)
        The query covering each.
    base_pixels : ndarray of int64, shape (M,)
        Pixel count of each.
    """

    parent: np.ndarray
    query_region: np.ndarray
    query_image: np.ndarray
    base_id: np.ndarray
    base_query: np.ndarray
    base_pixels: np.ndarray

    @property
    def num_queries(self) -> int:
        return int(self.query_region.size)

    @property
    def num_superpixels(self) -> int:
        return int(self.parent.size)

    def query_of_base(self) -> np.ndarray:
        """Query index of every base superpixel, -1 for none (int64 (S,))."""
        query = np.full(self.num_superpixels, -1, dtype=np.int64)
        query[self.base_id] = self.base_query
        return query

    def members(self) -> dict[int, np.ndarray]:
        """Region id -> the base ids its query covers (what :func:`alseg.regions_from_superpixel_file`
        takes as ``members``)."""
        starts = np.searchsorted(self.base_query, np.arange(self.num_queries + 1))
        return {int(self.query_region[q]): self.base_id[starts[q]:starts[q + 1]] for q in range(self.num_queries)}


def save_regions(path: PathLike, regions: RoundRegions, round_index: int) -> None:
    """Write ``regions`` to ``path`` (npz, compressed) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, format=np.array(REGIONS_FORMAT), version=np.array(REGIONS_VERSION),
                            round=np.array(round_index),
                            **{name: np.asarray(getattr(regions, name), dtype=np.int64) for name in _REGIONS_ARRAYS})


def load_regions(path: PathLike, num_queries: int | None = None) -> RoundRegions:
    """Read a ``regions.npz``; with ``num_queries``, check it matches the round's ``queries.csv``.

    Raises
    ------
    FileNotFoundError, RegionsFileError
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"regions file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != REGIONS_FORMAT:
                raise RegionsFileError(f"{path}: not an alseg regions file")
            missing = [name for name in _REGIONS_ARRAYS if name not in data.files]
            if missing:
                raise RegionsFileError(f"{path}: regions file lacks {missing}")
            regions = RoundRegions(**{name: data[name].astype(np.int64) for name in _REGIONS_ARRAYS})
    except RegionsFileError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise RegionsFileError(f"{path}: cannot read the regions file (corrupt or incomplete): {err}") from err
    s, q = regions.num_superpixels, regions.num_queries
    if not (regions.base_id.shape == regions.base_query.shape == regions.base_pixels.shape) \
            or regions.query_image.shape != (q,) \
            or (regions.base_id.size and (regions.base_id.min() < 0 or regions.base_id.max() >= s)) \
            or (regions.base_query.size and (regions.base_query.min() < 0 or regions.base_query.max() >= q)) \
            or np.any(np.diff(regions.base_query) < 0):
        raise RegionsFileError(f"{path}: inconsistent regions file (ids out of range or not grouped by query)")
    if num_queries is not None and q != num_queries:
        raise RegionsFileError(f"{path}: {q} queries, but the round's queries.csv has {num_queries}; "
                               "delete both to let the workflow rebuild them")
    return regions


def check_regions_match_queries(regions: RoundRegions, table: Table, regions_path: PathLike) -> None:
    """Raise :class:`RegionsFileError` unless ``regions`` describes the queries of ``table``."""
    if not np.array_equal(regions.query_region, table["superpixel"]) \
            or not np.array_equal(regions.query_image, table["image_index"]):
        raise RegionsFileError(f"{regions_path} does not describe the round's queries (other regions or images); "
                               "delete it and queries.csv to let the workflow rebuild them")
