"""Adaptive merging of base superpixels (Kim et al., ICCV 2023): adjacency, Jensen-Shannon distance, merge.

* :func:`superpixel_edges`: pairs of base superpixels that touch (4-neighbour label changes), as global
  ids; :func:`adjacency_csr`: the symmetric adjacency lists of such pairs;
* :func:`jensen_shannon_distance`: the distance merging compares mean softmax vectors with;
* :func:`adaptive_merge`: ``parent``, the merged region of every base superpixel, named by its seed's id
  (``parent[s] == s`` for a root); :func:`region_map`: the region of every pixel (for overlays).

Torch-free and vectorised; merging never rewrites a label map. The statistics merging reads are in
:mod:`alseg.acquire.superpixel_stats`; the candidates, scores and selection of a round in
:mod:`alseg.acquire.superpixel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import rel_entr, xlogy

from alseg.superpixels import image_of_superpixel

#: JS distance threshold of the official code (natural log, so distances lie in [0, sqrt(ln 2)]).
DEFAULT_EPS = 0.1
_SKIP_WINDOW_STEPS = np.arange(16)  # merge: visited superpixels skipped per vectorised step
_EDGE_BITMAP_LIMIT = 1 << 24  # pairs of local ids up to which edges are deduplicated by a bitmap


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


@dataclass
class _Flood:
    """The state of :func:`adaptive_merge`, all images at once.

    image : (S,) the image of each superpixel; order : (S,) superpixels in visiting order (per image, most
    uncertain first); cursor, end : (N,) each image's next and end position in ``order``; budget, used :
    (N,) superpixels an image may put in regions and has put there; parent : (S,) the region's seed, -1
    while unvisited; frontier, frontier_seed : the last level's joiners of the growing regions, and their
    seeds.
    """

    image: np.ndarray
    order: np.ndarray
    cursor: np.ndarray
    end: np.ndarray
    budget: np.ndarray
    used: np.ndarray
    parent: np.ndarray
    frontier: np.ndarray
    frontier_seed: np.ndarray

    @classmethod
    def start(cls, image: np.ndarray, uncertainty: np.ndarray, offsets: np.ndarray, fraction: float) -> _Flood:
        num_nodes = int(offsets[-1])
        sizes = np.diff(offsets)
        return cls(
            image=image,
            order=np.lexsort((np.arange(num_nodes), -uncertainty, image)),  # per image: most uncertain first
            cursor=offsets[:-1].copy(),
            end=offsets[1:],
            budget=np.ceil(fraction * sizes - 1e-9).astype(np.int64) if fraction < 1 else sizes,
            used=np.zeros(offsets.size - 1, dtype=np.int64),
            parent=np.full(num_nodes, -1, dtype=np.int64),
            frontier=np.zeros(0, dtype=np.int64),
            frontier_seed=np.zeros(0, dtype=np.int64),
        )

    def idle_images(self) -> np.ndarray:
        """Images whose last region is complete and that may start another, their cursor moved to their
        next unvisited superpixel (a window of ``_SKIP_WINDOW_STEPS`` at a time)."""
        busy = np.zeros(self.cursor.size, dtype=bool)
        busy[self.image[self.frontier]] = True
        pending = np.flatnonzero(~busy & (self.cursor < self.end) & (self.used < self.budget))
        last = self.parent.size - 1
        ready = []
        while pending.size:
            window = self.cursor[pending, None] + _SKIP_WINDOW_STEPS
            unvisited = (window < self.end[pending, None]) & (self.parent[self.order[np.minimum(window, last)]] < 0)
            found = unvisited.any(axis=1)
            self.cursor[pending[found]] = window[found, unvisited[found].argmax(axis=1)]
            self.cursor[pending[~found]] += _SKIP_WINDOW_STEPS.size
            ready.append(pending[found])
            pending = pending[~found]
            pending = pending[self.cursor[pending] < self.end[pending]]
        return np.concatenate(ready) if ready else pending

    def plant_seeds(self, idle: np.ndarray) -> None:
        """Each idle image's next superpixel becomes a seed; those that may grow join the frontier."""
        seeds = self.order[self.cursor[idle]]
        self.cursor[idle] += 1
        self.parent[seeds] = seeds
        self.used[idle] += 1
        grows = self.used[idle] < self.budget[idle]
        self.frontier = np.concatenate([self.frontier, seeds[grows]])
        self.frontier_seed = np.concatenate([self.frontier_seed, seeds[grows]])

    def grow(self, indptr: np.ndarray, indices: np.ndarray, probs: np.ndarray, neg_entropy: np.ndarray,
             eps: float, fraction: float) -> None:
        """One breadth-first level of every growing region: unvisited neighbours within ``eps`` of the
        seed join it (with ``fraction < 1``, only while the image's budget lasts, in ascending id)."""
        candidate, source = _neighbours(indptr, indices, self.frontier)
        free = self.parent[candidate] < 0
        candidate, seed_of = candidate[free], self.frontier_seed[source[free]]
        candidate, first = np.unique(candidate, return_index=True)  # one image grows one region at a time
        seed_of = seed_of[first]
        joins = _js_distance_to_rows(probs, neg_entropy, seed_of, candidate) < eps
        candidate, seed_of = candidate[joins], seed_of[joins]
        if fraction < 1 and candidate.size:
            img = self.image[candidate]  # ascending ids: grouped by image
            group_start = np.searchsorted(img, img, side="left")
            keep = (np.arange(img.size) - group_start) < (self.budget - self.used)[img]
            candidate, seed_of = candidate[keep], seed_of[keep]
        self.parent[candidate] = seed_of
        self.used += np.bincount(self.image[candidate], minlength=self.used.size)
        open_ = self.used[self.image[candidate]] < self.budget[self.image[candidate]]
        self.frontier, self.frontier_seed = candidate[open_], seed_of[open_]


def _checked_merge_inputs(mean_prob: np.ndarray, uncertainty: np.ndarray, offsets: np.ndarray, eps: float,
                          fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``offsets`` as int64, ``mean_prob`` and ``uncertainty`` as float64, after checking them."""
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
    return offsets, mean_prob, uncertainty


def _checked_edges(edges: np.ndarray, image: np.ndarray, num_nodes: int) -> np.ndarray:
    """``edges`` as int64 (E, 2), after checking that each joins two superpixels of one image."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes
                       or np.any(image[edges[:, 0]] != image[edges[:, 1]])):
        raise ValueError("edges must join superpixels of the same image, with ids in 0 .. S - 1")
    return edges


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
        Mean softmax of every base superpixel (:func:`alseg.acquire.superpixel_stats.superpixel_mean_probs`).
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
    offsets, mean_prob, uncertainty = _checked_merge_inputs(mean_prob, uncertainty, offsets, eps, fraction)
    num_nodes = int(offsets[-1])
    if num_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    image = image_of_superpixel(offsets)
    indptr, indices = adjacency_csr(_checked_edges(edges, image, num_nodes), num_nodes)
    probs = mean_prob / mean_prob.sum(axis=1, keepdims=True)
    neg_entropy = xlogy(probs, probs).sum(axis=1)

    flood = _Flood.start(image, uncertainty, offsets, fraction)
    while True:
        idle = flood.idle_images()
        if idle.size == 0 and flood.frontier.size == 0:
            break
        flood.plant_seeds(idle)
        if flood.frontier.size == 0:
            continue
        flood.grow(indptr, indices, probs, neg_entropy, eps, fraction)

    parent = flood.parent
    unvisited = parent < 0
    parent[unvisited] = np.flatnonzero(unvisited)
    return parent


def region_map(parent: np.ndarray, global_labels: np.ndarray) -> np.ndarray:
    """Merged region id of every pixel (``parent[global label]``), int64 of the labels' shape (for overlays)."""
    return np.asarray(parent)[np.asarray(global_labels)]

