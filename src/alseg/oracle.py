"""The simulated annotator: answers queries from ground truth, optionally with errors."""

from __future__ import annotations

import numpy as np


def answer_pixels(
    masks: np.ndarray,
    image: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    num_classes: int,
    ignore_index: int,
    error_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The class of each queried pixel, as a (possibly mistaken) annotator would give it.

    Parameters
    ----------
    masks : ndarray of uint8, shape (N, H, W)
        Ground truth of the pool.
    image, y, x : ndarray of int, shape (Q,)
    error_rate : float
        Probability that an answer is replaced by a class drawn uniformly from the C - 1 wrong ones
        (PixelPick's noise study flips 10%).

    Returns
    -------
    answers : ndarray of int64, shape (Q,)
        Class id, or -1 where the pixel is void (the annotator skips it).
    flipped : ndarray of bool, shape (Q,)
        Where a simulated error changed the answer.
    """
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    truth = masks[image, y, x].astype(np.int64)
    void = truth == ignore_index
    answers = np.where(void, -1, truth)
    flipped = (rng.random(truth.size) < error_rate) & ~void
    if num_classes > 1:
        offsets = rng.integers(1, num_classes, size=truth.size)
        answers = np.where(flipped, (truth + offsets) % num_classes, answers)
    else:
        flipped[:] = False
    return answers, flipped
