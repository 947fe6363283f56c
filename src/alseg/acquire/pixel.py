"""PixelPick pixel acquisition: uncertainty scores and the per-image top-M% uniform draw.

Every function is vectorised over pixels; the only Python loop is over images. An image's draw reads only
its eligible pixels whose priority reaches its draw pool's cut (:func:`candidate_members`, ties included):
the inference dump keeps just those (:mod:`alseg.pixel_dump`), and :func:`select_from_candidates` draws
from them exactly as :func:`select_pixels` draws from the whole map, a chunk of images at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PIXEL_STRATEGIES = ("random", "least_confidence", "margin", "entropy")


def least_confidence_scores(top1: np.ndarray) -> np.ndarray:
    """``1 - p1`` per pixel (float32, same shape as ``top1``): larger is more uncertain."""
    return 1.0 - top1.astype(np.float32)


def margin_scores(top1: np.ndarray, top2: np.ndarray) -> np.ndarray:
    """``p1 - p2`` per pixel (float32): *smaller* is more uncertain."""
    return top1.astype(np.float32) - top2.astype(np.float32)


def entropy_scores(probabilities: np.ndarray, axis: int = 1, eps: float = 1e-12) -> np.ndarray:
    """``-sum_c p_c log(p_c + eps)`` over ``axis`` (float32): larger is more uncertain.

    The inference dump stores this per pixel already; this is the reference definition.
    """
    p = probabilities.astype(np.float32)
    return -(p * np.log(p + eps)).sum(axis=axis)


def strategy_scores(strategy: str, fields: dict[str, np.ndarray], passes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The strategy's score per pixel and the priority that orders the queries.

    Parameters
    ----------
    strategy : {"least_confidence", "margin", "entropy"}
    fields : dict
        Inference dump fields ``top1``, ``top2``, ``entropy``, each (N, H, W).
    passes : int
        The score is ``passes`` times the score of the fields. A dump of ``mc_mode: official`` holds the
        means over T passes of each pass's ``top1``, ``top2`` and ``entropy``, and every score is linear
        in them, so ``passes = T`` gives the official sum of the T per-pass uncertainty maps
        (:func:`alseg.mc_dropout.summed_passes`); 1 otherwise.

    Returns
    -------
    score : ndarray of float32, shape (N, H, W)
        What goes into ``queries.csv`` (margin: p1 - p2; least confidence: 1 - p1; entropy).
    priority : ndarray of float32, shape (N, H, W)
        Larger is asked first (the negated margin for margin).
    """
    if strategy == "least_confidence":
        score = passes * least_confidence_scores(fields["top1"])
        return score, score
    if strategy == "margin":
        score = passes * margin_scores(fields["top1"], fields["top2"])
        return score, -score
    if strategy == "entropy":
        score = passes * fields["entropy"].astype(np.float32)
        return score, score
    raise ValueError(f"unknown pixel strategy {strategy!r}; expected one of {PIXEL_STRATEGIES}")


#: The inference dump fields that each uncertainty strategy's score reads (:func:`strategy_scores`)
STRATEGY_FIELDS: dict[str, tuple[str, ...]] = {
    "least_confidence": ("top1",),
    "margin": ("top1", "top2"),
    "entropy": ("entropy",),
}


@dataclass
class PixelSelection:
    """Selected pixels, grouped by image in pool order.

    ``image``, ``y``, ``x`` are int32 arrays of shape (Q,); ``rank`` (int64) is the pixel's position in
    its image's priority order among eligible pixels (0 = the most uncertain; ties share a rank) or -1
    for random selection. ``shortfall`` maps an image index to the number of pixels it could give when
    that was fewer than the budget. ``score`` (float64 (Q,)) is the strategy's score of each pixel where
    the selection computed it (:func:`select_from_candidates`), else None.
    """

    image: np.ndarray
    y: np.ndarray
    x: np.ndarray
    rank: np.ndarray
    shortfall: dict[int, int] = field(default_factory=dict)
    score: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.image.size)

    @staticmethod
    def concatenate(parts: list[PixelSelection]) -> PixelSelection:
        """The selections of consecutive chunks of images, joined in pool order."""
        scores = [p.score for p in parts if p.score is not None]
        return PixelSelection(
            image=np.concatenate([p.image for p in parts] or [np.zeros(0, np.int32)]),
            y=np.concatenate([p.y for p in parts] or [np.zeros(0, np.int32)]),
            x=np.concatenate([p.x for p in parts] or [np.zeros(0, np.int32)]),
            rank=np.concatenate([p.rank for p in parts] or [np.zeros(0, np.int64)]),
            shortfall={i: k for p in parts for i, k in p.shortfall.items()},
            score=np.concatenate(scores) if scores and len(scores) == len(parts) else None,
        )


class _Picks:
    """The chosen pixels of a selection, image by image (each image's in ascending flat index)."""

    def __init__(self, width: int, scored: bool) -> None:
        self.width, self.scored = width, scored
        self.images: list[np.ndarray] = []
        self.flat: list[np.ndarray] = []
        self.ranks: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.shortfall: dict[int, int] = {}

    def add(self, image: int, flat: np.ndarray, rank: np.ndarray, score: np.ndarray | None = None) -> None:
        order = np.argsort(flat, kind="stable")
        self.images.append(np.full(flat.size, image, dtype=np.int32))
        self.flat.append(flat[order])
        self.ranks.append(rank[order])
        if score is not None:
            self.scores.append(score[order].astype(np.float64))

    def selection(self) -> PixelSelection:
        flat = np.concatenate(self.flat) if self.flat else np.zeros(0, dtype=np.int64)
        return PixelSelection(
            image=np.concatenate(self.images) if self.images else np.zeros(0, dtype=np.int32),
            y=(flat // self.width).astype(np.int32),
            x=(flat % self.width).astype(np.int32),
            rank=np.concatenate(self.ranks) if self.ranks else np.zeros(0, dtype=np.int64),
            shortfall=self.shortfall,
            score=(np.concatenate(self.scores) if self.scores else np.zeros(0)) if self.scored else None,
        )


def draw_pool_size(eligible: int, budget: int, top_percent: float) -> int:
    """The pixels an image's draw chooses from: its ``top_percent`` % most uncertain eligible pixels, at
    least ``min(budget, eligible)`` (PixelPick; ``top_percent = 0`` is plain top-k)."""
    return max(min(budget, eligible), math.ceil(top_percent / 100.0 * eligible))


def top_k_with_random_ties(priority: np.ndarray, k: int, rng: np.random.Generator,
                           eligible: int | None = None) -> np.ndarray:
    """Indices of the ``k`` largest entries of a 1-D ``priority``, ties at the cut drawn at random.

    float16 scores tie often; breaking ties by position would bias queries towards the top of the image.
    ``eligible``: the size of the whole set when ``priority`` holds only its members reaching the cut
    (:func:`candidate_members`), so that the draw consumes the generator as it would on the whole set.
    """
    n = priority.size if eligible is None else eligible
    if k >= n:
        return np.arange(priority.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.partition(priority, priority.size - k)[priority.size - k]
    above = np.flatnonzero(priority > threshold)
    ties = np.flatnonzero(priority == threshold)
    return np.concatenate([above, rng.choice(ties, k - above.size, replace=False)])


def candidate_members(priority: np.ndarray, size: int) -> np.ndarray:
    """The entries a draw from the ``size`` largest of a 1-D ``priority`` can reach: every entry at least the
    ``size``-th largest, ties at the cut included (int64 positions, ascending; all of them when ``size``
    covers the set).

    What the inference dump keeps of an image (:mod:`alseg.pixel_dump`): given these entries and the size
    of the whole set, :func:`top_k_with_random_ties` and the draw choose what they choose on the whole set.
    ``priority`` must hold no NaN.
    """
    n = priority.size
    if size >= n:
        return np.arange(n)
    threshold = np.partition(priority, n - size)[n - size]
    return np.flatnonzero(priority >= threshold)


def _draw(priority: np.ndarray, eligible: int, k: int, size: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """One image's draw: ``k`` positions of ``priority`` drawn from its ``size`` largest, and their ranks."""
    top = top_k_with_random_ties(priority, size, rng, eligible)
    pick = top if top.size == k else rng.choice(top, k, replace=False)
    # rank = number of eligible pixels strictly more uncertain (ties share a rank)
    descending = np.sort(priority[top])[::-1]
    return pick, np.searchsorted(-descending, -priority[pick], side="left").astype(np.int64)


def _check_draw(budget: int, top_percent: float) -> None:
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if not 0 <= top_percent <= 100:
        raise ValueError(f"top_percent must be in [0, 100], got {top_percent}")


def select_pixels(
    priority: np.ndarray | None,
    eligible: np.ndarray,
    budget: int,
    top_percent: float,
    rng: np.random.Generator,
    first_image: int = 0,
) -> PixelSelection:
    """Choose ``budget`` pixels per image (PixelPick).

    Per image: rank the eligible pixels by ``priority``, keep the top ``top_percent`` % of them (at
    least ``budget``), and draw ``budget`` uniformly from those. ``top_percent = 0`` is plain top-k.
    ``priority = None`` draws uniformly from all eligible pixels (random strategy).

    Parameters
    ----------
    priority : ndarray of float, shape (N, H, W), or None
        Larger is asked first. NaN is not allowed.
    eligible : ndarray of bool, shape (N, H, W)
        Pixels that may be asked (not asked before; not void unless allowed).
    budget : int
        Pixels per image. An image with fewer eligible pixels gives all it has (see ``shortfall``).
    top_percent : float
        M in [0, 100].
    rng : numpy.random.Generator
    first_image : int
        Pool index of the first image: consecutive chunks of a pool, selected in order with one
        generator, choose what the whole pool would (:meth:`PixelSelection.concatenate`).

    Returns
    -------
    PixelSelection
    """
    _check_draw(budget, top_percent)
    if priority is not None and priority.shape != eligible.shape:
        raise ValueError(f"priority shape {priority.shape} differs from eligible shape {eligible.shape}")
    picks = _Picks(eligible.shape[2], scored=False)
    for i in range(eligible.shape[0]):
        candidates = np.flatnonzero(eligible[i].reshape(-1))
        k = min(budget, candidates.size)
        if k < budget:
            picks.shortfall[first_image + i] = k
        if k == 0:
            continue
        if priority is None:
            picks.add(first_image + i, rng.choice(candidates, k, replace=False), np.full(k, -1, dtype=np.int64))
            continue
        p = priority[i].reshape(-1)[candidates].astype(np.float32)
        if np.isnan(p).any():
            raise ValueError(f"image {first_image + i}: priority holds NaN")
        pick, rank = _draw(p, candidates.size, k, draw_pool_size(candidates.size, budget, top_percent), rng)
        picks.add(first_image + i, candidates[pick], rank)
    return picks.selection()


@dataclass
class PixelCandidates:
    """What the draws of consecutive pool images can reach: per image, its eligible pixels whose priority
    reaches the cut of a draw pool of ``cover`` pixels (:func:`candidate_members`), with the inference
    dump's fields (the dump's pixel group, :mod:`alseg.pixel_dump`).

    Attributes
    ----------
    first_image : int
        Pool index of the first image.
    width : int
        W: ``index`` is ``y * W + x``.
    eligible : ndarray of int64, shape (b,)
        Eligible pixels of each image (the whole set, not only its members).
    cover : ndarray of int64, shape (b,)
        The draw pool size the members cover: draws of at most this many pixels are exact.
    nan : ndarray of int64, shape (b,)
        Eligible pixels whose priority is NaN (an image with any is refused, as by :func:`select_pixels`).
    offsets : ndarray of int64, shape (b + 1,)
        Image j's members are ``index[offsets[j]:offsets[j + 1]]``.
    index : ndarray of int, shape (M,)
        Flat pixel index of each member, ascending within an image.
    fields : dict of str to ndarray of float16, shape (M,)
        The fields the strategy reads (:data:`STRATEGY_FIELDS`).
    """

    first_image: int
    width: int
    eligible: np.ndarray
    cover: np.ndarray
    nan: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    fields: dict[str, np.ndarray]


def candidates_from_maps(strategy: str, fields: dict[str, np.ndarray], eligible: np.ndarray, budget: int,
                         top_percent: float, passes: int = 1, first_image: int = 0) -> PixelCandidates:
    """What the draws of ``strategy`` can reach in some images, from their whole maps (what the inference
    dump keeps of them, :mod:`alseg.pixel_dump`).

    Parameters
    ----------
    strategy : {"least_confidence", "margin", "entropy"}
    fields : dict of str to ndarray, shape (b, H, W)
        At least the strategy's :data:`STRATEGY_FIELDS`, as the dump stores them (float16).
    eligible : ndarray of bool, shape (b, H, W)
    budget, top_percent : int, float
        The draws to cover: each image's members cover a pool of :func:`draw_pool_size` pixels.
    passes : int
        As in :func:`strategy_scores` (the priority, and so the cut, is of the scaled score).
    first_image : int

    Returns
    -------
    PixelCandidates
        ``index`` uint32, ``fields`` the strategy's, of the members.
    """
    names = STRATEGY_FIELDS[strategy]
    _, priority = strategy_scores(strategy, {name: fields[name] for name in names}, passes)
    b, _, width = eligible.shape
    counts, covers, nans = (np.zeros(b, dtype=np.int64) for _ in range(3))
    members = []
    for i in range(b):
        candidates = np.flatnonzero(eligible[i].reshape(-1))
        p = priority[i].reshape(-1)[candidates]
        counts[i], covers[i] = candidates.size, draw_pool_size(candidates.size, budget, top_percent)
        nans[i] = np.count_nonzero(np.isnan(p))
        # an image with NaN is refused whatever the dump holds: keep nothing of it
        members.append(candidates[candidate_members(p, int(covers[i]))] if not nans[i] else candidates[:0])
    flat_fields = {name: fields[name].reshape(b, -1) for name in names}
    return PixelCandidates(
        first_image=first_image, width=width, eligible=counts, cover=covers, nan=nans,
        offsets=np.concatenate([[0], np.cumsum([m.size for m in members])]).astype(np.int64),
        index=np.concatenate(members).astype(np.uint32) if members else np.zeros(0, dtype=np.uint32),
        fields={name: np.concatenate([values[i, m] for i, m in enumerate(members)]) if members
                else values[:0, 0] for name, values in flat_fields.items()},
    )


def select_from_candidates(candidates: PixelCandidates, strategy: str, budget: int, top_percent: float,
                           rng: np.random.Generator, passes: int = 1) -> PixelSelection:
    """:func:`select_pixels` of an uncertainty ``strategy`` from the members an inference dump kept.

    The same pixels, ranks and generator draws as :func:`select_pixels` on the whole priority maps (given
    the same ``rng`` state), as long as each image's draw pool (:func:`draw_pool_size`) is at most its
    ``cover``. ``passes``: as in :func:`strategy_scores`. The selection's ``score`` is the strategy's score.

    Raises
    ------
    ValueError
        An image whose priority holds NaN, or whose draw pool the members do not cover.
    """
    _check_draw(budget, top_percent)
    score, priority = strategy_scores(strategy, candidates.fields, passes)
    picks = _Picks(candidates.width, scored=True)
    for j, n in enumerate(candidates.eligible.tolist()):
        image, (lo, hi) = candidates.first_image + j, candidates.offsets[j : j + 2].tolist()
        k = min(budget, n)
        if k < budget:
            picks.shortfall[image] = k
        if k == 0:
            continue
        if candidates.nan[j]:
            raise ValueError(f"image {image}: priority holds NaN")
        size = draw_pool_size(n, budget, top_percent)
        if size > candidates.cover[j] or (size >= n and hi - lo != n):
            raise ValueError(f"image {image}: a draw from {size} of its {n} eligible pixels, but the inference dump "
                             f"kept what a draw from {int(candidates.cover[j])} reaches ({hi - lo} pixels)")
        pick, rank = _draw(priority[lo:hi], n, k, size, rng)
        picks.add(image, candidates.index[lo:hi][pick].astype(np.int64), rank, score[lo:hi][pick])
    return picks.selection()


def eligible_pixels(
    asked: np.ndarray, masks: np.ndarray | None, ignore_index: int, query_void: bool
) -> np.ndarray:
    """Pixels that may be asked: not asked before and, unless ``query_void``, not ground-truth void.

    Parameters
    ----------
    asked : ndarray of bool, shape (N, H, W)
    masks : ndarray of uint8, shape (N, H, W), or None
        Ground truth; needed only when void pixels are excluded (a simulated setting: a real annotator
        cannot know in advance which pixels are void).
    """
    eligible = ~asked
    if not query_void:
        if masks is None:
            raise ValueError("excluding void pixels needs the ground-truth masks")
        eligible &= masks != ignore_index
    return eligible
