"""Superpixel acquisition: candidate regions, class-balanced scores, selection, the base ids of a query.

The Adaptive Superpixel method (Kim et al., ICCV 2023) and its baseline (Cai et al., CVPR 2021), over the
base superpixels of :mod:`alseg.superpixels` (global ids ``0 .. S-1``, see there). Torch-free and
vectorised: no function scans the image once per region, and merging never rewrites a label map.

Pipeline of a round (``docs/superpixels.md`` has the contract):

1. per base superpixel, from the previous model (:mod:`alseg.acquire.superpixel_stats`):
   :class:`~alseg.acquire.superpixel_stats.SuperpixelStats` (pixels, sum of the pixel uncertainty
   ``u(x) = p2 / p1``, pixels predicted as each class) and, for merging, the mean softmax
   (:func:`~alseg.acquire.superpixel_stats.superpixel_mean_probs`);
2. :func:`~alseg.acquire.superpixel_merge.superpixel_edges` (4-neighbour label changes) and
   :func:`~alseg.acquire.superpixel_merge.adaptive_merge` (:mod:`alseg.acquire.superpixel_merge`),
   giving ``parent``: the merged region of every base superpixel, named by its seed's id
   (``parent[s] == s`` for a root); without merging ``parent = arange(S)``;
3. :func:`candidate_regions`: the regions restricted to base superpixels never asked before;
4. :func:`region_scores` (random, uncertainty, class-balanced ``u(s) exp(-p(D(s)))``) and
   :func:`select_regions` (top B, ties at random);
5. :func:`query_of_base`: which base superpixels each query labels (steps 3 to 5 are this module's, with
   :func:`merge_summary`).

Rule for regions that overlap earlier queries (no pixel is paid twice): a base superpixel that was ever
asked (answered or skipped) is never part of a new query. A merged region is offered as its part that was
never asked; it is eligible while that part is not empty, it costs one click, its score, size and
predicted class are those of that part, and the annotator's dominant label (over that part only) labels
only that part. Labels therefore stay a function of base superpixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alseg.acquire.superpixel_stats import SuperpixelStats
from alseg.superpixels import image_of_superpixel

SUPERPIXEL_STRATEGIES = ("random", "uncertainty", "class_balanced")
CLASS_SHARE_MODES = ("region", "pixel")


# --------------------------------------------------------------------------------------------------
# Scores and selection
# --------------------------------------------------------------------------------------------------


@dataclass
class CandidateRegions:
    """Regions that may be asked: each merged region's part never asked before (non-empty parts only).

    Attributes
    ----------
    region : ndarray of int64, shape (R,)
        Region id (its seed's global base id), ascending.
    image : ndarray of int64, shape (R,)
    pixel_count : ndarray of int64, shape (R,)
        Pixels of the part never asked.
    base_count : ndarray of int64, shape (R,)
        Base superpixels of that part.
    uncertainty : ndarray of float64, shape (R,)
        ``u(s)``: mean of ``p2 / p1`` over those pixels.
    dominant_pred : ndarray of int64, shape (R,)
        ``D(s)``: the class most pixels of the part are predicted as (ties: smaller class id).
    """

    region: np.ndarray
    image: np.ndarray
    pixel_count: np.ndarray
    base_count: np.ndarray
    uncertainty: np.ndarray
    dominant_pred: np.ndarray

    def __len__(self) -> int:
        return int(self.region.size)

    @staticmethod
    def concatenate(parts: list[CandidateRegions]) -> CandidateRegions:
        """The candidates of consecutive chunks of images (global ids and image indices), joined in pool order."""
        return CandidateRegions(*(np.concatenate([getattr(p, name) for p in parts]) for name in (
            "region", "image", "pixel_count", "base_count", "uncertainty", "dominant_pred")))


def _check_parent(parent: np.ndarray, num_nodes: int) -> np.ndarray:
    parent = np.asarray(parent, dtype=np.int64)
    if parent.shape != (num_nodes,):
        raise ValueError(f"parent has shape {parent.shape}, expected ({num_nodes},)")
    if num_nodes and (parent.min() < 0 or parent.max() >= num_nodes or np.any(parent[parent] != parent)):
        raise ValueError("parent must map every base superpixel to a root (parent[root] == root)")
    return parent


def _aggregate_pred_counts(roots: np.ndarray, pred_counts: np.ndarray, num_nodes: int) -> np.ndarray:
    """Sum ``pred_counts`` rows (int64 (n, C)) into their roots: int64 (num_nodes, C), one bincount per class."""
    return np.stack([np.bincount(roots, weights=pred_counts[:, c], minlength=num_nodes)
                     for c in range(pred_counts.shape[1])], axis=1).astype(np.int64)


def candidate_regions(
    parent: np.ndarray,
    stats: SuperpixelStats,
    asked: np.ndarray,
    offsets: np.ndarray,
) -> CandidateRegions:
    """The regions that may be asked and their scores' ingredients (module docstring: the overlap rule).

    Parameters
    ----------
    parent : ndarray of int, shape (S,)
        Region of every base superpixel (:func:`~alseg.acquire.superpixel_merge.adaptive_merge`, or
        ``arange(S)`` without merging).
    stats : SuperpixelStats
        Of the base superpixels.
    asked : ndarray of bool, shape (S,)
        Base superpixels asked in an earlier round (answered or skipped).
    offsets : ndarray of int, shape (N + 1,)

    Returns
    -------
    CandidateRegions
    """
    num_nodes = stats.num_superpixels
    parent = _check_parent(parent, num_nodes)
    asked = np.asarray(asked, dtype=bool)
    if asked.shape != (num_nodes,):
        raise ValueError(f"asked has shape {asked.shape}, expected ({num_nodes},)")
    if int(np.asarray(offsets)[-1]) != num_nodes:
        raise ValueError(f"offsets end at {int(np.asarray(offsets)[-1])}, expected S = {num_nodes}")
    open_ = ~asked
    roots = parent[open_]
    pixels = np.bincount(roots, weights=stats.pixel_count[open_], minlength=num_nodes).astype(np.int64)
    bases = np.bincount(roots, minlength=num_nodes).astype(np.int64)
    usum = np.bincount(roots, weights=stats.uncertainty_sum[open_], minlength=num_nodes)
    regions = np.flatnonzero(bases > 0)
    pred = _aggregate_pred_counts(roots, stats.pred_counts[open_], num_nodes)[regions]
    return CandidateRegions(
        region=regions.astype(np.int64),
        image=image_of_superpixel(offsets)[regions],
        pixel_count=pixels[regions],
        base_count=bases[regions],
        uncertainty=usum[regions] / np.maximum(pixels[regions], 1),
        dominant_pred=pred.argmax(axis=1).astype(np.int64),
    )


def predicted_class_pixels(parent: np.ndarray, stats: SuperpixelStats, mode: str = "region") -> np.ndarray:
    """The pixels predicted as each class (float64 (C,)), the numerator of :func:`predicted_class_shares`.

    Integer-valued: the sums over consecutive chunks of images (regions never cross images) add up to the
    pool's exactly.
    """
    if mode not in CLASS_SHARE_MODES:
        raise ValueError(f"unknown class share mode {mode!r}; expected one of {CLASS_SHARE_MODES}")
    num_nodes = stats.num_superpixels
    if mode == "pixel":
        return stats.pred_counts.sum(axis=0).astype(np.float64)
    parent = _check_parent(parent, num_nodes)
    region_pred = _aggregate_pred_counts(parent, stats.pred_counts, num_nodes)
    region_pixels = np.bincount(parent, weights=stats.pixel_count, minlength=num_nodes)
    roots = np.flatnonzero(region_pixels > 0)
    return np.bincount(region_pred[roots].argmax(axis=1), weights=region_pixels[roots], minlength=stats.num_classes)


def predicted_class_shares(parent: np.ndarray, stats: SuperpixelStats, mode: str = "region") -> np.ndarray:
    """``p(c)``: the share of pool pixels predicted as class c, at the resolution of the statistics.

    Parameters
    ----------
    parent : ndarray of int, shape (S,)
        Current regions (all of them, asked or not: the paper's ``S_t``).
    stats : SuperpixelStats
    mode : {"region", "pixel"}
        ``region`` (the paper's eq. 6 and the official code): a pixel counts for its region's predicted
        dominant class. ``pixel``: a pixel counts for its own predicted class.

    Returns
    -------
    ndarray of float64, shape (C,)
        Sums to 1. Numerator and denominator count the same pixels (the official code divides
        half-resolution counts by a full-resolution total, so its weights barely vary).
    """
    counts = predicted_class_pixels(parent, stats, mode)
    total = float(stats.pixel_count.sum())
    if total <= 0:
        raise ValueError("the pool has no pixels")
    return counts / total


def region_scores(
    regions: CandidateRegions,
    strategy: str,
    class_shares: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Acquisition score of every candidate region (larger is asked first).

    Parameters
    ----------
    regions : CandidateRegions
    strategy : {"random", "uncertainty", "class_balanced"}
        ``uncertainty``: ``u(s)``; ``class_balanced``: ``u(s) * exp(-p(D(s)))`` (paper eq. 7);
        ``random``: a uniform draw per region (selection is then uniform without replacement).
    class_shares : ndarray of float, shape (C,), optional
        ``p(c)`` (:func:`predicted_class_shares`); needed by ``class_balanced``.
    rng : numpy.random.Generator, optional
        Needed by ``random``.

    Returns
    -------
    ndarray of float64, shape (R,)
    """
    if strategy == "uncertainty":
        return regions.uncertainty.astype(np.float64)
    if strategy == "class_balanced":
        if class_shares is None:
            raise ValueError("class_balanced scores need class_shares")
        shares = np.asarray(class_shares, dtype=np.float64)
        if shares.ndim != 1 or (len(regions) and regions.dominant_pred.max() >= shares.size):
            raise ValueError(f"class_shares of shape {shares.shape} do not cover the predicted classes")
        return regions.uncertainty * np.exp(-shares[regions.dominant_pred])
    if strategy == "random":
        if rng is None:
            raise ValueError("random scores need an rng")
        return rng.random(len(regions))
    raise ValueError(f"unknown superpixel strategy {strategy!r}; expected one of {SUPERPIXEL_STRATEGIES}")


@dataclass
class RegionSelection:
    """Chosen regions in rank order (rank 0 = highest score).

    Attributes
    ----------
    index : ndarray of int64, shape (Q,)
        Positions in the :class:`CandidateRegions` they were chosen from.
    region, image, pixel_count, base_count, dominant_pred : ndarray of int64, shape (Q,)
        Copied from the candidates.
    score, uncertainty : ndarray of float64, shape (Q,)
    rank : ndarray of int64, shape (Q,)
        ``0 .. Q-1``; equal scores are ordered at random.
    """

    index: np.ndarray
    region: np.ndarray
    image: np.ndarray
    pixel_count: np.ndarray
    base_count: np.ndarray
    dominant_pred: np.ndarray
    score: np.ndarray
    uncertainty: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)


def select_regions(
    regions: CandidateRegions,
    scores: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    allow_fewer: bool = False,
) -> RegionSelection:
    """The ``budget`` highest-scored candidate regions (one click each), ties broken at random.

    Parameters
    ----------
    regions : CandidateRegions
        Only regions with a part never asked, so nothing is paid twice.
    scores : ndarray of float, shape (R,)
        :func:`region_scores`; NaN is an error.
    budget : int
        Clicks (regions) to spend, >= 1.
    rng : numpy.random.Generator
    allow_fewer : bool
        When fewer than ``budget`` regions are left: take them all (True) or raise (False).

    Returns
    -------
    RegionSelection
    """
    scores = np.asarray(scores, dtype=np.float64)
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if scores.shape != (len(regions),):
        raise ValueError(f"scores have shape {scores.shape}, expected ({len(regions)},)")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN")
    if budget > len(regions):
        if not allow_fewer:
            raise ValueError(f"budget of {budget} regions but only {len(regions)} regions are left unasked")
        budget = len(regions)
    tie_break = rng.random(len(regions))
    index = np.lexsort((tie_break, -scores))[:budget].astype(np.int64)
    return RegionSelection(
        index=index,
        region=regions.region[index],
        image=regions.image[index],
        pixel_count=regions.pixel_count[index],
        base_count=regions.base_count[index],
        dominant_pred=regions.dominant_pred[index],
        score=scores[index],
        uncertainty=regions.uncertainty[index],
        rank=np.arange(index.size, dtype=np.int64),
    )


def query_of_base(parent: np.ndarray, asked: np.ndarray, selected_regions: np.ndarray) -> np.ndarray:
    """Which query labels each base superpixel: the position of its region in ``selected_regions``.

    Parameters
    ----------
    parent : ndarray of int, shape (S,)
    asked : ndarray of bool, shape (S,)
        Asked before this round: never part of a new query.
    selected_regions : ndarray of int, shape (Q,)
        Region ids of this round's queries (``RegionSelection.region``), in query order.

    Returns
    -------
    ndarray of int64, shape (S,)
        Query index ``0 .. Q-1``, or -1 for a base superpixel no query covers. ``flatnonzero(q >= 0)``
        lists the base ids each query covers (the audit side file).
    """
    parent = np.asarray(parent, dtype=np.int64)
    selected = np.asarray(selected_regions, dtype=np.int64)
    if np.unique(selected).size != selected.size:
        raise ValueError("a region is selected twice")
    lookup = np.full(parent.size, -1, dtype=np.int64)
    lookup[selected] = np.arange(selected.size)
    query = lookup[parent]
    query[np.asarray(asked, dtype=bool)] = -1
    return query


def merge_summary(parent: np.ndarray, offsets: np.ndarray) -> dict[str, float]:
    """Counts for logs and reports: base superpixels, regions, mean bases per region."""
    parent = np.asarray(parent)
    roots = int(np.count_nonzero(parent == np.arange(parent.size)))
    images = max(np.asarray(offsets).size - 1, 1)
    return {
        "base_superpixels": int(parent.size),
        "regions": roots,
        "bases_per_region": parent.size / max(roots, 1),
        "regions_per_image": roots / images,
        "merged_share": float(np.mean(parent != np.arange(parent.size))) if parent.size else math.nan,
    }
