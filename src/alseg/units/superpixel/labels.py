"""What superpixel queries add to the label store, and the pixels they label.

The store keeps every asked *base* superpixel (global id in the dataset's superpixel file), never its
pixels: ``superpixel_id``, the ``superpixel_round`` and ``superpixel_query`` (row of that round's
``queries.csv``) that asked it, the ``superpixel_class`` answered for that query (-1: skipped, asked and
paid but no label) and its ``superpixel_pixels``. The labelled pixels are derived from the base
superpixel maps when training needs them (:func:`labelled_pixels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alseg.labels import LabelStore, LabelStoreError
from alseg.queries import Table
from alseg.superpixels import SuperpixelMaps, image_of_superpixel
from alseg.units.base import Job
from alseg.units.superpixel.files import (
    RegionsFileError,
    check_regions_match_queries,
    load_regions,
    read_pool_superpixels,
)
from alseg.units.superpixel.oracle import answer_superpixel_queries

#: Images per chunk when label maps are expanded to pixels (bounds the int64 temporaries).
_CHUNK_IMAGES = 32


def answer_superpixel_rows(job: Job, queries: Table, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The dominant ground-truth class of each queried region (-1: all void, ``skip``) and a log summary.

    Void pixels do not vote; ``oracle.error_rate`` flips answers to a random wrong class.
    """
    superpixels, regions = job.file("superpixels"), job.file("regions")
    info = job.info
    rr = load_regions(regions, len(queries["query_id"]))
    check_regions_match_queries(rr, queries, regions)
    images = np.unique(rr.query_image)
    maps = read_pool_superpixels(superpixels, job.pool_shape, images=images)
    if maps.num_superpixels != rr.num_superpixels:
        raise RegionsFileError(f"{regions}: made for {rr.num_superpixels} base superpixels, {superpixels} has "
                               f"{maps.num_superpixels}")
    answers, flipped, counts = answer_superpixel_queries(
        job.masks_of(images), maps.labels, maps.offsets[images], rr.query_of_base(), rr.num_queries,
        info.num_classes, info.ignore_index, job.settings["oracle"]["error_rate"], rng)
    voting = counts.sum(axis=1)
    purity = float(counts.max(axis=1).sum() / max(voting.sum(), 1)) if counts.size else 0.0
    return answers, (f"{int((answers < 0).sum())} all-void skipped, {int(flipped.sum())} simulated errors; the "
                     f"dominant class holds {100 * purity:.1f} % of their non-void pixels")


def add_superpixel_rows(store: LabelStore, job: Job, queries: Table, answer_class: np.ndarray) -> LabelStore:
    """Add a round's answered regions to ``store``: one record per base superpixel the queries cover."""
    regions = job.file("regions")
    rr = load_regions(regions, len(queries["query_id"]))
    check_regions_match_queries(rr, queries, regions)
    asked_superpixels(store, rr.num_superpixels)  # the store and the regions share the superpixel file
    return add_superpixel_answers(store, job.round_index, rr.base_id, rr.base_query, answer_class, rr.base_pixels)


def add_superpixel_answers(
    store: LabelStore,
    round_index: int,
    base_id: np.ndarray,
    base_query: np.ndarray,
    query_class: np.ndarray,
    base_pixels: np.ndarray,
) -> LabelStore:
    """Return a new store with one round of superpixel answers added (``store`` is not modified).

    Parameters
    ----------
    base_id : ndarray of int, shape (M,)
        Global ids of the base superpixels this round's queries cover (the never-asked part of each
        queried region).
    base_query : ndarray of int, shape (M,)
        The query (row of the round's ``queries.csv``, ``0 .. Q-1``) covering each.
    query_class : ndarray of int, shape (Q,)
        Each query's answer: a class id, or -1 for ``skip`` (asked and paid, no label).
    base_pixels : ndarray of int, shape (M,)
        Pixel count of each base superpixel.

    Raises
    ------
    ValueError
        If a base superpixel was asked in an earlier round or twice in this one (its pixels would be
        paid twice), or a query index is out of range.
    """
    base_id = np.asarray(base_id, dtype=np.int64).reshape(-1)
    base_query = np.asarray(base_query, dtype=np.int64).reshape(-1)
    query_class = np.asarray(query_class, dtype=np.int64).reshape(-1)
    base_pixels = np.asarray(base_pixels, dtype=np.int64).reshape(-1)
    if not base_id.shape == base_query.shape == base_pixels.shape:
        raise ValueError(f"base_id {base_id.shape}, base_query {base_query.shape} and base_pixels "
                         f"{base_pixels.shape} differ in length")
    if base_query.size and (base_query.min() < 0 or base_query.max() >= query_class.size):
        raise ValueError(f"round {round_index}: base superpixels refer to queries outside 0 .. {query_class.size - 1}")
    if np.unique(base_id).size != base_id.size:
        raise ValueError(f"round {round_index} asks the same base superpixel twice")
    again = np.intersect1d(base_id, store["superpixel_id"])
    if again.size:
        raise ValueError(f"round {round_index} asks {again.size} base superpixels that an earlier round already "
                         f"asked (e.g. {int(again[0])}); they would be paid twice")
    return store.updated(
        superpixel_id=np.concatenate([store["superpixel_id"], base_id]),
        superpixel_round=np.concatenate([store["superpixel_round"], np.full(base_id.size, round_index, np.int16)]),
        superpixel_query=np.concatenate([store["superpixel_query"], base_query.astype(np.int32)]),
        superpixel_class=np.concatenate([store["superpixel_class"], query_class[base_query].astype(np.int16)]),
        superpixel_pixels=np.concatenate([store["superpixel_pixels"], base_pixels.astype(np.int32)]),
    )


def asked_superpixels(store: LabelStore, num_superpixels: int) -> np.ndarray:
    """Boolean (S,): base superpixels asked in any round so far (answered or skipped)."""
    ids = store["superpixel_id"]
    if ids.size and (ids.min() < 0 or ids.max() >= num_superpixels):
        raise LabelStoreError(f"the label store holds base superpixel ids up to {int(ids.max())}, but the "
                              f"superpixel file has {num_superpixels}: was it made with another superpixel file?")
    asked = np.zeros(num_superpixels, dtype=bool)
    asked[ids] = True
    return asked


def superpixel_labels(store: LabelStore, num_superpixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Label and labelling query of every base superpixel.

    Returns
    -------
    label : ndarray of int16, shape (S,)
        The answered class of the query that covered it; -1 if never asked or skipped.
    region : ndarray of int64, shape (S,)
        A number ``0 .. K-1`` per answered query (all rounds, in (round, query) order), -1 where
        ``label`` is -1: the regions that sieving treats one by one.
    """
    asked_superpixels(store, num_superpixels)  # checks the ids
    label = np.full(num_superpixels, -1, dtype=np.int16)
    region = np.full(num_superpixels, -1, dtype=np.int64)
    answered = store["superpixel_class"] >= 0
    ids = store["superpixel_id"][answered]
    label[ids] = store["superpixel_class"][answered]
    key = store["superpixel_round"][answered].astype(np.int64) * (1 << 32) + store["superpixel_query"][answered]
    region[ids] = np.unique(key, return_inverse=True)[1].reshape(-1)
    return label, region


def region_count(region_of_base: np.ndarray) -> int:
    """The number of answered queries (sieving's regions) of :func:`superpixel_labels`' ``region``."""
    return int(region_of_base.max()) + 1 if region_of_base.size and region_of_base.max() >= 0 else 0


@dataclass
class LabelledPixels:
    """The pixels of answered superpixel queries, in (image, y, x) order.

    Attributes
    ----------
    image, y, x : ndarray of int32, shape (P,)
    cls : ndarray of int16, shape (P,)
        The answer of the query that labelled the pixel.
    region : ndarray of int64, shape (P,)
        The labelling query, numbered ``0 .. num_regions - 1`` over all rounds (sieving's regions).
    num_regions : int
    """

    image: np.ndarray
    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray
    region: np.ndarray
    num_regions: int

    def __len__(self) -> int:
        return int(self.image.size)

    def subset(self, keep: np.ndarray) -> LabelledPixels:
        return LabelledPixels(self.image[keep], self.y[keep], self.x[keep], self.cls[keep], self.region[keep],
                              self.num_regions)


def labelled_images(store: LabelStore, offsets: np.ndarray) -> np.ndarray:
    """Pool images holding an answered base superpixel (ascending, int64)."""
    answered = store["superpixel_id"][store["superpixel_class"] >= 0]
    return np.unique(image_of_superpixel(offsets)[answered]).astype(np.int64)


def labelled_pixels(store: LabelStore, maps: SuperpixelMaps) -> LabelledPixels:
    """Expand the store's answered base superpixels into pixels, over the images of ``maps``.

    Parameters
    ----------
    store : LabelStore
    maps : SuperpixelMaps
        Base superpixels of some pool images (those outside it contribute nothing).

    Returns
    -------
    LabelledPixels
    """
    return expand_labels(*superpixel_labels(store, maps.num_superpixels), maps)


def expand_labels(label_of_base: np.ndarray, region_of_base: np.ndarray, maps: SuperpixelMaps) -> LabelledPixels:
    """The pixels of the images of ``maps`` whose base superpixel has a label, from
    :func:`superpixel_labels`' arrays (computed once when a pool is expanded a part at a time).

    Parameters
    ----------
    label_of_base, region_of_base : ndarray, shape (S,)
        As :func:`superpixel_labels` returns them.
    maps : SuperpixelMaps

    Returns
    -------
    LabelledPixels
        In (image, y, x) order over ``maps.images``.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    for lo in range(0, maps.images.size, _CHUNK_IMAGES):
        chunk = slice(lo, lo + _CHUNK_IMAGES)
        ids = maps.labels[chunk].astype(np.int64) + maps.offsets[maps.images[chunk]][:, None, None]
        cls_map = label_of_base[ids]
        b, ys, xs = np.nonzero(cls_map >= 0)
        parts.append((maps.images[chunk][b].astype(np.int32), ys.astype(np.int32), xs.astype(np.int32),
                      cls_map[b, ys, xs], region_of_base[ids[b, ys, xs]]))
    num_regions = region_count(region_of_base)
    if not parts:
        empty = [np.zeros(0, t) for t in (np.int32, np.int32, np.int32, np.int16, np.int64)]
        return LabelledPixels(*empty, num_regions=num_regions)
    columns = [np.concatenate(c) for c in zip(*parts)]
    return LabelledPixels(*columns, num_regions=num_regions)
