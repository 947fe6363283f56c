"""Superpixel acquisition: statistics, adjacency, adaptive merging, class-balanced scores, selection.

The Adaptive Superpixel method (Kim et al., ICCV 2023) and its baseline (Cai et al., CVPR 2021), over the
base superpixels of :mod:`alseg.superpixels` (global ids ``0 .. S-1``, see there). Torch-free and
vectorised: no function scans the image once per region, and merging never rewrites a label map.

Pipeline of a round (``docs/superpixels.md`` has the contract):

1. per base superpixel, from the previous model: :class:`SuperpixelStats` (pixels, sum of the pixel
   uncertainty ``u(x) = p2 / p1``, pixels predicted as each class) and, for merging, the mean softmax
   (:func:`superpixel_mean_probs`);
2. :func:`superpixel_edges` (4-neighbour label changes) and :func:`adaptive_merge`, giving ``parent``:
   the merged region of every base superpixel, named by its seed's id (``parent[s] == s`` for a root);
   without merging ``parent = arange(S)``;
3. :func:`candidate_regions`: the regions restricted to base superpixels never asked before;
4. :func:`region_scores` (random, uncertainty, class-balanced ``u(s) exp(-p(D(s)))``) and
   :func:`select_regions` (top B, ties at random);
5. :func:`query_of_base`: which base superpixels each query labels.

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
from scipy.special import rel_entr, xlogy

from alseg.superpixels import image_of_superpixel, offsets_from_counts

SUPERPIXEL_STRATEGIES = ("random", "uncertainty", "class_balanced")
CLASS_SHARE_MODES = ("region", "pixel")
#: JS distance threshold of the official code (natural log, so distances lie in [0, sqrt(ln 2)]).
DEFAULT_EPS = 0.1
_SKIP_WINDOW_STEPS = np.arange(16)  # merge: visited superpixels skipped per vectorised step
_EDGE_BITMAP_LIMIT = 1 << 24  # pairs of local ids up to which edges are deduplicated by a bitmap


# --------------------------------------------------------------------------------------------------
# Per-superpixel statistics of a model's output
# --------------------------------------------------------------------------------------------------


def pixel_uncertainty(top1: np.ndarray, top2: np.ndarray) -> np.ndarray:
    """``u(x) = p2 / p1`` per pixel (float32, same shape): 1 is most uncertain, 0 certain."""
    p1 = np.asarray(top1, dtype=np.float32)
    p2 = np.asarray(top2, dtype=np.float32)
    return np.divide(p2, p1, out=np.zeros_like(p1), where=p1 > 0)


@dataclass
class SuperpixelStats:
    """What acquisition needs of a model's output per base superpixel (global ids, pool order).

    Attributes
    ----------
    pixel_count : ndarray of int64, shape (S,)
    uncertainty_sum : ndarray of float64, shape (S,)
        Sum over the superpixel's pixels of ``u(x) = p2 / p1``; sums (not means) add up exactly over
        merged regions.
    pred_counts : ndarray of int64, shape (S, C)
        Pixels predicted (argmax) as each class.
    """

    pixel_count: np.ndarray
    uncertainty_sum: np.ndarray
    pred_counts: np.ndarray

    def __post_init__(self) -> None:
        s = self.pixel_count.shape[0]
        if self.uncertainty_sum.shape != (s,) or self.pred_counts.ndim != 2 or self.pred_counts.shape[0] != s:
            raise ValueError(
                f"inconsistent superpixel statistics: pixel_count {self.pixel_count.shape}, uncertainty_sum "
                f"{self.uncertainty_sum.shape}, pred_counts {self.pred_counts.shape}")

    @property
    def num_superpixels(self) -> int:
        return int(self.pixel_count.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.pred_counts.shape[1])

    @property
    def mean_uncertainty(self) -> np.ndarray:
        """``u(s)``, float64 (S,)."""
        return self.uncertainty_sum / np.maximum(self.pixel_count, 1)

    @staticmethod
    def concatenate(parts: list[SuperpixelStats]) -> SuperpixelStats:
        """Statistics of consecutive image batches, joined in pool order."""
        return SuperpixelStats(
            pixel_count=np.concatenate([p.pixel_count for p in parts]),
            uncertainty_sum=np.concatenate([p.uncertainty_sum for p in parts]),
            pred_counts=np.concatenate([p.pred_counts for p in parts]),
        )


def _batch_ids(labels: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat ids (intp, (B*H*W,)) of a batch's superpixels numbered from 0 across the batch, checked once."""
    labels = np.asarray(labels)
    counts = np.asarray(counts, dtype=np.int64)
    if labels.ndim != 3 or counts.shape != (labels.shape[0],):
        raise ValueError(f"expected labels (B, H, W) and counts (B,), got {labels.shape} and {counts.shape}")
    if labels.size:
        flat = labels.reshape(labels.shape[0], -1)
        if flat.min() < 0 or np.any(flat.max(axis=1) >= counts):
            raise ValueError("superpixel labels fall outside 0 .. count - 1 of their image")
    first = offsets_from_counts(counts)[:-1].astype(np.intp)
    ids = labels.astype(np.intp)
    if labels.shape[0] > 1:
        ids += first[:, None, None]
    return ids.reshape(-1), int(counts.sum())


def _stats_of_ids(ids: np.ndarray, total: int, top1: np.ndarray, top2: np.ndarray, pred: np.ndarray,
                  num_classes: int) -> SuperpixelStats:
    """Three bincounts over the pixels: count, sum of u, pixels per (superpixel, predicted class)."""
    pred = np.asarray(pred).reshape(-1)
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted classes fall outside 0 .. {num_classes - 1}")
    pred_counts = np.bincount(ids * num_classes + pred, minlength=total * num_classes).reshape(total, num_classes)
    return SuperpixelStats(
        pixel_count=pred_counts.sum(axis=1).astype(np.int64),
        uncertainty_sum=np.bincount(ids, weights=pixel_uncertainty(top1, top2).reshape(-1), minlength=total),
        pred_counts=pred_counts.astype(np.int64),
    )


def _mean_probs_of_ids(ids: np.ndarray, total: int, probs: np.ndarray, pixel_count: np.ndarray) -> np.ndarray:
    """One bincount per class over the pixels, divided by the pixel counts: float32 (total, C)."""
    sums = np.empty((total, probs.shape[1]), dtype=np.float64)
    for c in range(probs.shape[1]):
        sums[:, c] = np.bincount(ids, weights=probs[:, c].reshape(-1), minlength=total)
    return (sums / np.maximum(pixel_count, 1)[:, None]).astype(np.float32)


def _check_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[:1] + probs.shape[2:] != np.shape(labels):
        raise ValueError(f"expected probs (B, C, H, W) matching labels (B, H, W), got {probs.shape} and "
                         f"{np.shape(labels)}")
    return probs


def superpixel_stats(
    labels: np.ndarray,
    counts: np.ndarray,
    top1: np.ndarray,
    top2: np.ndarray,
    pred: np.ndarray,
    num_classes: int,
) -> SuperpixelStats:
    """Per-superpixel statistics of a batch of images from the inference dump's pixel fields.

    Two bincounts over the batch's pixels, whatever the number of superpixels.

    Parameters
    ----------
    labels : ndarray of int, shape (B, H, W)
        Local superpixel ids of the batch's images.
    counts : ndarray of int, shape (B,)
        ``S_i`` of each image (``numpy.diff(offsets)[images]``).
    top1, top2 : ndarray of float, shape (B, H, W)
        Largest and second largest class probability (``/pixel/top1``, ``/pixel/top2``).
    pred : ndarray of int, shape (B, H, W)
        Argmax class (``/pixel/pred``).
    num_classes : int

    Returns
    -------
    SuperpixelStats
        For the batch's ``sum(counts)`` superpixels, in order.
    """
    if not (np.shape(top1) == np.shape(top2) == np.shape(pred) == np.shape(labels)):
        raise ValueError(f"shapes differ: labels {np.shape(labels)}, top1 {np.shape(top1)}, top2 "
                         f"{np.shape(top2)}, pred {np.shape(pred)}")
    ids, total = _batch_ids(labels, counts)
    return _stats_of_ids(ids, total, top1, top2, pred, num_classes)


def superpixel_mean_probs(probs: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean softmax of every superpixel of a batch (what adaptive merging compares).

    One bincount per class over the batch's pixels.

    Parameters
    ----------
    probs : ndarray of float, shape (B, C, H, W)
        Softmax (or mean MC-dropout softmax) of the batch, channels first as a model returns it.
    labels : ndarray of int, shape (B, H, W)
        Local superpixel ids.
    counts : ndarray of int, shape (B,)
        ``S_i`` of each image.

    Returns
    -------
    ndarray of float32, shape (sum(counts), C)
    """
    probs = _check_probs(probs, labels)
    ids, total = _batch_ids(labels, counts)
    return _mean_probs_of_ids(ids, total, probs, np.bincount(ids, minlength=total))


def superpixel_stats_from_probs(
    probs: np.ndarray,
    labels: np.ndarray,
    counts: np.ndarray,
    top1: np.ndarray | None = None,
    top2: np.ndarray | None = None,
    pred: np.ndarray | None = None,
) -> tuple[SuperpixelStats, np.ndarray]:
    """Statistics and mean softmax of a batch in one go (what the infer step should call per batch).

    Parameters
    ----------
    probs : ndarray of float, shape (B, C, H, W)
    labels : ndarray of int, shape (B, H, W)
    counts : ndarray of int, shape (B,)
    top1, top2, pred : ndarray, shape (B, H, W), optional
        The pixel fields when already computed (the infer step has them for ``inference.h5``);
        otherwise taken from ``probs``.

    Returns
    -------
    stats : SuperpixelStats
    mean_prob : ndarray of float32, shape (sum(counts), C)
    """
    probs = _check_probs(probs, labels)
    num_classes = probs.shape[1]
    if top1 is None or top2 is None or pred is None:
        pred = probs.argmax(axis=1)
        if num_classes > 1:
            top = np.partition(probs, num_classes - 2, axis=1)
            top1, top2 = top[:, -1], top[:, -2]
        else:
            top1, top2 = probs[:, 0], np.zeros_like(probs[:, 0])
    ids, total = _batch_ids(labels, counts)
    stats = _stats_of_ids(ids, total, top1, top2, pred, num_classes)
    return stats, _mean_probs_of_ids(ids, total, probs, stats.pixel_count)


# --------------------------------------------------------------------------------------------------
# Adjacency
# --------------------------------------------------------------------------------------------------


def _image_edges(labels: np.ndarray) -> np.ndarray:
    """Touching pairs (int64 (E, 2), smaller first, sorted) of one local label map (H, W)."""
    horizontal = labels[:, :-1] != labels[:, 1:]
    vertical = labels[:-1, :] != labels[1:, :]
    a = np.concatenate([labels[:, :-1][horizontal], labels[:-1, :][vertical]]).astype(np.int64)
    b = np.concatenate([labels[:, 1:][horizontal], labels[1:, :][vertical]]).astype(np.int64)
    if a.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    low, high = np.minimum(a, b), np.maximum(a, b)
    width = int(high.max()) + 1
    keys = low * width + high
    if width * width <= _EDGE_BITMAP_LIMIT:  # mark and scan: no sort
        seen = np.zeros(width * width, dtype=bool)
        seen[keys] = True
        keys = np.flatnonzero(seen)
    else:
        keys = np.unique(keys)
    return np.stack([keys // width, keys % width], axis=1)


def superpixel_edges(labels: np.ndarray, first_ids: np.ndarray | None = None) -> np.ndarray:
    """Pairs of superpixels that touch (a label change between 4-neighbours), as global ids.

    Parameters
    ----------
    labels : ndarray of int, shape (B, H, W) or (H, W)
        Local superpixel ids.
    first_ids : ndarray of int, shape (B,), optional
        Global id of each image's superpixel 0 (``offsets[images]``); default: one image, 0.

    Returns
    -------
    ndarray of int64, shape (E, 2)
        Each touching pair once, smaller id first, sorted; pairs never cross images.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"expected labels (B, H, W) or (H, W), got {labels.shape}")
    first = np.zeros(1, dtype=np.int64) if first_ids is None else np.asarray(first_ids, dtype=np.int64)
    if first.shape != (labels.shape[0],):
        raise ValueError(f"first_ids has shape {first.shape}, expected ({labels.shape[0]},)")
    if labels.size and labels.min() < 0:
        raise ValueError("superpixel labels must be non-negative")
    parts = [_image_edges(labels[i]) + first[i] for i in range(labels.shape[0])]
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def adjacency_csr(edges: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric adjacency lists of an edge array.

    Parameters
    ----------
    edges : ndarray of int, shape (E, 2)
    num_nodes : int

    Returns
    -------
    indptr : ndarray of int64, shape (num_nodes + 1,)
    indices : ndarray of int64, shape (2E,)
        Neighbours of node s are ``indices[indptr[s]:indptr[s + 1]]``, ascending.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"edge ids fall outside 0 .. {num_nodes - 1}")
    if not _is_sorted(edges):
        edges = np.sort(edges, axis=1)
        edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    # (larger, smaller) pairs first: a stable sort by source then lists each node's neighbours ascending
    src = np.concatenate([edges[:, 1], edges[:, 0]])
    dst = np.concatenate([edges[:, 0], edges[:, 1]])
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_nodes))]).astype(np.int64)
    return indptr, dst[order]


def _is_sorted(edges: np.ndarray) -> bool:
    """Whether (E, 2) pairs are each (smaller, larger) and in lexicographic order."""
    if np.any(edges[:, 0] > edges[:, 1]):
        return False
    a, b = edges[:-1], edges[1:]
    return bool(np.all((a[:, 0] < b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] <= b[:, 1]))))


# --------------------------------------------------------------------------------------------------
# Adaptive merging
# --------------------------------------------------------------------------------------------------


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance of rows, as ``scipy.spatial.distance.jensenshannon`` (natural log).

    Rows are normalised to sum 1; the result is ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p + q) / 2``,
    in ``[0, sqrt(ln 2)]``.

    Parameters
    ----------
    p, q : ndarray of float, shape (..., C)

    Returns
    -------
    ndarray of float64, shape (...)
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = (p + q) / 2.0
    divergence = rel_entr(p, m).sum(axis=-1) + rel_entr(q, m).sum(axis=-1)
    return np.sqrt(np.maximum(divergence, 0.0) / 2.0)


def _js_distance_to_rows(probs: np.ndarray, neg_entropy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """JS distance of rows ``a`` and ``b`` of normalised ``probs``, as ``sqrt(H(m) - (H(p) + H(q)) / 2)``.

    ``neg_entropy[s] = sum_c p log p`` is computed once per superpixel, so a pair costs one ``xlogy``.
    Equal to :func:`jensen_shannon_distance` up to rounding (about 1e-8 in the distance).
    """
    m = (probs[a] + probs[b]) * 0.5
    divergence = 0.5 * (neg_entropy[a] + neg_entropy[b]) - xlogy(m, m).sum(axis=1)
    return np.sqrt(np.maximum(divergence, 0.0))


def _neighbours(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All neighbours of ``nodes`` (concatenated) and, for each, the position of the node it came from."""
    starts = indptr[nodes]
    lengths = indptr[nodes + 1] - starts
    total = int(lengths.sum())
    source = np.repeat(np.arange(nodes.size), lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return indices[starts[source] + within], source


def adaptive_merge(
    mean_prob: np.ndarray,
    uncertainty: np.ndarray,
    edges: np.ndarray,
    offsets: np.ndarray,
    eps: float = DEFAULT_EPS,
    fraction: float = 1.0,
) -> np.ndarray:
    """Merge adjacent base superpixels whose mean softmax is close to their seed's (Adaptive Superpixel).

    The official order, image by image: visit base superpixels in descending mean uncertainty (ties:
    smaller id first); an unvisited one becomes a seed; its region grows over adjacent unvisited
    superpixels whose Jensen-Shannon distance *to the seed's mean softmax* is below ``eps``, through any
    chain of such superpixels (the official code's flood fill: every member carries the seed's vector).
    Because every test compares with the seed, the region is the connected component of the seed among
    the unvisited superpixels within ``eps`` of it, whatever the order of the flood (we grow it breadth
    first, all images at once); only the seed order matters, and it is the official one.

    Partial merging (``fraction < 1``, the paper's "top 10%"): an image stops once ``ceil(fraction *
    S_i)`` of its superpixels are in regions (seeds included); the rest stay single. (The official code
    hard-codes 8192 * 0.1 and lets the pending flood overshoot a little; we stop exactly, taking the last
    level's joiners in ascending id.)

    Parameters
    ----------
    mean_prob : ndarray of float, shape (S, C)
        Mean softmax of every base superpixel (:func:`superpixel_mean_probs`).
    uncertainty : ndarray of float, shape (S,)
        Mean ``p2 / p1`` of every base superpixel (``SuperpixelStats.mean_uncertainty``).
    edges : ndarray of int, shape (E, 2)
        :func:`superpixel_edges` of the pool.
    offsets : ndarray of int, shape (N + 1,)
        Global id offsets of the pool's images.
    eps : float
        Distance threshold, > 0 (official 0.1).
    fraction : float
        Share of each image's superpixels that merging may visit, in (0, 1].

    Returns
    -------
    parent : ndarray of int64, shape (S,)
        Region of each base superpixel, named by its seed's global id (``parent[seed] == seed``).
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    offsets = np.asarray(offsets, dtype=np.int64)
    num_nodes = int(offsets[-1])
    mean_prob = np.asarray(mean_prob, dtype=np.float64)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    if mean_prob.ndim != 2 or mean_prob.shape[0] != num_nodes or uncertainty.shape != (num_nodes,):
        raise ValueError(f"expected mean_prob (S, C) and uncertainty (S,) with S = {num_nodes}, got "
                         f"{mean_prob.shape} and {uncertainty.shape}")
    if not np.isfinite(mean_prob).all() or mean_prob.min() < 0 or np.any(mean_prob.sum(axis=1) <= 0):
        raise ValueError("mean_prob must be finite, non-negative rows with a positive sum")
    if not np.isfinite(uncertainty).all():
        raise ValueError("uncertainty must be finite")
    if num_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    image = image_of_superpixel(offsets)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes
                       or np.any(image[edges[:, 0]] != image[edges[:, 1]])):
        raise ValueError("edges must join superpixels of the same image, with ids in 0 .. S - 1")
    indptr, indices = adjacency_csr(edges, num_nodes)
    probs = mean_prob / mean_prob.sum(axis=1, keepdims=True)
    neg_entropy = xlogy(probs, probs).sum(axis=1)

    num_images = offsets.size - 1
    order = np.lexsort((np.arange(num_nodes), -uncertainty, image))  # per image: most uncertain first
    cursor = offsets[:-1].copy()
    end = offsets[1:]
    sizes = np.diff(offsets)
    budget = np.ceil(fraction * sizes - 1e-9).astype(np.int64) if fraction < 1 else sizes
    used = np.zeros(num_images, dtype=np.int64)
    parent = np.full(num_nodes, -1, dtype=np.int64)
    frontier = np.zeros(0, dtype=np.int64)
    frontier_seed = np.zeros(0, dtype=np.int64)

    while True:
        # images whose last region is complete take their next unvisited seed
        busy = np.zeros(num_images, dtype=bool)
        busy[image[frontier]] = True
        pending = np.flatnonzero(~busy & (cursor < end) & (used < budget))
        ready = []
        while pending.size:  # move each idle image's cursor to its next unvisited superpixel, a window at a time
            window = cursor[pending, None] + _SKIP_WINDOW_STEPS
            unvisited = (window < end[pending, None]) & (parent[order[np.minimum(window, num_nodes - 1)]] < 0)
            found = unvisited.any(axis=1)
            cursor[pending[found]] = window[found, unvisited[found].argmax(axis=1)]
            cursor[pending[~found]] += _SKIP_WINDOW_STEPS.size
            ready.append(pending[found])
            pending = pending[~found]
            pending = pending[cursor[pending] < end[pending]]
        idle = np.concatenate(ready) if ready else pending
        if idle.size == 0 and frontier.size == 0:
            break
        seeds = order[cursor[idle]]
        cursor[idle] += 1
        parent[seeds] = seeds
        used[idle] += 1
        grows = used[idle] < budget[idle]
        frontier = np.concatenate([frontier, seeds[grows]])
        frontier_seed = np.concatenate([frontier_seed, seeds[grows]])
        if frontier.size == 0:
            continue
        # one breadth-first level of every growing region
        candidate, source = _neighbours(indptr, indices, frontier)
        free = parent[candidate] < 0
        candidate, seed_of = candidate[free], frontier_seed[source[free]]
        candidate, first = np.unique(candidate, return_index=True)  # one image grows one region at a time
        seed_of = seed_of[first]
        joins = _js_distance_to_rows(probs, neg_entropy, seed_of, candidate) < eps
        candidate, seed_of = candidate[joins], seed_of[joins]
        if fraction < 1 and candidate.size:
            img = image[candidate]  # ascending ids: grouped by image
            group_start = np.searchsorted(img, img, side="left")
            keep = (np.arange(img.size) - group_start) < (budget - used)[img]
            candidate, seed_of = candidate[keep], seed_of[keep]
        parent[candidate] = seed_of
        used += np.bincount(image[candidate], minlength=num_images)
        open_ = used[image[candidate]] < budget[image[candidate]]
        frontier, frontier_seed = candidate[open_], seed_of[open_]

    unvisited = parent < 0
    parent[unvisited] = np.flatnonzero(unvisited)
    return parent


def region_map(parent: np.ndarray, global_labels: np.ndarray) -> np.ndarray:
    """Merged region id of every pixel (``parent[global label]``), int64 of the labels' shape (for overlays)."""
    return np.asarray(parent)[np.asarray(global_labels)]


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
        Region of every base superpixel (:func:`adaptive_merge`, or ``arange(S)`` without merging).
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
    if mode not in CLASS_SHARE_MODES:
        raise ValueError(f"unknown class share mode {mode!r}; expected one of {CLASS_SHARE_MODES}")
    num_nodes = stats.num_superpixels
    total = float(stats.pixel_count.sum())
    if total <= 0:
        raise ValueError("the pool has no pixels")
    if mode == "pixel":
        return stats.pred_counts.sum(axis=0) / total
    parent = _check_parent(parent, num_nodes)
    region_pred = _aggregate_pred_counts(parent, stats.pred_counts, num_nodes)
    region_pixels = np.bincount(parent, weights=stats.pixel_count, minlength=num_nodes)
    roots = np.flatnonzero(region_pixels > 0)
    shares = np.bincount(region_pred[roots].argmax(axis=1), weights=region_pixels[roots],
                         minlength=stats.num_classes)
    return shares / total


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
