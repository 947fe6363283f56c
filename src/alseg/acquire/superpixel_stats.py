"""Per-base-superpixel statistics of a model's output, what superpixel acquisition reads.

For every base superpixel (global ids ``0 .. S-1`` of :mod:`alseg.superpixels`): :class:`SuperpixelStats`
(pixels, sum of the pixel uncertainty ``u(x) = p2 / p1``, pixels predicted as each class) and, for
adaptive merging, the mean softmax (:func:`superpixel_mean_probs`). The infer step computes both per batch
(:func:`superpixel_stats_from_probs`) into the inference dump. Torch-free: a few ``np.bincount`` passes
over a batch's pixels, whatever the number of superpixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alseg.superpixels import offsets_from_counts


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
    """Per-superpixel statistics of a batch of images from its per-pixel fields (top-2 probabilities, argmax).

    Two bincounts over the batch's pixels, whatever the number of superpixels.

    Parameters
    ----------
    labels : ndarray of int, shape (B, H, W)
        Local superpixel ids of the batch's images.
    counts : ndarray of int, shape (B,)
        ``S_i`` of each image (``numpy.diff(offsets)[images]``).
    top1, top2 : ndarray of float, shape (B, H, W)
        Largest and second largest class probability (``probability_fields``' ``top1``, ``top2``).
    pred : ndarray of int, shape (B, H, W)
        Argmax class (``pred``).
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
