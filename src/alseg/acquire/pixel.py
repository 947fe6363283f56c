"""PixelPick pixel acquisition: uncertainty scores and the per-image top-M% uniform draw.

Every function is vectorised over pixels; the only Python loop is over images.
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


@dataclass
class PixelSelection:
    """Selected pixels, grouped by image in pool order.

    ``image``, ``y``, ``x`` are int32 arrays of shape (Q,); ``rank`` (int64) is the pixel's position in
    its image's priority order among eligible pixels (0 = the most uncertain; ties share a rank) or -1
    for random selection. ``shortfall`` maps an image index to the number of pixels it could give when
    that was fewer than the budget.
    """

    image: np.ndarray
    y: np.ndarray
    x: np.ndarray
    rank: np.ndarray
    shortfall: dict[int, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.image.size)


def top_k_with_random_ties(priority: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``k`` largest entries of a 1-D ``priority``, ties at the cut drawn at random.

    float16 scores tie often; breaking ties by position would bias queries towards the top of the image.
    """
    n = priority.size
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.partition(priority, n - k)[n - k]
    above = np.flatnonzero(priority > threshold)
    ties = np.flatnonzero(priority == threshold)
    return np.concatenate([above, rng.choice(ties, k - above.size, replace=False)])


def select_pixels(
    priority: np.ndarray | None,
    eligible: np.ndarray,
    budget: int,
    top_percent: float,
    rng: np.random.Generator,
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

    Returns
    -------
    PixelSelection
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if not 0 <= top_percent <= 100:
        raise ValueError(f"top_percent must be in [0, 100], got {top_percent}")
    if priority is not None and priority.shape != eligible.shape:
        raise ValueError(f"priority shape {priority.shape} differs from eligible shape {eligible.shape}")
    n_images, _, width = eligible.shape
    images, ys, xs, ranks = [], [], [], []
    shortfall: dict[int, int] = {}
    for i in range(n_images):
        candidates = np.flatnonzero(eligible[i].reshape(-1))
        k = min(budget, candidates.size)
        if k < budget:
            shortfall[i] = k
        if k == 0:
            continue
        if priority is None:
            chosen = rng.choice(candidates, k, replace=False)
            rank = np.full(k, -1, dtype=np.int64)
        else:
            p = priority[i].reshape(-1)[candidates].astype(np.float32)
            if np.isnan(p).any():
                raise ValueError(f"image {i}: priority holds NaN")
            pool_size = max(k, math.ceil(top_percent / 100.0 * candidates.size))
            top = top_k_with_random_ties(p, pool_size, rng)
            pick = top if top.size == k else rng.choice(top, k, replace=False)
            # rank = number of eligible pixels strictly more uncertain (ties share a rank)
            descending = np.sort(p[top])[::-1]
            rank = np.searchsorted(-descending, -p[pick], side="left").astype(np.int64)
            chosen = candidates[pick]
        order = np.argsort(chosen, kind="stable")
        chosen, rank = chosen[order], rank[order]
        images.append(np.full(k, i, dtype=np.int32))
        ys.append((chosen // width).astype(np.int32))
        xs.append((chosen % width).astype(np.int32))
        ranks.append(rank)
    empty_i = np.zeros(0, dtype=np.int32)
    return PixelSelection(
        image=np.concatenate(images) if images else empty_i,
        y=np.concatenate(ys) if ys else empty_i,
        x=np.concatenate(xs) if xs else empty_i,
        rank=np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64),
        shortfall=shortfall,
    )


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
