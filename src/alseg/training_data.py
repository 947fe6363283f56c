"""What a training draws from: the pool, its labelled points grouped by image, and checked binary answers.

:func:`_training_data` checks the inputs of :func:`alseg.train.train_model` and finds the images to train on:
those with a labelled point, and those with answers but no point (which join each batch; module docstring
of :mod:`alseg.train`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alseg.data import ImagesOnDisk
from alseg.defaults import BINARY_DEFAULTS
from alseg.points import PointLabels, PointsByImage, TrainingLabels

#: Weights of the binary-answer losses (``absent_weight``, ``presence_weight``) and the log-sum-exp
#: sharpness ``lse_r`` (the config's ``binary.loss``).
DEFAULT_ANSWER_LOSS: dict[str, float] = dict(BINARY_DEFAULTS["loss"])

Log = Callable[[str], None]


@dataclass(frozen=True)
class _TrainingData:
    """What training draws from: the pool (N, H, W, 3) uint8 and its points grouped by image; the images
    with a point (int64) and those with answers but no point (int64, they join each batch); the checked
    answers (int8 (N, C) or None) and their loss weights."""

    images: np.ndarray | ImagesOnDisk
    points: PointsByImage
    labelled_images: np.ndarray
    answer_only: np.ndarray
    answers: np.ndarray | None
    loss_weights: dict[str, float]



def _checked_answers(
    answers: np.ndarray | None, answer_loss: dict[str, float] | None, num_images: int, num_classes: int,
    log: Log,
) -> tuple[np.ndarray | None, dict[str, float]]:
    """Validate the answer matrix (None when it holds no answer) and merge the loss weights."""
    weights = {**DEFAULT_ANSWER_LOSS, **(answer_loss or {})}
    unknown = sorted(set(weights) - set(DEFAULT_ANSWER_LOSS))
    if unknown:
        raise ValueError(f"answer_loss: unknown keys {unknown}; expected {sorted(DEFAULT_ANSWER_LOSS)}")
    if answers is None:
        return None, weights
    answers = np.asarray(answers)
    if answers.shape != (num_images, num_classes):
        raise ValueError(f"answers must have shape (N, C) = {(num_images, num_classes)}, got {answers.shape}")
    if not np.isin(answers, (-1, 0, 1)).all():
        raise ValueError("answers must hold only +1 (yes), -1 (no) and 0 (not asked)")
    every_class_absent = (answers < 0).all(axis=1)
    if every_class_absent.any():
        log(f"train: warning: {int(every_class_absent.sum())} images have every class answered 'no' "
            f"(e.g. image {int(np.flatnonzero(every_class_absent)[0])}); their answers are not used")
        answers = np.where(every_class_absent[:, None], 0, answers).astype(np.int8)
    if not answers.any():
        return None, weights
    return answers.astype(np.int8, copy=False), weights


def _training_data(images: np.ndarray | ImagesOnDisk, labels: TrainingLabels | PointLabels, num_classes: int,
                   answers: np.ndarray | None, answer_loss: dict[str, float] | None, log: Log) -> _TrainingData:
    """Check the pool, points and answers; find the images to train on (an error when there are none)."""
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {images.shape}")
    labels = labels if isinstance(labels, TrainingLabels) else TrainingLabels((labels,))
    labels.validate(len(images), images.shape[1], images.shape[2], num_classes)
    labelled_images = labels.images()
    answers, loss_weights = _checked_answers(answers, answer_loss, len(images), num_classes, log)
    answer_only = np.zeros(0, dtype=np.int64)  # images with answers and no labelled point
    if answers is not None:
        answer_only = np.setdiff1d(np.flatnonzero((answers != 0).any(axis=1)), labelled_images)
        if labelled_images.size == 0:
            labelled_images, answer_only = answer_only, answer_only[:0]
    if labelled_images.size == 0:
        raise ValueError("no labelled points: nothing to train on")
    return _TrainingData(images, labels.by_image(len(images)), labelled_images, answer_only, answers, loss_weights)
