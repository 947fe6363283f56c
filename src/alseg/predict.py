"""Prediction and evaluation of a segmentation model over images (no grad, eval mode, AMP on CUDA).

:func:`iter_predictions` yields the argmax class map batch by batch, :func:`predict` collects them, and
:func:`evaluate` accumulates a confusion matrix into mIoU, per-class IoU and pixel accuracy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from alseg.augment import normalise_images
from alseg.metrics import SegmentationScores, confusion_matrix, scores_from_confusion
from alseg.models import forward_logits, resolve_device


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block, the previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def iter_predictions(
    model: nn.Module, images: np.ndarray, batch_size: int = 8, device: str | torch.device | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, argmax (b, H, W) uint8)`` batch by batch (no grad, eval mode, AMP on CUDA)."""
    device = _model_device(model) if device is None else resolve_device(device)
    model.to(device)
    with _eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(normalise_images(images[start : start + batch_size])).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                logits = forward_logits(model, x)
            yield start, logits.argmax(dim=1).to(torch.uint8).cpu().numpy()


def predict(
    model: nn.Module, images: np.ndarray, batch_size: int = 8, device: str | torch.device | None = None
) -> np.ndarray:
    """Predicted class of every pixel.

    Parameters
    ----------
    model : torch.nn.Module
    images : ndarray, uint8, shape (N, H, W, 3)
    batch_size : int
    device : str, torch.device or None
        None: where the model is; ``"auto"``: CUDA if available.

    Returns
    -------
    ndarray, uint8, shape (N, H, W)
    """
    out = np.empty(images.shape[:3], dtype=np.uint8)
    for start, pred in iter_predictions(model, images, batch_size, device):
        out[start : start + len(pred)] = pred
    return out


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    num_classes: int,
    ignore_index: int | None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> SegmentationScores:
    """mIoU, per-class IoU and pixel accuracy of ``model`` on (images (N,H,W,3) uint8, masks (N,H,W))."""
    if images.shape[:3] != masks.shape:
        raise ValueError(f"images {images.shape} and masks {masks.shape} differ in size")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for start, pred in iter_predictions(model, images, batch_size, device):
        cm += confusion_matrix(pred, masks[start : start + len(pred)], num_classes, ignore_index)
    return scores_from_confusion(cm)
