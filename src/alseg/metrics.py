"""Segmentation metrics from a confusion matrix: IoU per class, mIoU and pixel accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Count (target, prediction) pairs.

    Parameters
    ----------
    pred, target : ndarray of int, same shape (any)
        Predicted and true class ids. Target pixels equal to ``ignore_index`` are not counted.
    num_classes : int
        C; every non-ignored target must be in ``[0, C)``.

    Returns
    -------
    ndarray of int64, shape (C, C)
        ``cm[t, p]`` is the number of pixels of true class t predicted as p.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    t = target.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    keep = t != ignore_index if ignore_index is not None else np.ones_like(t, dtype=bool)
    t, p = t[keep], p[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target holds values outside [0, {num_classes}) besides the ignore value")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"prediction holds values outside [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class, shape (C,), float64; NaN for a class absent from both target and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


@dataclass(frozen=True)
class SegmentationScores:
    """mIoU (mean over classes with a defined IoU), IoU per class and pixel accuracy."""

    miou: float
    iou: np.ndarray
    pixel_accuracy: float

    def per_class(self, class_names: list[str]) -> dict[str, float | None]:
        """IoU by class name; None (JSON null) where the class is absent from target and prediction."""
        return {
            name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, self.iou)
        }


def scores_from_confusion(cm: np.ndarray) -> SegmentationScores:
    """mIoU, per-class IoU and pixel accuracy of a (C, C) confusion matrix."""
    iou = iou_per_class(cm)
    total = cm.sum()
    miou = float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")
    accuracy = float(np.trace(cm) / total) if total else float("nan")
    return SegmentationScores(miou=miou, iou=iou, pixel_accuracy=accuracy)
