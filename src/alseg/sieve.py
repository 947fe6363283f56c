"""Sieving (Adaptive Superpixel, eq. 8): keep the pixels of a labelled region the model agrees with.

Within each labelled region s with dominant label D(s), pixel x keeps the label when the model's
probability of D(s) at x is at or above the knee of the region's sorted confidences (Kneedle, via the
``kneed`` package as the official code: ``KneeLocator(S=1, curve="concave", direction="increasing")``).
Only regions of at least ``min_size`` pixels (512) are sieved; smaller ones keep every pixel.

The knee is searched on ``sample_points`` (20) evenly spaced order statistics of the region's
confidences (positions ``round(linspace(0, n - 1, k))`` of the ascending sort, so the minimum and the
maximum are always sampled; the official code takes every ``n // 10``-th value). Degenerate cases keep
the whole region: constant confidences (Kneedle is undefined: it divides by the range) and no knee found
(the official code's ``knee = None -> 0``, i.e. the smallest sample).

Sorting and sampling are vectorised over regions (one ``lexsort`` for all pixels); Kneedle itself runs
once per sieved region (about 0.06 ms each).
"""

from __future__ import annotations

import warnings

import numpy as np

DEFAULT_MIN_SIZE = 512
DEFAULT_SAMPLE_POINTS = 20


def label_confidence(probs: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The model's probability of each pixel's label (NaN where a pixel has none).

    Parameters
    ----------
    probs : ndarray of float, shape (B, C, H, W)
        Softmax of the model that sieves (channels first).
    label : ndarray of int, shape (B, H, W)
        Dominant label of the pixel's region, or -1 for an unlabelled pixel.

    Returns
    -------
    ndarray of float32, shape (B, H, W)
    """
    probs = np.asarray(probs)
    label = np.asarray(label)
    if probs.ndim != 4 or probs.shape[:1] + probs.shape[2:] != label.shape:
        raise ValueError(f"expected probs (B, C, H, W) and labels (B, H, W), got {probs.shape} and {label.shape}")
    if label.size and label.max() >= probs.shape[1]:
        raise ValueError(f"label {int(label.max())} out of range for {probs.shape[1]} classes")
    labelled = label >= 0
    picked = np.take_along_axis(probs, np.where(labelled, label, 0)[:, None].astype(np.int64), axis=1)[:, 0]
    return np.where(labelled, picked, np.nan).astype(np.float32)


def _knee_locator() -> type:
    """``kneed.KneeLocator``, imported on first use and without matplotlib.

    Importing kneed costs about 2 s, 0.9 s of it for ``matplotlib.pyplot``, which kneed only needs for its
    plots (it catches the ImportError): a ``None`` entry in ``sys.modules`` makes that import fail for the
    moment kneed is imported, then is removed again.
    """
    import sys

    if "kneed" in sys.modules or "matplotlib.pyplot" in sys.modules:
        from kneed import KneeLocator

        return KneeLocator
    sys.modules["matplotlib.pyplot"] = None  # type: ignore[assignment]
    try:
        from kneed import KneeLocator
    finally:
        del sys.modules["matplotlib.pyplot"]
    return KneeLocator


def knee_threshold(samples: np.ndarray) -> float:
    """The sieving threshold of one region from its ascending confidence samples.

    Parameters
    ----------
    samples : ndarray of float, shape (k,)
        Ascending.

    Returns
    -------
    float
        ``samples[knee]``, or ``samples[0]`` (keep all) when the samples are constant, fewer than 3, or
        Kneedle finds no knee.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < 3 or not samples[-1] > samples[0]:
        return float(samples[0]) if samples.size else -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        knee = _knee_locator()(np.arange(samples.size), samples, S=1.0, curve="concave", direction="increasing").knee
    if knee is None:
        return float(samples[0])
    return float(samples[int(knee)])


def sieve_thresholds(
    region: np.ndarray,
    confidence: np.ndarray,
    num_regions: int,
    min_size: int = DEFAULT_MIN_SIZE,
    sample_points: int = DEFAULT_SAMPLE_POINTS,
) -> np.ndarray:
    """Knee threshold of every labelled region.

    Parameters
    ----------
    region : ndarray of int, shape (P,)
        Region (query) id of each labelled pixel, ``0 .. num_regions - 1``.
    confidence : ndarray of float, shape (P,)
        Model probability of the region's dominant label at the pixel (:func:`label_confidence`).
    num_regions : int
    min_size : int
        Regions with fewer pixels are not sieved (official 512).
    sample_points : int
        Points of the sorted confidences given to Kneedle, >= 3.

    Returns
    -------
    ndarray of float64, shape (num_regions,)
        Keep pixels with confidence ``>=`` it; ``-inf`` for regions that are not sieved or empty.
    """
    region = np.asarray(region, dtype=np.int64).reshape(-1)
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    if region.shape != confidence.shape:
        raise ValueError(f"region {region.shape} and confidence {confidence.shape} differ in shape")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    if sample_points < 3:
        raise ValueError(f"sample_points must be >= 3, got {sample_points}")
    if region.size and (region.min() < 0 or region.max() >= num_regions):
        raise ValueError(f"region ids fall outside 0 .. {num_regions - 1}")
    if np.isnan(confidence).any():
        raise ValueError("confidence holds NaN (a pixel without a label?)")
    thresholds = np.full(num_regions, -np.inf)
    sizes = np.bincount(region, minlength=num_regions)
    sieved = np.flatnonzero(sizes >= min_size)
    if sieved.size == 0:
        return thresholds
    order = np.lexsort((confidence, region))  # by region, then ascending confidence
    start = np.concatenate([[0], np.cumsum(sizes)])[sieved]
    steps = np.linspace(0.0, 1.0, sample_points)
    positions = start[:, None] + np.round(steps[None, :] * (sizes[sieved, None] - 1)).astype(np.int64)
    samples = confidence[order][positions]  # (regions, k), ascending per row
    for row, r in enumerate(sieved):
        thresholds[r] = knee_threshold(samples[row])
    return thresholds


def sieve_mask(
    region: np.ndarray,
    confidence: np.ndarray,
    num_regions: int,
    min_size: int = DEFAULT_MIN_SIZE,
    sample_points: int = DEFAULT_SAMPLE_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Which labelled pixels keep their label after sieving.

    Parameters are those of :func:`sieve_thresholds`.

    Returns
    -------
    keep : ndarray of bool, shape (P,)
    thresholds : ndarray of float64, shape (num_regions,)
    """
    thresholds = sieve_thresholds(region, confidence, num_regions, min_size, sample_points)
    region = np.asarray(region, dtype=np.int64).reshape(-1)
    keep = np.asarray(confidence, dtype=np.float64).reshape(-1) >= thresholds[region]
    return keep, thresholds
