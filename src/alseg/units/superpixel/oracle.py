"""The simulated annotator of superpixel queries: the dominant ground-truth class of a region (one click).

A query covers some base superpixels (:func:`alseg.acquire.superpixel.query_of_base`). Its answer is the
class most of its pixels hold in the ground truth; ignore (void) pixels do not vote, and ties go to the
smaller class id (as ``numpy.argmax``; the official code takes the first of ``numpy.unique``, the same).
A query whose pixels are all void is answered ``skip`` (-1): it is still asked and paid (one click), and
its base superpixels are never asked again. (The official code lets void vote and drops a region whose
dominant value is void.)
"""

from __future__ import annotations

import numpy as np

from alseg.region_stats import region_class_counts


def query_class_counts(
    masks: np.ndarray,
    labels: np.ndarray,
    first_ids: np.ndarray,
    query_of_base: np.ndarray,
    num_queries: int,
    num_classes: int,
    ignore_index: int,
) -> np.ndarray:
    """Ground-truth pixels of each class inside each query, over a batch of images (one bincount).

    Call it on the images that hold queries (in batches if memory asks) and add the results.

    Parameters
    ----------
    masks : ndarray of int, shape (B, H, W)
        Ground truth of the batch: class ids ``0 .. C-1`` or ``ignore_index``.
    labels : ndarray of int, shape (B, H, W)
        Local base superpixel ids of the batch.
    first_ids : ndarray of int, shape (B,)
        Global id of each image's superpixel 0 (``offsets[images]``).
    query_of_base : ndarray of int, shape (S,)
        Query index of every base superpixel, -1 for none.
    num_queries, num_classes, ignore_index : int

    Returns
    -------
    ndarray of int64, shape (num_queries, num_classes)
        Void pixels are not counted.
    """
    masks = np.asarray(masks)
    labels = np.asarray(labels)
    first = np.asarray(first_ids, dtype=np.int64)
    if masks.shape != labels.shape or masks.ndim != 3:
        raise ValueError(f"masks {masks.shape} and superpixel labels {labels.shape} must both be (B, H, W)")
    if first.shape != (masks.shape[0],):
        raise ValueError(f"first_ids has shape {first.shape}, expected ({masks.shape[0]},)")
    query_of_base = np.asarray(query_of_base, dtype=np.int64)
    if query_of_base.size and query_of_base.max() >= num_queries:
        raise ValueError(f"query_of_base refers to query {int(query_of_base.max())} of {num_queries}")
    classes = masks.astype(np.int64)
    void = classes == ignore_index
    bad = ~void & ((classes < 0) | (classes >= num_classes))
    if bad.any():
        raise ValueError(f"ground truth holds values outside 0 .. {num_classes - 1} and ignore {ignore_index}: "
                         f"{sorted(set(np.unique(classes[bad]).tolist()))[:10]}")
    ids = labels.astype(np.int64) + first[:, None, None]
    if ids.size and (ids.min() < 0 or ids.max() >= query_of_base.size):
        raise ValueError("superpixel labels fall outside the pool's global ids")
    query = query_of_base[ids]
    classes[void] = -1
    return region_class_counts(query, classes, num_queries, num_classes)


def dominant_answers(
    class_counts: np.ndarray,
    error_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The dominant class of each query, as a (possibly mistaken) annotator gives it.

    Parameters
    ----------
    class_counts : ndarray of int, shape (Q, C)
        :func:`query_class_counts` (void not counted).
    error_rate : float
        Probability that an answer is replaced by a class drawn uniformly from the C - 1 wrong ones
        (as :func:`alseg.units.pixel.answer_pixels`); skips are never flipped.
    rng : numpy.random.Generator, optional
        Needed when ``error_rate > 0``.

    Returns
    -------
    answers : ndarray of int64, shape (Q,)
        Class id, or -1 (``skip``) for a query with no non-void pixel.
    flipped : ndarray of bool, shape (Q,)
        Where a simulated error changed the answer.
    """
    counts = np.asarray(class_counts)
    if counts.ndim != 2:
        raise ValueError(f"class_counts must be (Q, C), got {counts.shape}")
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    num_queries, num_classes = counts.shape
    skip = counts.sum(axis=1) == 0
    answers = np.where(skip, -1, counts.argmax(axis=1) if num_classes else -1).astype(np.int64)
    flipped = np.zeros(num_queries, dtype=bool)
    if error_rate > 0 and num_classes > 1:
        if rng is None:
            raise ValueError("simulated errors need an rng")
        flipped = (rng.random(num_queries) < error_rate) & ~skip
        shift = rng.integers(1, num_classes, size=num_queries)
        answers = np.where(flipped, (answers + shift) % num_classes, answers)
    return answers, flipped


def answer_superpixel_queries(
    masks: np.ndarray,
    labels: np.ndarray,
    first_ids: np.ndarray,
    query_of_base: np.ndarray,
    num_queries: int,
    num_classes: int,
    ignore_index: int,
    error_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`query_class_counts` then :func:`dominant_answers` on one batch holding every query's images.

    Returns
    -------
    answers : ndarray of int64, shape (Q,)
        Class id or -1 (skip).
    flipped : ndarray of bool, shape (Q,)
    class_counts : ndarray of int64, shape (Q, C)
        For the audit (how pure each queried region is).
    """
    counts = query_class_counts(masks, labels, first_ids, query_of_base, num_queries, num_classes, ignore_index)
    answers, flipped = dominant_answers(counts, error_rate, rng)
    return answers, flipped, counts
