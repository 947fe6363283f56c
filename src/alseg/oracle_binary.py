"""The simulated annotator for binary questions: "is class c present in image i?".

"Yes" when at least one ground-truth pixel of class c is in image i; void pixels (the ignore value) are not
a class and never make an answer "yes". Each answer costs one click and a configurable number of seconds
(the paper's user study measured 2-4 s per binary answer; default 3 s).
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINARY_SECONDS = 3.0


def class_presence_from_masks(
    masks: np.ndarray, images: np.ndarray, num_classes: int, ignore_index: int | None
) -> np.ndarray:
    """Which classes occur in each of ``images``: one ``bincount`` per image (no per-class scans).

    Parameters
    ----------
    masks : ndarray of uint8 (or int), shape (N, H, W)
        Ground truth of the pool.
    images : ndarray of int, shape (K,)
        Pool indices to look at (duplicates allowed).
    num_classes : int
    ignore_index : int or None
        Void value, excluded.

    Returns
    -------
    ndarray of bool, shape (K, C)

    Raises
    ------
    ValueError
        An image index outside the pool, or a mask value that is neither a class nor the ignore value
        (the message names the image).
    """
    images = np.asarray(images, dtype=np.int64)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    if images.size and (images.min() < 0 or images.max() >= len(masks)):
        raise ValueError(f"image indices must be in [0, {len(masks)}), got [{images.min()}, {images.max()}]")
    unique, inverse = np.unique(images, return_inverse=True)
    present = np.zeros((unique.size, num_classes), dtype=bool)
    for row, i in enumerate(unique.tolist()):
        values = np.asarray(masks[i]).reshape(-1)
        if values.size and values.min() < 0:
            raise ValueError(f"mask of image {i} holds negative values")
        counts = np.bincount(values, minlength=num_classes)
        if ignore_index is not None and 0 <= ignore_index < counts.size:
            counts[ignore_index] = 0
        if (counts[num_classes:] > 0).any():
            bad = np.flatnonzero(counts[num_classes:]) + num_classes
            raise ValueError(
                f"mask of image {i} holds values {bad.tolist()} outside the {num_classes} classes "
                f"(ignore value {ignore_index})"
            )
        present[row] = counts[:num_classes] > 0
    return present[inverse.reshape(-1)]


def answer_binary(
    masks: np.ndarray,
    image: np.ndarray,
    class_id: np.ndarray,
    num_classes: int,
    ignore_index: int | None,
    error_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Answer each "is class ``class_id[q]`` in image ``image[q]``?" from ground truth.

    Parameters
    ----------
    masks : ndarray of uint8, shape (N, H, W)
    image, class_id : ndarray of int, shape (Q,)
    num_classes : int
    ignore_index : int or None
    error_rate : float
        Probability that an answer is flipped (a simulated annotator mistake), in [0, 1].
    rng : numpy.random.Generator or None
        Needed when ``error_rate > 0``.

    Returns
    -------
    present : ndarray of bool, shape (Q,)
        The (possibly mistaken) answer: True = "yes".
    flipped : ndarray of bool, shape (Q,)
        Where a simulated error changed the answer.
    """
    image = np.asarray(image, dtype=np.int64)
    class_id = np.asarray(class_id, dtype=np.int64)
    if image.shape != class_id.shape or image.ndim != 1:
        raise ValueError(f"image {image.shape} and class_id {class_id.shape} must be equal 1-D shapes")
    if class_id.size and (class_id.min() < 0 or class_id.max() >= num_classes):
        raise ValueError(f"class ids must be in [0, {num_classes}), got [{class_id.min()}, {class_id.max()}]")
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    presence = class_presence_from_masks(masks, image, num_classes, ignore_index)
    truth = presence[np.arange(image.size), class_id]
    if error_rate > 0:
        if rng is None:
            raise ValueError("error_rate > 0 needs a random generator")
        flipped = rng.random(truth.size) < error_rate
    else:
        flipped = np.zeros(truth.size, dtype=bool)
    return truth ^ flipped, flipped


def binary_answer_cost(num_answers: int, seconds_per_answer: float = DEFAULT_BINARY_SECONDS) -> tuple[float, float]:
    """(clicks, seconds) of ``num_answers`` binary answers: one click each, ``seconds_per_answer`` each."""
    if num_answers < 0 or seconds_per_answer < 0:
        raise ValueError("number of answers and seconds per answer must be >= 0")
    return float(num_answers), float(num_answers) * float(seconds_per_answer)
