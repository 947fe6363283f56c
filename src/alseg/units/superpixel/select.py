"""Selection of superpixel queries: adaptive merging, the never-asked part of each region, scores, top B.

Round 0 draws ``initial_budget`` base superpixels at random. Round r >= 1 merges the base superpixels with
round r-1's model (``superpixel.merge``; AMSP), keeps each region's part never asked before (no pixel is
paid twice), scores the parts (``strategy``: random, uncertainty, class_balanced) and asks the ``budget``
best. The algorithms are in :mod:`alseg.acquire.superpixel`; docs/superpixels.md has the method.

Regions never cross images, so merging, the candidate regions and the class shares go through the pool a
chunk of images at a time (:meth:`~alseg.units.base.Job.image_chunks`): the step holds one chunk's
superpixel maps and (S, C) statistics, and per-superpixel vectors of the pool; the result is the whole
pool's at once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alseg.acquire.superpixel import (
    CandidateRegions,
    candidate_regions,
    merge_summary,
    predicted_class_pixels,
    query_of_base,
    region_scores,
    select_regions,
)
from alseg.acquire.superpixel_merge import adaptive_merge, superpixel_edges
from alseg.acquire.superpixel_stats import SuperpixelStats
from alseg.inference_file import InferenceDump, InferenceFileError, dump_name, read_superpixel_fields
from alseg.joblog import log
from alseg.queries import Table, query_table
from alseg.units.base import Job
from alseg.units.superpixel.files import RoundRegions, base_pixel_counts, read_pool_superpixels, save_regions

PathLike = str | os.PathLike[str]


def pool_superpixel_stats(
    inference: list[Path] | None,
    pixel_count: np.ndarray,
    num_classes: int,
    need_mean_prob: bool,
    rows: slice | None = None,
) -> tuple[SuperpixelStats, np.ndarray | None, str]:
    """Per-base-superpixel statistics of the previous model (or empty ones without a model).

    Parameters
    ----------
    inference : list of paths, or None
        Round r-1's inference dump (its file, or its shard files); None: no model yet (round 0, or random
        selection without merging), so uncertainty and predictions are zero.
    pixel_count : ndarray of int64, shape (s,)
        Of the superpixel file (its ``rows``): the dump must have been made with the same superpixels.
    num_classes : int
    need_mean_prob : bool
        Read ``mean_prob`` too (merging).
    rows : slice, optional
        The global ids to read (a chunk of images); None: all of them.

    Returns
    -------
    stats, mean_prob (or None), model checksum ("" without a model)
    """
    s = pixel_count.size
    if inference is None:
        return SuperpixelStats(pixel_count, np.zeros(s), np.zeros((s, num_classes), dtype=np.int64)), None, ""
    names = ["pixel_count", "uncertainty_sum", "pred_counts"] + (["mean_prob"] if need_mean_prob else [])
    fields = read_superpixel_fields(inference, names, rows)
    if fields["pixel_count"].shape != (s,) or not np.array_equal(fields["pixel_count"], pixel_count):
        raise InferenceFileError(f"{dump_name(inference)}: its superpixel statistics ({fields['pixel_count'].shape[0]} "
                                 f"superpixels) were made with other base superpixels than this experiment's ({s}); "
                                 "delete it to let the workflow rebuild it")
    if fields["pred_counts"].shape != (s, num_classes):
        raise InferenceFileError(f"{dump_name(inference)}: pred_counts of shape {fields['pred_counts'].shape}, "
                                 f"expected ({s}, {num_classes})")
    stats = SuperpixelStats(fields["pixel_count"].astype(np.int64), fields["uncertainty_sum"].astype(np.float64),
                            fields["pred_counts"].astype(np.int64))
    return stats, fields.get("mean_prob"), str(fields.attrs.get("model", ""))


def round_parent(
    labels: np.ndarray,
    offsets: np.ndarray,
    stats: SuperpixelStats,
    mean_prob: np.ndarray | None,
    eps: float,
    fraction: float,
) -> np.ndarray:
    """Adaptive merge of the base superpixels of some consecutive images (``parent``, int64 (s,), ids from
    their first superpixel); ``arange(s)`` without ``mean_prob``.

    ``labels``: their local maps (b, H, W); ``offsets``: int64 (b + 1,) from 0; ``stats`` and ``mean_prob``:
    of their superpixels.
    """
    if mean_prob is None:
        return np.arange(int(offsets[-1]), dtype=np.int64)
    edges = superpixel_edges(labels, offsets[:-1])
    return adaptive_merge(mean_prob, stats.mean_uncertainty, edges, offsets, eps, fraction)


def _dump_rows(inference: list[Path], num_superpixels: int) -> None:
    """A dump with another number of superpixel rows than the superpixel file was made with other ones."""
    with InferenceDump(inference) as dump:
        rows = sum(h5["superpixel/pixel_count"].shape[0] for h5 in dump.files if "superpixel/pixel_count" in h5)
    if rows != num_superpixels:
        raise InferenceFileError(f"{dump_name(inference)}: its superpixel statistics ({rows} superpixels) were made "
                                 f"with other base superpixels than this experiment's ({num_superpixels}); delete it "
                                 "to let the workflow rebuild it")


@dataclass
class PoolRegions:
    """What selection needs of the whole pool, gathered a chunk of images at a time.

    ``parent`` int64 (S,) (:func:`round_parent`), the candidate regions, the pixels predicted as each class
    (:func:`~alseg.acquire.superpixel.predicted_class_pixels`, float64 (C,)), the model's checksum and the
    seconds merging took.
    """

    parent: np.ndarray
    regions: CandidateRegions
    class_pixels: np.ndarray
    model: str
    merge_seconds: float


def pool_regions(job: Job, superpixels: Path, offsets: np.ndarray, pixel_count: np.ndarray, asked: np.ndarray,
                 inference: list[Path] | None, merge: tuple[float, float] | None,
                 class_share: str | None) -> PoolRegions:
    """The pool's ``parent``, candidate regions and class pixels, a chunk of images at a time.

    ``inference``: round r-1's dump (None: no model); ``merge``: (eps, fraction) of adaptive merging, or None;
    ``class_share``: the mode of the class pixels (:func:`~alseg.acquire.superpixel.predicted_class_pixels`),
    None where the strategy does not read them.
    """
    info = job.info
    if inference is not None:
        _dump_rows(inference, int(offsets[-1]))
    parents, regions, model, seconds = [], [], "", 0.0
    class_pixels = np.zeros(info.num_classes)
    for start, stop in job.image_chunks():
        rows = slice(int(offsets[start]), int(offsets[stop]))
        local = offsets[start : stop + 1] - offsets[start]
        stats, mean_prob, model = pool_superpixel_stats(inference, pixel_count[rows], info.num_classes,
                                                        merge is not None, rows)
        started = time.perf_counter()
        if merge is not None:
            maps = read_pool_superpixels(superpixels, job.pool_shape, slice(start, stop))
            parent = round_parent(maps.labels, local, stats, mean_prob, *merge)
        else:
            parent = np.arange(rows.stop - rows.start, dtype=np.int64)
        seconds += time.perf_counter() - started
        chunk = candidate_regions(parent, stats, asked[rows], local)
        chunk.region += rows.start
        chunk.image += start
        if class_share is not None:
            class_pixels += predicted_class_pixels(parent, stats, class_share)
        parents.append(parent + rows.start)
        regions.append(chunk)
    return PoolRegions(np.concatenate(parents) if parents else np.zeros(0, np.int64),
                       CandidateRegions.concatenate(regions), class_pixels, model, seconds)


def grouped_bases(query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base ids covered by a query and their query, grouped by query (ascending ids within one)."""
    base_id = np.flatnonzero(np.asarray(query) >= 0).astype(np.int64)
    base_query = np.asarray(query)[base_id].astype(np.int64)
    order = np.lexsort((base_id, base_query))
    return base_id[order], base_query[order]


def select_superpixel_queries(job: Job) -> Table:
    """Round ``job.round_index``'s superpixel queries; writes the round's ``regions`` file.

    Raises
    ------
    ValueError
        Every base superpixel was asked already; a strategy or merging without round r-1's dump
        (``inference``); files that do not match (superpixel file of another size, stale dump).
    """
    from alseg.units.superpixel.labels import asked_superpixels

    settings, r = job.settings, job.round_index
    superpixels = job.file("superpixels")
    sp = settings["superpixel"]
    # no image: the file's checks (format, the pool's shape, offsets), not its maps
    offsets = read_pool_superpixels(superpixels, job.pool_shape, slice(0, 0)).offsets
    pixel_count = base_pixel_counts(superpixels)
    num_superpixels = int(offsets[-1])
    asked = asked_superpixels(job.previous_store(), num_superpixels)
    strategy = "random" if r == 0 else settings["strategy"]
    budget = int(settings["initial_budget"] if r == 0 else settings["budget"])
    merge = r > 0 and bool(sp["merge"])
    seed = job.seed("select_queries")
    rng = np.random.default_rng(seed)
    needs_model = strategy != "random" or merge
    inference = job.optional_dump()
    if needs_model and inference is None:
        raise ValueError(f"round {r}: strategy {strategy!r}{' with merging' if merge else ''} needs the previous "
                         "round's inference dump")
    pool = pool_regions(job, superpixels, offsets, pixel_count, asked, inference if needs_model else None,
                        (sp["eps"], sp["merge_fraction"]) if merge else None,
                        sp["class_share"] if strategy == "class_balanced" else None)
    parent, regions = pool.parent, pool.regions
    if merge:
        summary = merge_summary(parent, offsets)
        log(f"round {r}: merged {summary['base_superpixels']} base superpixels into {summary['regions']} regions "
            f"({summary['bases_per_region']:.2f} per region, eps {sp['eps']}, fraction {sp['merge_fraction']}) "
            f"in {pool.merge_seconds:.2f} s")
    if len(regions) == 0:
        raise ValueError(f"{superpixels}: all {num_superpixels} base superpixels of the pool were asked before "
                         f"round {r}; lower 'round' or the budget")
    shares = class_shares(pool.class_pixels, pixel_count) if strategy == "class_balanced" else None
    scores = region_scores(regions, strategy, shares, rng)
    if budget > len(regions):
        log(f"warning: round {r} asks for {budget} regions but only {len(regions)} have a part never asked; "
            f"asking {len(regions)}")
    chosen = select_regions(regions, scores, budget, rng, allow_fewer=True)
    base_id, base_query = grouped_bases(query_of_base(parent, asked, chosen.region))
    save_regions(job.file("regions"), RoundRegions(parent=parent, query_region=chosen.region,
                                                   query_image=chosen.image, base_id=base_id, base_query=base_query,
                                                   base_pixels=pixel_count[base_id]), r)
    log(f"round {r}: {len(chosen)} {strategy} superpixel queries ({int(chosen.pixel_count.sum())} px, "
        f"{base_id.size} base superpixels, {np.unique(chosen.image).size} images; {len(regions)} candidate regions)")
    return query_table(r, chosen.image, job.stems, "superpixel", strategy, seed, pool.model, superpixel=chosen.region,
                       score=chosen.score if strategy != "random" else np.full(len(chosen), np.nan),
                       rank=chosen.rank, pixels=chosen.pixel_count)


def class_shares(class_pixels: np.ndarray, pixel_count: np.ndarray) -> np.ndarray:
    """``p(c)`` (:func:`~alseg.acquire.superpixel.predicted_class_shares`) from the class pixels of the pool."""
    total = float(pixel_count.sum())
    if total <= 0:
        raise ValueError("the pool has no pixels")
    return class_pixels / total
