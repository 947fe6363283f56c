"""Training on superpixel answers: the pixels of answered regions, sieved with the previous model (+S).

Sieving (``superpixel.sieve``, rounds >= 1) keeps, within each answered query's pixels, those whose
probability of the answer under round r-1's model is at or above the Kneedle knee of the region's sorted
confidences (:mod:`alseg.sieve`); regions under ``sieve_min_size`` pixels keep all. Round 0 is not sieved
(there is no model). docs/superpixels.md has the method and the measured label noise.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from alseg.joblog import log
from alseg.labels import LabelStore
from alseg.points import PointLabels
from alseg.sieve import sieve_mask
from alseg.units.base import Job, TrainingTargets
from alseg.units.superpixel.files import read_pool_superpixels, superpixel_offsets
from alseg.units.superpixel.labels import LabelledPixels, labelled_images, labelled_pixels

PathLike = str | os.PathLike[str]


def label_confidences(
    model_path: PathLike,
    images: np.ndarray,
    image_index: np.ndarray,
    pixels: LabelledPixels,
    batch_size: int = 8,
    device: str = "auto",
) -> np.ndarray:
    """The model's probability of each labelled pixel's label (what sieving thresholds).

    Parameters
    ----------
    model_path : path
        The sieving model (round r-1's ``model.pt``).
    images : ndarray of uint8, shape (n, H, W, 3)
        The pool images ``image_index`` (ascending), covering every image of ``pixels``.
    image_index : ndarray of int, shape (n,)
    pixels : LabelledPixels
        Sorted by image (as :func:`labelled_pixels` returns them).
    batch_size : int
    device : str

    Returns
    -------
    ndarray of float32, shape (P,)
    """
    import torch

    from alseg.augment import normalise_images
    from alseg.models import forward_logits, load_model, resolve_device

    dev = resolve_device(device)
    model, _ = load_model(model_path, dev)
    position = np.searchsorted(np.asarray(image_index), pixels.image)
    if pixels.image.size and not np.array_equal(np.asarray(image_index)[np.minimum(position, len(image_index) - 1)],
                                                pixels.image):
        raise ValueError("label_confidences: the images do not cover every labelled pixel")
    bounds = np.searchsorted(position, np.arange(0, len(images) + batch_size, batch_size))
    confidence = np.empty(len(pixels), dtype=np.float32)
    with torch.inference_mode():
        for k, start in enumerate(range(0, len(images), batch_size)):
            lo, hi = bounds[k], bounds[k + 1]
            if lo == hi:
                continue
            x = torch.from_numpy(normalise_images(np.asarray(images[start:start + batch_size]))).to(dev)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                logits = forward_logits(model, x)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            confidence[lo:hi] = probs[position[lo:hi] - start, pixels.cls[lo:hi], pixels.y[lo:hi], pixels.x[lo:hi]]
    return confidence


def sieve_pixels(
    pixels: LabelledPixels, confidence: np.ndarray, min_size: int, sample_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sieving of labelled pixels region by region (:func:`alseg.sieve.sieve_mask`).

    Returns
    -------
    keep : ndarray of bool, shape (P,)
    thresholds : ndarray of float64, shape (num_regions,)
        ``-inf`` for regions not sieved (smaller than ``min_size``, or not among ``pixels``).
    """
    return sieve_mask(pixels.region, confidence, pixels.num_regions, min_size, sample_points)


def label_noise(cls: np.ndarray, truth: np.ndarray, ignore_index: int, count_void: bool = True) -> float | None:
    """Share of labelled pixels whose training label is wrong.

    Parameters
    ----------
    cls : ndarray of int, shape (P,)
        The label each pixel trains on (the dominant class of its answered region).
    truth : ndarray of int, shape (P,)
        Its ground-truth class, ``ignore_index`` for void.
    ignore_index : int
    count_void : bool
        True: a void pixel that receives a label counts as wrong, over all P pixels (what training sees:
        the label is a class the pixel does not have). False: void pixels are left out, over the pixels
        with a ground-truth class (the ``*_non_void`` figures; before issue 17 the only one).

    Returns
    -------
    float or None
        None when there is no pixel to count.
    """
    if not count_void:
        valid = truth != ignore_index
        return float(np.mean(cls[valid] != truth[valid])) if valid.any() else None
    if truth.size == 0:
        return None
    return float(np.mean((cls != truth) | (truth == ignore_index)))


def superpixel_training_targets(store: LabelStore, job: Job) -> TrainingTargets:
    """The training points of a superpixel experiment: pixels of answered regions, sieved when enabled.

    The record (for ``train_log.json``): labelled and training pixel counts, the sieved share, regions
    sieved, and (from the pool's ground truth, for measurement only) the share of training pixels whose
    label is wrong, before and after sieving, and among the pixels sieved out (:func:`label_noise`:
    ``label_noise*`` and ``sieved_out_noise`` count void pixels that receive a label as wrong; the
    ``*_non_void`` figures leave void pixels out).
    """
    superpixels, pool, r = job.file("superpixels"), job.pool, job.round_index
    ignore_index = job.info.ignore_index
    images = labelled_images(store, superpixel_offsets(superpixels, len(pool)))
    if images.size == 0:
        raise ValueError(f"round {r}: the label store holds no answered superpixel (every query skipped?)")
    maps = read_pool_superpixels(superpixels, pool.masks.shape, images=images)
    pixels = labelled_pixels(store, maps)
    truth = pool.masks[pixels.image, pixels.y, pixels.x]
    record: dict[str, Any] = {
        "labelled_pixels": len(pixels),
        "labelled_regions": pixels.num_regions,
        "label_noise_before_sieve": label_noise(pixels.cls, truth, ignore_index),
        "label_noise_non_void_before_sieve": label_noise(pixels.cls, truth, ignore_index, count_void=False),
        "void_share": float(np.mean(truth == ignore_index)) if len(pixels) else None,
        "sieve": False,
        "sieve_model": None,
    }
    keep = np.ones(len(pixels), dtype=bool)
    sieve = job.settings.get("superpixel", {})
    if r > 0 and sieve.get("sieve"):
        model = job.file("previous_model")
        started = time.perf_counter()
        confidence = label_confidences(model, pool.images[images], images, pixels,
                                       job.settings["inference"]["batch_size"], job.settings["inference"]["device"])
        keep, thresholds = sieve_pixels(pixels, confidence, sieve["sieve_min_size"], sieve["sieve_points"])
        record.update(sieve=True, sieve_model=str(model), sieved_regions=int(np.isfinite(thresholds).sum()),
                      sieve_seconds=round(time.perf_counter() - started, 3))
    sieved_out = int((~keep).sum())
    record.update(
        training_pixels=int(keep.sum()),
        sieved_out_pixels=sieved_out,
        sieved_share=sieved_out / max(len(pixels), 1),
        label_noise=label_noise(pixels.cls[keep], truth[keep], ignore_index),
        label_noise_non_void=label_noise(pixels.cls[keep], truth[keep], ignore_index, count_void=False),
        sieved_out_noise=label_noise(pixels.cls[~keep], truth[~keep], ignore_index),
        sieved_out_noise_non_void=label_noise(pixels.cls[~keep], truth[~keep], ignore_index, count_void=False),
    )
    log(f"round {r}: {len(pixels)} pixels in {pixels.num_regions} answered regions over {images.size} of "
        f"{len(pool)} images; " + (f"sieving with {record['sieve_model']} kept {int(keep.sum())} and sieved out "
                                   f"{sieved_out} ({100 * record['sieved_share']:.1f} %, "
                                   f"{record.get('sieved_regions', 0)} regions large enough)"
                                   if record["sieve"] else "no sieving"))
    kept = pixels.subset(keep)
    return TrainingTargets(points=PointLabels(image=kept.image, y=kept.y, x=kept.x, cls=kept.cls), record=record)
