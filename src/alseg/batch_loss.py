"""The loss of a training batch: cross-entropy at its labelled points, plus the binary-answer losses.

:func:`point_loss` gathers the logits at the labelled points only (no dense mask with an ignore value is
built); a batch with binary answers (:mod:`alseg.binary_loss`) masks its absent classes out of the point
loss and adds the answer losses (``_batch_loss``), "yes" answers counting only for samples that show their
whole scaled image (``_batch_answer_masks``). In data-parallel training each rank weighs its terms so that
the ranks' average is the whole batch's loss (``_term_counts``, :func:`alseg.distributed.term_scales`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from alseg.binary_loss import batch_answers, binary_answer_loss, mask_absent_logits

if TYPE_CHECKING:
    from alseg.batches import _Batch


def point_loss(logits: torch.Tensor, batch_index: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
               classes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits gathered at labelled points, mean over points.

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
    batch_index, ys, xs, classes : Tensor, int64, shape (P,), P >= 1

    Returns
    -------
    Tensor, float32, scalar
    """
    gathered = logits.permute(0, 2, 3, 1)[batch_index, ys, xs]  # (P, C): only labelled pixels enter
    return F.cross_entropy(gathered.float(), classes)


def _batch_answer_masks(answers: np.ndarray, batch: _Batch, device: torch.device
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(absent, present)`` (B, C) of a batch, "yes" kept only where the sample shows its whole image;
    ``(None, None)`` when no sample of the batch has a usable answer."""
    absent, present = batch_answers(answers, batch.pool_images, device)
    present = present & torch.from_numpy(batch.whole).to(device)[:, None]
    if not bool(absent.any() or present.any()):
        return None, None
    return absent, present

def _term_counts(batch: _Batch, absent: torch.Tensor | None, present: torch.Tensor | None) -> list[int]:
    """What each loss term of the batch averages over: labelled points kept, pixels shown by samples with a
    "no" answer, "yes" (sample, class) pairs."""
    if absent is None or present is None:
        return [batch.kept, 0, 0]
    rows = absent.any(dim=1).cpu().numpy()
    return [batch.kept, int(batch.shown[rows].sum()), int(present.sum())]


def _batch_loss(logits: torch.Tensor, batch: _Batch, targets: list[torch.Tensor], absent: torch.Tensor | None,
                present: torch.Tensor | None, weights: dict[str, float], device: torch.device,
                scales: tuple[float, ...] = (1.0, 1.0, 1.0),
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The loss of a batch, its point part and its answer part (None without answers).

    Without answers the point loss alone; with them, the point loss on logits whose absent classes are
    masked out plus :func:`alseg.binary_loss.binary_answer_loss` over the pixels that show the image. The
    point loss is zero (with a gradient graph) when no point survived augmentation. ``targets``: the batch's
    point_batch, point_y, point_x, point_cls as int64 tensors on ``device``; ``weights``: ``absent_weight``,
    ``presence_weight``, ``lse_r``; ``scales``: factors on the point, "no" and "yes" terms in the returned
    loss and answer part (a rank's share, :func:`alseg.distributed.term_scales`); the point part is the
    unscaled mean.
    """
    point_scale, absent_scale, presence_scale = scales
    masked = logits if absent is None or not bool(absent.any()) else mask_absent_logits(logits, absent)
    point = point_loss(masked, *targets) if batch.kept else logits.sum() * 0.0
    if absent is None:
        return point * point_scale, point, None
    assert present is not None
    extra = binary_answer_loss(
        logits, absent, present, weights["absent_weight"] * absent_scale, weights["presence_weight"] * presence_scale,
        weights["lse_r"], pixel_mask=torch.from_numpy(batch.shown).to(device),
    )
    return point * point_scale + extra, point, extra
