"""Workflow steps of superpixel experiments (``unit: superpixel``): read the step's files, call the package,
write its outputs.

The superpixel counterpart of :mod:`alseg.steps` (whose ``answer_queries``, ``update_labels``, ``train``
and ``infer`` hand superpixel experiments over to this module). Round r of an experiment:

1. :func:`compute_base_superpixels`: once per dataset and superpixel setting, the base superpixels of the
   pool (``results/datasets/<dataset>.superpixels-<method>[-<size>].h5``), shared by every experiment
   and round;
2. :func:`select_superpixel_queries`: round 0 random base superpixels; round r >= 1 adaptive merge (if
   enabled) from round r-1's ``inference.h5`` (``/superpixel`` statistics), the never-asked part of each
   region as a candidate, scores, top B. Writes ``queries.csv`` and ``regions.npz`` (the parent array and
   each query's base superpixels, :class:`RoundRegions`);
3. :func:`answer_superpixel_queries_step`: the dominant-label oracle;
4. :func:`update_superpixel_labels`: per asked base superpixel, its query, round and answer;
5. :func:`superpixel_training_points`: the pixels of answered regions, sieved with round r-1's model
   (rounds >= 1, when sieving is on), as :class:`alseg.train.PointLabels` (called by ``steps.train``);
6. :func:`write_superpixel_overlays`: PNG overlays of a few images for the audit.

Nothing here imports torch except where a model runs (sieving).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from alseg.acquire.superpixel import (
    candidate_regions,
    merge_summary,
    predicted_class_shares,
    query_of_base,
    region_scores,
    select_regions,
)
from alseg.acquire.superpixel_merge import adaptive_merge, superpixel_edges
from alseg.acquire.superpixel_stats import SuperpixelStats
from alseg.atomic import atomic_path
from alseg.data import dataset_info, load_split
from alseg.inference_file import InferenceFileError, read_superpixel_fields
from alseg.labels import (
    LabelStore,
    add_superpixel_answers,
    asked_superpixels,
    load_labels,
    save_labels,
    superpixel_labels,
)
from alseg.oracle_superpixel import answer_superpixel_queries
from alseg.queries import ANSWER_COLUMNS, QUERY_COLUMNS, query_ids, read_answers, read_queries, write_table
from alseg.seeds import step_rng, step_seed
from alseg.sieve import sieve_mask
from alseg.superpixels import (
    SuperpixelFileError,
    SuperpixelMaps,
    compute_superpixels,
    image_of_superpixel,
    read_superpixels,
)

if TYPE_CHECKING:
    from alseg.data.prepared import Split
    from alseg.points import PointLabels

PathLike = str | os.PathLike[str]

REGIONS_FORMAT = "alseg-regions"
REGIONS_VERSION = 1
_REGIONS_ARRAYS = ("parent", "query_region", "query_image", "base_id", "base_query", "base_pixels")
#: Images per chunk when label maps are expanded to pixels (bounds the int64 temporaries).
_CHUNK_IMAGES = 32


def _required(path: PathLike | None, what: str) -> PathLike:
    """``path``, or a clear error when a superpixel step was not given one of its inputs."""
    if path is None:
        raise ValueError(f"a superpixel experiment's step needs {what} (an input of its rule)")
    return path


def log(message: str) -> None:
    """Progress and warnings go to stderr (Snakemake shows it and keeps it in the job log)."""
    from alseg.steps import log as step_log

    step_log(message)


# --------------------------------------------------------------------------------------------------
# Base superpixels
# --------------------------------------------------------------------------------------------------


def superpixel_file_name(dataset: str, method: str, pixels_per_superpixel: int) -> str:
    """File name of a dataset's base superpixels: ``<dataset>.superpixels-seeds-<size>.h5`` or
    ``<dataset>.superpixels-oracle.h5`` (oracle components have no size)."""
    setting = "oracle" if method == "oracle" else f"{method}-{int(pixels_per_superpixel)}"
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
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    started = time.perf_counter()
    offsets = compute_superpixels(
        out,
        images=pool.images if method == "seeds" else None,
        masks=pool.masks if method == "oracle" else None,
        method=method,
        pixels_per_superpixel=pixels_per_superpixel,
        attrs={"dataset": str(dataset), "ignore_index": info.ignore_index},
        workers=max(1, int(workers)),
    )
    n, total = len(pool), int(offsets[-1])
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


# --------------------------------------------------------------------------------------------------
# The side file of a round: regions.npz
# --------------------------------------------------------------------------------------------------


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
        """Region id -> the base ids its query covers (what :func:`alseg.annotate.regions_from_superpixel_file`
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


def _check_regions_match_queries(regions: RoundRegions, table: dict[str, np.ndarray], regions_path: PathLike,
                                 queries_path: PathLike) -> None:
    if not np.array_equal(regions.query_region, table["superpixel"]) \
            or not np.array_equal(regions.query_image, table["image_index"]):
        raise RegionsFileError(f"{regions_path} does not describe the queries of {queries_path} (other regions or "
                               "images); delete both to let the workflow rebuild them")


# --------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------


def pool_superpixel_stats(
    inference: PathLike | None,
    pixel_count: np.ndarray,
    num_classes: int,
    need_mean_prob: bool,
) -> tuple[SuperpixelStats, np.ndarray | None, str]:
    """Per-base-superpixel statistics of the previous model (or empty ones without a model).

    Parameters
    ----------
    inference : path or None
        Round r-1's ``inference.h5``; None: no model yet (round 0, or random selection without merging),
        so uncertainty and predictions are zero.
    pixel_count : ndarray of int64, shape (S,)
        Of the superpixel file: the dump must have been made with the same superpixels.
    num_classes : int
    need_mean_prob : bool
        Read ``mean_prob`` too (merging).

    Returns
    -------
    stats, mean_prob (or None), model checksum ("" without a model)
    """
    s = pixel_count.size
    if inference is None:
        return SuperpixelStats(pixel_count, np.zeros(s), np.zeros((s, num_classes), dtype=np.int64)), None, ""
    names = ["pixel_count", "uncertainty_sum", "pred_counts"] + (["mean_prob"] if need_mean_prob else [])
    fields = read_superpixel_fields(inference, names)
    if fields["pixel_count"].shape != (s,) or not np.array_equal(fields["pixel_count"], pixel_count):
        raise InferenceFileError(f"{inference}: its superpixel statistics ({fields['pixel_count'].shape[0]} "
                                 f"superpixels) were made with other base superpixels than this experiment's ({s}); "
                                 "delete it to let the workflow rebuild it")
    if fields["pred_counts"].shape != (s, num_classes):
        raise InferenceFileError(f"{inference}: pred_counts of shape {fields['pred_counts'].shape}, expected "
                                 f"({s}, {num_classes})")
    stats = SuperpixelStats(fields["pixel_count"].astype(np.int64), fields["uncertainty_sum"].astype(np.float64),
                            fields["pred_counts"].astype(np.int64))
    return stats, fields.get("mean_prob"), str(fields.attrs.get("model", ""))


def round_parent(
    maps: SuperpixelMaps,
    stats: SuperpixelStats,
    mean_prob: np.ndarray | None,
    eps: float,
    fraction: float,
) -> np.ndarray:
    """Adaptive merge of the base superpixels (``parent``, int64 (S,)); ``arange(S)`` without ``mean_prob``."""
    if mean_prob is None:
        return np.arange(maps.num_superpixels, dtype=np.int64)
    edges = superpixel_edges(maps.labels, maps.offsets[:-1])
    return adaptive_merge(mean_prob, stats.mean_uncertainty, edges, maps.offsets, eps, fraction)


def grouped_bases(query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base ids covered by a query and their query, grouped by query (ascending ids within one)."""
    base_id = np.flatnonzero(np.asarray(query) >= 0).astype(np.int64)
    base_query = np.asarray(query)[base_id].astype(np.int64)
    order = np.lexsort((base_id, base_query))
    return base_id[order], base_query[order]


def select_superpixel_queries(
    dataset: PathLike,
    superpixels: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out_queries: PathLike,
    out_regions: PathLike,
    labels: PathLike | None = None,
    inference: PathLike | None = None,
) -> int:
    """Write round ``round_index``'s superpixel ``queries.csv`` and ``regions.npz``; return the number of queries.

    Round 0 draws ``initial_budget`` base superpixels at random. Round r >= 1 merges the base superpixels
    with round r-1's model (``superpixel.merge``), keeps each region's part never asked before (``labels``,
    round r-1's store: no pixel is paid twice), scores the parts (``strategy``) and asks the ``budget``
    best. Fewer are asked, with a warning, when fewer regions are left.

    Raises
    ------
    ValueError
        Every base superpixel was asked already; a strategy or merging without ``inference``; files
        that do not match (superpixel file of another size, stale dump).
    """
    info = dataset_info(dataset)
    n = info.sizes["train"]
    settings = experiment["superpixel"]
    maps = read_pool_superpixels(superpixels, (n, info.height, info.width))
    pixel_count = base_pixel_counts(superpixels)
    store = load_labels(labels) if labels is not None else LabelStore()
    asked = asked_superpixels(store, maps.num_superpixels)
    strategy = "random" if round_index == 0 else experiment["strategy"]
    budget = int(experiment["initial_budget"] if round_index == 0 else experiment["budget"])
    merge = round_index > 0 and bool(settings["merge"])  # round 0's settings hold no merge keys
    seed = step_seed(experiment["seed"], round_index, "select_queries")
    rng = np.random.default_rng(seed)
    needs_model = strategy != "random" or merge
    if needs_model and inference is None:
        raise ValueError(f"round {round_index}: strategy {strategy!r}{' with merging' if merge else ''} needs the "
                         "previous round's inference dump")
    stats, mean_prob, model = pool_superpixel_stats(inference if needs_model else None, pixel_count,
                                                    info.num_classes, merge)
    started = time.perf_counter()
    parent = np.arange(maps.num_superpixels, dtype=np.int64)
    if merge:
        parent = round_parent(maps, stats, mean_prob, settings["eps"], settings["merge_fraction"])
        summary = merge_summary(parent, maps.offsets)
        log(f"round {round_index}: merged {summary['base_superpixels']} base superpixels into {summary['regions']} "
            f"regions ({summary['bases_per_region']:.2f} per region, eps {settings['eps']}, fraction "
            f"{settings['merge_fraction']}) in {time.perf_counter() - started:.2f} s")
    regions = candidate_regions(parent, stats, asked, maps.offsets)
    if len(regions) == 0:
        raise ValueError(f"{superpixels}: all {maps.num_superpixels} base superpixels of the pool were asked before "
                         f"round {round_index}; lower 'round' or the budget")
    shares = predicted_class_shares(parent, stats, settings["class_share"]) if strategy == "class_balanced" else None
    scores = region_scores(regions, strategy, shares, rng)
    if budget > len(regions):
        log(f"warning: round {round_index} asks for {budget} regions but only {len(regions)} have a part never "
            f"asked; asking {len(regions)}")
    chosen = select_regions(regions, scores, budget, rng, allow_fewer=True)
    base_id, base_query = grouped_bases(query_of_base(parent, asked, chosen.region))
    save_regions(out_regions, RoundRegions(parent=parent, query_region=chosen.region, query_image=chosen.image,
                                           base_id=base_id, base_query=base_query,
                                           base_pixels=pixel_count[base_id]), round_index)
    stems = _pool_stems(dataset)
    q = len(chosen)
    table = {
        "query_id": query_ids(round_index, q),
        "round": np.full(q, round_index),
        "image": np.asarray(stems, dtype=object)[chosen.image],
        "unit": np.full(q, "superpixel", dtype=object),
        "y": np.full(q, -1),
        "x": np.full(q, -1),
        "superpixel": chosen.region,
        "class": np.full(q, -1),
        "score": chosen.score if strategy != "random" else np.full(q, np.nan),
        "rank": chosen.rank,
        "strategy": np.full(q, strategy, dtype=object),
        "seed": np.full(q, seed),
        "model": np.full(q, model, dtype=object),
        "image_index": chosen.image,
        "pixels": chosen.pixel_count,
    }
    write_table(out_queries, table, QUERY_COLUMNS)
    log(f"round {round_index}: {q} {strategy} superpixel queries ({int(chosen.pixel_count.sum())} px, "
        f"{base_id.size} base superpixels, {np.unique(chosen.image).size} images; "
        f"{len(regions)} candidate regions) -> {out_queries}, {out_regions}")
    return q


def _pool_stems(dataset: PathLike) -> list[str]:
    """Names of the pool images (without reading pixels)."""
    try:
        with h5py.File(dataset, "r") as h5:
            return [str(s) for s in h5["train/stems"].asstr()[()]]
    except (OSError, KeyError) as err:
        raise ValueError(f"{dataset}: cannot read the pool's image names: {err}") from err


# --------------------------------------------------------------------------------------------------
# Answers and labels
# --------------------------------------------------------------------------------------------------


def answer_superpixel_queries_step(
    dataset: PathLike,
    superpixels: PathLike | None,
    queries: PathLike,
    regions: PathLike | None,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
) -> None:
    """Answer a round's superpixel queries from ground truth (the dominant label) into ``answers.csv``.

    Void pixels do not vote; a query whose pixels are all void is answered ``skip`` and still costs its
    click. ``oracle.error_rate`` flips answers to a random wrong class.
    """
    superpixels = _required(superpixels, "the base superpixel file")
    regions = _required(regions, "the round's regions.npz")
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    table = read_queries(queries)
    rr = load_regions(regions, len(table["query_id"]))
    _check_regions_match_queries(rr, table, regions, queries)
    images = np.unique(rr.query_image)
    maps = read_pool_superpixels(superpixels, pool.masks.shape, images=images)
    if maps.num_superpixels != rr.num_superpixels:
        raise RegionsFileError(f"{regions}: made for {rr.num_superpixels} base superpixels, {superpixels} has "
                               f"{maps.num_superpixels}")
    rng = step_rng(experiment["seed"], round_index, "oracle")
    answers, flipped, counts = answer_superpixel_queries(
        pool.masks[images], maps.labels, maps.offsets[images], rr.query_of_base(), rr.num_queries,
        info.num_classes, info.ignore_index, experiment["oracle"]["error_rate"], rng)
    q = answers.size
    cost = experiment["costs"]["superpixel"]
    write_table(
        out,
        {
            "query_id": table["query_id"],
            "answer": np.array([str(a) if a >= 0 else "skip" for a in answers], dtype=object),
            "source": np.full(q, "oracle", dtype=object),
            "annotator": np.full(q, "simulated", dtype=object),
            "seconds": np.full(q, float(cost["seconds"])),
            "clicks": np.full(q, float(cost["clicks"])),
        },
        ANSWER_COLUMNS,
    )
    voting = counts.sum(axis=1)
    purity = float(counts.max(axis=1).sum() / max(voting.sum(), 1))
    log(f"round {round_index}: answered {q} superpixel queries ({int((answers < 0).sum())} all-void skipped, "
        f"{int(flipped.sum())} simulated errors; the dominant class holds {100 * purity:.1f} % of their non-void "
        f"pixels) -> {out}")


def update_superpixel_labels(
    dataset: PathLike,
    queries: PathLike,
    answers: PathLike,
    regions: PathLike,
    round_index: int,
    out: PathLike,
    previous: PathLike | None = None,
) -> None:
    """Add a round's superpixel answers to the previous store (one record per asked base superpixel)."""
    info = dataset_info(dataset)
    table = read_queries(queries)
    answer_table = read_answers(answers, table, len(info.classes))
    rr = load_regions(regions, len(table["query_id"]))
    _check_regions_match_queries(rr, table, regions, queries)
    store = load_labels(previous) if previous is not None else LabelStore()
    asked_superpixels(store, rr.num_superpixels)  # the store and the regions share the superpixel file
    answer_class = np.array([int(a) if a != "skip" else -1 for a in answer_table["answer"]], dtype=np.int64)
    updated = add_superpixel_answers(store, round_index, rr.base_id, rr.base_query, answer_class, rr.base_pixels,
                                     clicks=float(answer_table["clicks"].sum()),
                                     seconds=float(answer_table["seconds"].sum()))
    save_labels(out, updated)
    log(f"round {round_index}: {updated.labelled_pixels} labelled pixels in {int((updated.superpixel_class >= 0).sum())}"
        f" answered base superpixels, {updated.clicks:.0f} clicks, {updated.seconds / 3600:.2f} h -> {out}")


# --------------------------------------------------------------------------------------------------
# Training pixels and sieving
# --------------------------------------------------------------------------------------------------


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
    answered = store.superpixel_id[store.superpixel_class >= 0]
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
    label_of_base, region_of_base = superpixel_labels(store, maps.num_superpixels)
    parts: list[tuple[np.ndarray, ...]] = []
    for lo in range(0, maps.images.size, _CHUNK_IMAGES):
        chunk = slice(lo, lo + _CHUNK_IMAGES)
        ids = maps.labels[chunk].astype(np.int64) + maps.offsets[maps.images[chunk]][:, None, None]
        cls_map = label_of_base[ids]
        b, ys, xs = np.nonzero(cls_map >= 0)
        parts.append((maps.images[chunk][b].astype(np.int32), ys.astype(np.int32), xs.astype(np.int32),
                      cls_map[b, ys, xs], region_of_base[ids[b, ys, xs]]))
    num_regions = int(region_of_base.max()) + 1 if region_of_base.size and region_of_base.max() >= 0 else 0
    if not parts:
        empty = [np.zeros(0, t) for t in (np.int32, np.int32, np.int32, np.int16, np.int64)]
        return LabelledPixels(*empty, num_regions=num_regions)
    columns = [np.concatenate(c) for c in zip(*parts)]
    return LabelledPixels(*columns, num_regions=num_regions)


def label_confidences(
    model_path: PathLike,
    images: np.ndarray,
    image_index: np.ndarray,
    pixels: LabelledPixels,
    batch_size: int = 8,
    device: str = "auto",
) -> np.ndarray:
    """The model's probability of each labelled pixel's label (what sieving thresholds).

    Parameters
    ----------
    model_path : path
        The sieving model (round r-1's ``model.pt``).
    images : ndarray of uint8, shape (n, H, W, 3)
        The pool images ``image_index`` (ascending), covering every image of ``pixels``.
    image_index : ndarray of int, shape (n,)
    pixels : LabelledPixels
        Sorted by image (as :func:`labelled_pixels` returns them).
    batch_size : int
    device : str

    Returns
    -------
    ndarray of float32, shape (P,)
    """
    import torch

    from alseg.augment import normalise_images
    from alseg.models import forward_logits, load_model, resolve_device

    dev = resolve_device(device)
    model, _ = load_model(model_path, dev)
    position = np.searchsorted(np.asarray(image_index), pixels.image)
    if pixels.image.size and not np.array_equal(np.asarray(image_index)[np.minimum(position, len(image_index) - 1)],
                                                pixels.image):
        raise ValueError("label_confidences: the images do not cover every labelled pixel")
    bounds = np.searchsorted(position, np.arange(0, len(images) + batch_size, batch_size))
    confidence = np.empty(len(pixels), dtype=np.float32)
    with torch.inference_mode():
        for k, start in enumerate(range(0, len(images), batch_size)):
            lo, hi = bounds[k], bounds[k + 1]
            if lo == hi:
                continue
            x = torch.from_numpy(normalise_images(np.asarray(images[start:start + batch_size]))).to(dev)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                logits = forward_logits(model, x)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            confidence[lo:hi] = probs[position[lo:hi] - start, pixels.cls[lo:hi], pixels.y[lo:hi], pixels.x[lo:hi]]
    return confidence


def sieve_pixels(
    pixels: LabelledPixels, confidence: np.ndarray, min_size: int, sample_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sieving of labelled pixels region by region (:func:`alseg.sieve.sieve_mask`).

    Returns
    -------
    keep : ndarray of bool, shape (P,)
    thresholds : ndarray of float64, shape (num_regions,)
        ``-inf`` for regions not sieved (smaller than ``min_size``, or not among ``pixels``).
    """
    return sieve_mask(pixels.region, confidence, pixels.num_regions, min_size, sample_points)


def _noise(cls: np.ndarray, truth: np.ndarray, ignore_index: int) -> float | None:
    """Share of pixels with a ground-truth class whose label differs from it (None: none has one)."""
    valid = truth != ignore_index
    if not valid.any():
        return None
    return float(np.mean(cls[valid] != truth[valid]))


def superpixel_training_points(
    pool: Split,
    store: LabelStore,
    superpixels: PathLike | None,
    experiment: dict[str, Any],
    round_index: int,
    ignore_index: int,
    sieve_model: PathLike | None = None,
) -> tuple[PointLabels, dict[str, Any]]:
    """The training points of a superpixel experiment: pixels of answered regions, sieved when enabled.

    Sieving (``superpixel.sieve``, rounds >= 1) keeps, within each answered query's pixels, those whose
    probability of the answer under ``sieve_model`` (round r-1's model) is at or above the Kneedle knee
    of the region's sorted confidences; regions under ``sieve_min_size`` pixels keep all. Round 0 is not
    sieved (there is no model).

    Returns
    -------
    points : PointLabels
    record : dict
        For ``train_log.json``: labelled and training pixel counts, the sieved share, regions sieved, and
        (from the pool's ground truth, for measurement only) the share of training pixels whose label
        differs from the ground truth, before and after sieving, and among the pixels sieved out.
    """
    from alseg.points import PointLabels

    superpixels = _required(superpixels, "the base superpixel file")
    n = len(pool)
    settings = experiment["superpixel"]
    images = labelled_images(store, superpixel_offsets(superpixels, n))
    if images.size == 0:
        raise ValueError(f"round {round_index}: the label store holds no answered superpixel (every query skipped?)")
    maps = read_pool_superpixels(superpixels, pool.masks.shape, images=images)
    pixels = labelled_pixels(store, maps)
    truth = pool.masks[pixels.image, pixels.y, pixels.x]
    record: dict[str, Any] = {
        "labelled_pixels": len(pixels),
        "labelled_regions": pixels.num_regions,
        "label_noise_before_sieve": _noise(pixels.cls, truth, ignore_index),
        "void_share": float(np.mean(truth == ignore_index)) if len(pixels) else None,
        "sieve": False,
        "sieve_model": None,
    }
    keep = np.ones(len(pixels), dtype=bool)
    if settings["sieve"] and round_index > 0:
        if sieve_model is None:
            raise ValueError(f"round {round_index}: sieving needs round {round_index - 1}'s model")
        started = time.perf_counter()
        confidence = label_confidences(sieve_model, pool.images[images], images, pixels,
                                       experiment["inference"]["batch_size"], experiment["inference"]["device"])
        keep, thresholds = sieve_pixels(pixels, confidence, settings["sieve_min_size"], settings["sieve_points"])
        record.update(sieve=True, sieve_model=str(sieve_model),
                      sieved_regions=int(np.isfinite(thresholds).sum()),
                      sieve_seconds=round(time.perf_counter() - started, 3))
    sieved_out = int((~keep).sum())
    record.update(
        training_pixels=int(keep.sum()),
        sieved_out_pixels=sieved_out,
        sieved_share=sieved_out / max(len(pixels), 1),
        label_noise=_noise(pixels.cls[keep], truth[keep], ignore_index),
        sieved_out_noise=_noise(pixels.cls[~keep], truth[~keep], ignore_index),
    )
    log(f"round {round_index}: {len(pixels)} pixels in {pixels.num_regions} answered regions over {images.size} "
        f"of {n} images; " + (f"sieving with {sieve_model} kept {int(keep.sum())} and sieved out {sieved_out} "
                              f"({100 * record['sieved_share']:.1f} %, {record.get('sieved_regions', 0)} regions "
                              "large enough)" if record["sieve"] else "no sieving"))
    kept = pixels.subset(keep)
    return PointLabels(image=kept.image, y=kept.y, x=kept.x, cls=kept.cls), record


# --------------------------------------------------------------------------------------------------
# Overlays
# --------------------------------------------------------------------------------------------------

_BASE_COLOUR = (200, 200, 200)  # RGB
_MERGED_COLOUR = (255, 220, 0)
_QUERY_COLOUR = (255, 40, 40)
_SIEVED_COLOUR = (255, 0, 255)


def class_palette(num_classes: int) -> np.ndarray:
    """A distinct RGB colour per class (uint8 (C, 3)): hues evenly spaced from orange to violet, leaving out
    the red and magenta of the overlays' marks."""
    import cv2

    hues = (12 + np.arange(num_classes) * 128 // max(num_classes, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full(num_classes, 200, np.uint8), np.full(num_classes, 230, np.uint8)], axis=1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (bool, same shape as the 2-D ``labels``)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay_images(query_image: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` pool images with the most queries this round (ties: smaller index), ascending."""
    images, per_image = np.unique(np.asarray(query_image, dtype=np.int64), return_counts=True)
    order = np.lexsort((images, -per_image))[:count]
    return np.sort(images[order])


def draw_overlay(
    image: np.ndarray,
    base: np.ndarray,
    merged: np.ndarray,
    query: np.ndarray,
    label: np.ndarray,
    sieved_out: np.ndarray,
    palette: np.ndarray,
    caption: str,
) -> np.ndarray:
    """One overlay (RGB uint8): left, base (grey) and merged (yellow) boundaries with this round's queried
    regions (red); right, the labelled pixels of all rounds in class colours, sieved-out pixels in magenta and
    this round's queries outlined in red. Small images are enlarged (nearest) to at least 256 px.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    base : ndarray of int, shape (H, W)
        Base superpixel of every pixel.
    merged : ndarray of int, shape (H, W), or None
        Merged region of every pixel; None when the round did not merge.
    query : ndarray of int, shape (H, W)
        This round's query covering the pixel, -1 for none.
    label : ndarray of int, shape (H, W)
        Label of the pixel (-1: none).
    sieved_out : ndarray of bool, shape (H, W)
    palette : ndarray of uint8, shape (C, 3)
    caption : str
    """
    import cv2

    h, w = base.shape
    scale = max(1, int(np.ceil(256 / min(h, w))))

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)

    img, base, query, label, sieved_out = (up(a) for a in (image, base, query, label, sieved_out))
    asked = query >= 0
    left = img.astype(np.float32)
    left[asked] = 0.6 * left[asked] + 0.4 * np.array(_QUERY_COLOUR, np.float32)
    left[boundaries(base)] = _BASE_COLOUR
    if merged is not None:
        left[boundaries(up(merged))] = _MERGED_COLOUR
    query_edge = boundaries(np.where(asked, query, -1)) & (asked | np.roll(asked, -1, 0) | np.roll(asked, -1, 1))
    left[query_edge] = _QUERY_COLOUR
    right = 0.45 * img.astype(np.float32)
    labelled = label >= 0
    right[labelled] = 0.35 * right[labelled] + 0.65 * palette[label[labelled]].astype(np.float32)
    right[sieved_out] = _SIEVED_COLOUR
    right[query_edge] = _QUERY_COLOUR
    panel = np.concatenate([left, np.full((left.shape[0], 4, 3), 255, np.float32), right], axis=1)
    footer = np.full((34, panel.shape[1], 3), 255, np.float32)
    canvas = np.ascontiguousarray(np.concatenate([panel, footer], axis=0).clip(0, 255).astype(np.uint8))
    y = panel.shape[0]
    cv2.putText(canvas, caption, (4, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    legend = "grey: base  yellow: merged  red: asked this round  magenta: sieved out"
    cv2.putText(canvas, legend, (4, y + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    return canvas


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "image"


def write_superpixel_overlays(
    dataset: PathLike,
    superpixels: PathLike,
    regions: PathLike,
    labels: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out_dir: PathLike,
    sieve_model: PathLike | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<image>.png`` for the ``superpixel.overlays`` images with the most queries this round.

    Sieved-out pixels are those of the round's training labels (``labels``, round r's store) that sieving
    with ``sieve_model`` (round r-1's model) drops; sieving works region by region and a region lies in one
    image, so sieving only the drawn images gives their pixels the same verdict as the train step.
    The folder is replaced as a whole (written under a temporary name, then renamed).
    """
    import cv2

    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    settings = experiment["superpixel"]
    rr = load_regions(regions)
    store = load_labels(labels)
    chosen = overlay_images(rr.query_image, int(settings["overlays"]))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    written: list[Path] = []
    try:
        if chosen.size:
            maps = read_pool_superpixels(superpixels, pool.masks.shape, images=chosen)
            if maps.num_superpixels != rr.num_superpixels:
                raise RegionsFileError(f"{regions}: made for {rr.num_superpixels} base superpixels, {superpixels} "
                                       f"has {maps.num_superpixels}")
            pixels = labelled_pixels(store, maps)
            keep = np.ones(len(pixels), dtype=bool)
            if settings["sieve"] and round_index > 0 and sieve_model is not None and len(pixels):
                confidence = label_confidences(sieve_model, pool.images[chosen], chosen, pixels,
                                               experiment["inference"]["batch_size"], "cpu")
                keep, _ = sieve_pixels(pixels, confidence, settings["sieve_min_size"], settings["sieve_points"])
            query_of_base = rr.query_of_base()
            merged = not np.array_equal(rr.parent, np.arange(rr.num_superpixels))
            palette = class_palette(info.num_classes)
            position = np.searchsorted(chosen, pixels.image)
            h, w = info.height, info.width
            for k, index in enumerate(chosen):
                ids = maps.labels[k].astype(np.int64) + maps.offsets[index]
                label = np.full((h, w), -1, dtype=np.int64)
                sieved = np.zeros((h, w), dtype=bool)
                mine = position == k
                label[pixels.y[mine], pixels.x[mine]] = pixels.cls[mine]
                sieved[pixels.y[mine & ~keep], pixels.x[mine & ~keep]] = True
                query = query_of_base[ids]
                caption = (f"{pool.stems[index]}  round {round_index}: {np.unique(query[query >= 0]).size} queries, "
                           f"{int((label >= 0).sum())} labelled px, {int(sieved.sum())} sieved out")
                canvas = draw_overlay(pool.images[index], ids, rr.parent[ids] if merged else None, query, label,
                                      sieved, palette, caption)
                path = tmp / f"{_safe_name(pool.stems[index])}.png"
                if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {path}")
                written.append(out_dir / path.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"round {round_index}: {len(written)} overlays -> {out_dir}")
    return written
