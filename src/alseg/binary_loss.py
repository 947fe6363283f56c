"""Training signal from binary answers ("is class c in image i?"), as torch losses.

Notation: logits ``l`` (B, C, H, W), softmax ``p_c = exp(l_c) / sum_k exp(l_k)`` per pixel; per batch
sample, ``absent`` (B, C) marks the classes answered "no" and ``present`` (B, C) those answered "yes".

"No": an exact constraint, learned
----------------------------------
A "no" says class c occurs at no pixel of the image. Two parts:

1. :func:`mask_absent_logits` sets the logits of absent classes to ``ABSENT_LOGIT`` (-1e4) before the
   softmax, so in training the model's probability of that class in that image is exactly 0 (``exp(-1e4 -
   max_k l_k)`` underflows to 0 in float32 and float16 for any realistic logits) and the remaining
   classes are renormalised: pixel losses on that image (cross-entropy on labelled pixels, the "yes" loss)
   are computed among the classes that can be there. A finite value instead of ``-inf`` keeps the loss
   finite if a (noisy) pixel label names an absent class. The masked logit gets no gradient.
2. Because the mask removes the class's gradient, masking alone teaches the unmasked model nothing: at
   inference (no answers) it would still predict the class. :func:`absent_class_loss` therefore penalises
   the probability mass the mask removes, on the *unmasked* logits, for every pixel of the image::

       L_no = mean over pixels of -log(1 - sum_{c absent} p_c)
            = mean over pixels of [logsumexp_k l_k - logsumexp_{k not absent} l_k]

   (the binary cross-entropy of "this pixel is none of the absent classes"; exact and stable via
   logsumexp). Its minimum 0 is reached only when the absent classes have probability 0 everywhere in
   the image, so the constraint is learned and holds at inference (tested on a constructed example).

"Yes": image-level presence with log-sum-exp pooling
----------------------------------------------------
A "yes" says class c occurs somewhere. Pinheiro and Collobert (2015) pool pixel scores ``s(h, w)`` into an
image score with log-sum-exp, ``s = (1/r) log( (1/HW) sum_{h,w} exp(r s(h, w)) )``, which moves from the
mean of the scores (r -> 0) to their max (r -> inf). We pool the pixel log-probabilities ``s = log p_c``
(of the masked logits when "no" answers exist), so the pooled presence probability is the power mean
(geometric mean of p_c for r -> 0, arithmetic mean at r = 1, max for r -> inf)::

    q_c = exp(s_c) = ( (1/HW) sum_{h,w} p_c(h, w)^r )^(1/r)     in [min p_c, max p_c] within [0, 1]

and the loss is the binary cross-entropy with target 1, ``L_yes = -log q_c = -s_c``, averaged over the
"yes" pairs. ``r`` (default 5) sets how much of the image must show the class: a class covering a
fraction f of the image with ``p_c = 1`` there (and ~0 elsewhere) gets ``q_c = f^(1/r)``.

The pixel labels of the initial labelled set keep their cross-entropy (``alseg.batch_loss.point_loss``); a
training step adds ``absent_weight * L_no + presence_weight * L_yes`` (:func:`binary_answer_loss`).
"""

from __future__ import annotations

import numpy as np
import torch

ABSENT_LOGIT = -1.0e4
DEFAULT_LSE_R = 5.0


def batch_answers(matrix: np.ndarray, batch_images: np.ndarray,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(absent, present)`` bool tensors (B, C) for the pool images of a batch, from the (N, C) answer matrix
    (:func:`alseg.units.binary.answer_matrix`)."""
    rows = torch.from_numpy(np.asarray(matrix)[np.asarray(batch_images, dtype=np.int64)])
    return (rows < 0).to(device), (rows > 0).to(device)


def absent_logit_mask(absent: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The bool mask (B, C, H, W) of logits to suppress: every pixel of each absent (image, class)."""
    return absent[:, :, None, None].expand(-1, -1, height, width)


def _check(logits: torch.Tensor, answers: torch.Tensor, name: str) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if answers.shape != logits.shape[:2] or answers.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor of shape {tuple(logits.shape[:2])}, got "
                         f"{answers.dtype} {tuple(answers.shape)}")


def mask_absent_logits(logits: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
    """Logits with every absent class of each sample set to ``ABSENT_LOGIT`` (softmax exactly 0 there).

    Parameters
    ----------
    logits : Tensor, float, shape (B, C, H, W)
    absent : Tensor, bool, shape (B, C)

    Returns
    -------
    Tensor, float32, shape (B, C, H, W) (computed in float32 so the fill value is representable)

    Raises
    ------
    ValueError
        Wrong shapes, or a sample with every class absent (no class left for its pixels).
    """
    _check(logits, absent, "absent")
    if absent.all(dim=1).any():
        raise ValueError("a sample has every class answered 'no': no class is left for its pixels")
    return logits.float().masked_fill(absent[:, :, None, None], ABSENT_LOGIT)


def absent_class_loss(logits: torch.Tensor, absent: torch.Tensor, pixel_mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """``mean -log(1 - sum_{c absent} p_c)`` over the pixels of samples with a "no" answer (unmasked
    logits). 0 (with a gradient graph) when no sample has one.

    Parameters
    ----------
    logits : Tensor, float, shape (B, C, H, W)
        The model's raw logits (not masked).
    absent : Tensor, bool, shape (B, C)
    pixel_mask : Tensor, bool, shape (B, H, W), or None
        Pixels that belong to the image (False for padding added by augmentation); default all.

    Returns
    -------
    Tensor, float32, scalar
    """
    _check(logits, absent, "absent")
    rows = absent.any(dim=1)
    if not bool(rows.any()):
        return logits.sum() * 0.0
    x = logits[rows].float()
    kept = x.masked_fill(absent[rows][:, :, None, None], -torch.inf)
    per_pixel = torch.logsumexp(x, dim=1) - torch.logsumexp(kept, dim=1)  # (B', H, W), >= 0
    if pixel_mask is None:
        return per_pixel.mean()
    weights = pixel_mask[rows].float()
    return (per_pixel * weights).sum() / weights.sum().clamp_min(1.0)


def presence_loss(
    logits: torch.Tensor,
    present: torch.Tensor,
    absent: torch.Tensor | None = None,
    r: float = DEFAULT_LSE_R,
    pixel_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mean over "yes" pairs of -LSE_r(log p_c)`` (log-sum-exp pooling of pixel log-probabilities).

    Parameters
    ----------
    logits : Tensor, float, shape (B, C, H, W)
    present : Tensor, bool, shape (B, C)
    absent : Tensor, bool, shape (B, C), or None
        When given, the softmax is taken over the masked logits (:func:`mask_absent_logits`).
    r : float
        Pooling sharpness (> 0): r -> 0 pools the mean of log p (geometric mean), r = 1 the arithmetic
        mean of p, large r the max.
    pixel_mask : Tensor, bool, shape (B, H, W), or None
        Pixels that belong to the image; default all.

    Returns
    -------
    Tensor, float32, scalar (0 with a gradient graph when there is no "yes")
    """
    _check(logits, present, "present")
    if not r > 0:
        raise ValueError(f"r must be > 0, got {r}")
    if not bool(present.any()):
        return logits.sum() * 0.0
    x = mask_absent_logits(logits, absent) if absent is not None else logits.float()
    log_p = torch.log_softmax(x, dim=1).flatten(2)  # (B, C, HW)
    if pixel_mask is None:
        count = torch.full(log_p.shape[:1], float(log_p.shape[2]), device=log_p.device)
    else:
        flat = pixel_mask.flatten(1)
        log_p = log_p.masked_fill(~flat[:, None, :], -torch.inf)
        count = flat.sum(dim=1).float().clamp_min(1.0)
    pooled = (torch.logsumexp(r * log_p, dim=2) - torch.log(count)[:, None]) / r  # (B, C): log q_c
    return -pooled[present].mean()


def pooled_presence(logits: torch.Tensor, r: float = DEFAULT_LSE_R) -> torch.Tensor:
    """Pooled presence probabilities ``q_c`` (B, C) = power mean of ``p_c`` with exponent r."""
    log_p = torch.log_softmax(logits.float(), dim=1).flatten(2)
    return torch.exp((torch.logsumexp(r * log_p, dim=2) - np.log(log_p.shape[2])) / r)


def binary_answer_loss(
    logits: torch.Tensor,
    absent: torch.Tensor,
    present: torch.Tensor,
    absent_weight: float = 1.0,
    presence_weight: float = 1.0,
    r: float = DEFAULT_LSE_R,
    pixel_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``absent_weight * absent_class_loss + presence_weight * presence_loss`` (float32 scalar).

    Add it to the pixel cross-entropy of a batch; compute that cross-entropy on
    ``mask_absent_logits(logits, absent)`` so labelled pixels of an image with "no" answers see only the
    classes that can be there.
    """
    total = logits.sum() * 0.0
    if absent_weight:
        total = total + absent_weight * absent_class_loss(logits, absent, pixel_mask)
    if presence_weight:
        total = total + presence_weight * presence_loss(logits, present, absent, r, pixel_mask)
    return total
