"""Training on superpixel answers: the pixels of answered regions, sieved with the previous model (+S).

Sieving (``superpixel.sieve``, rounds >= 1) keeps, within each answered query's pixels, those whose
probability of the answer under round r-1's model is at or above the Kneedle knee of the region's sorted
confidences (:mod:`alseg.sieve`); regions under ``sieve_min_size`` pixels keep all. Round 0 is not sieved
(there is no model). docs/superpixels.md has the method and the measured label noise.

The training labels are label masks of the labelled images (:class:`alseg.points.DenseLabels`, 1 byte per
pixel), built a part of the labelled images at a time: a part's pixels (22 bytes each), truth, images and
confidences are held only while it is sieved. Sieving thresholds are per region and a region lies in one
image, so a part's thresholds are those of the whole pool; parts are whole inference batches, so the model
sees the same batches as it would over all images at once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alseg.joblog import log
from alseg.labels import LabelStore
from alseg.points import DenseLabels
from alseg.sieve import sieve_mask
from alseg.units.base import CHUNK_PIXELS, Job, TrainingTargets
from alseg.units.superpixel.files import read_pool_superpixels, superpixel_offsets
from alseg.units.superpixel.labels import (
    LabelledPixels,
    expand_labels,
    labelled_images,
    region_count,
    superpixel_labels,
)

PathLike = str | os.PathLike[str]

#: Labelled images' pixels per part that sieving holds at a time (about 22 bytes per labelled pixel, plus the
#: part's images and confidences)
PART_PIXELS = CHUNK_PIXELS // 4


def load_sieve_model(model_path: PathLike, device: str = "auto") -> tuple[Any, Any]:
    """The sieving model (round r-1's ``model.pt``) on its device, loaded once for all parts:
    ``(module, torch.device)``, what :func:`label_confidences` takes."""
    from alseg.models import load_model, resolve_device

    dev = resolve_device(device)
    return load_model(model_path, dev)[0], dev


def label_confidences(
    sieve_model: tuple[Any, Any],
    images: np.ndarray,
    image_index: np.ndarray,
    pixels: LabelledPixels,
    batch_size: int = 8,
) -> np.ndarray:
    """The model's probability of each labelled pixel's label (what sieving thresholds).

    Parameters
    ----------
    sieve_model : (module, torch.device)
        From :func:`load_sieve_model`.
    images : ndarray of uint8, shape (n, H, W, 3)
        The pool images ``image_index`` (ascending), covering every image of ``pixels``.
    image_index : ndarray of int, shape (n,)
    pixels : LabelledPixels
        Sorted by image (as :func:`alseg.units.superpixel.labels.labelled_pixels` returns them).
    batch_size : int
        Images per forward pass.

    Returns
    -------
    ndarray of float32, shape (P,)
    """
    import torch

    from alseg.augment import normalise_images
    from alseg.models import forward_logits

    model, dev = sieve_model
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


@dataclass
class LabelNoise:
    """How many labelled pixels train on a wrong label, counted over parts of the pool (:meth:`add`).

    Attributes
    ----------
    pixels : int
        Labelled pixels counted.
    void : int
        Those whose ground truth is void (the ignore value): the label is a class the pixel does not have.
    wrong_non_void : int
        Those with a ground-truth class other than their label.
    """

    pixels: int = 0
    void: int = 0
    wrong_non_void: int = 0

    def add(self, cls: np.ndarray, truth: np.ndarray, ignore_index: int | None) -> None:
        """Count pixels labelled ``cls`` (int (P,)) whose ground truth is ``truth`` (int (P,))."""
        void = truth == ignore_index if ignore_index is not None else np.zeros(truth.shape, dtype=bool)
        self.pixels += int(truth.size)
        self.void += int(np.count_nonzero(void))
        self.wrong_non_void += int(np.count_nonzero((cls != truth) & ~void))

    def share(self, count_void: bool = True) -> float | None:
        """The share of labelled pixels whose training label is wrong; None when there is none to count.

        ``count_void`` True: a void pixel counts as wrong, over all pixels (what training sees). False: void
        pixels are left out, over the pixels with a ground-truth class (the ``*_non_void`` figures; before
        issue 17 the only one).
        """
        if count_void:
            return (self.wrong_non_void + self.void) / self.pixels if self.pixels else None
        counted = self.pixels - self.void
        return self.wrong_non_void / counted if counted else None


@dataclass
class _Tally:
    """What the training record counts over the parts: noise before sieving, of the kept and of the sieved-out
    pixels, regions sieved and the seconds sieving took."""

    before: LabelNoise = field(default_factory=LabelNoise)
    kept: LabelNoise = field(default_factory=LabelNoise)
    sieved_out: LabelNoise = field(default_factory=LabelNoise)
    sieved_regions: int = 0
    sieve_seconds: float = 0.0


def superpixel_training_targets(store: LabelStore, job: Job, part_images: int | None = None) -> TrainingTargets:
    """The training labels of a superpixel experiment: pixels of answered regions, sieved when enabled, as
    label masks of the labelled images (:class:`alseg.points.DenseLabels`, unlabelled pixels at its
    ignore value), built ``part_images`` images at a time (default: whole inference batches of about
    :data:`PART_PIXELS`). The part size changes nothing but memory.

    The record (for ``train_log.json``): labelled and training pixel counts, the sieved share, regions
    sieved, and (from the pool's ground truth, for measurement only) the share of training pixels whose
    label is wrong, before and after sieving, and among the pixels sieved out (:meth:`LabelNoise.share`:
    ``label_noise*`` and ``sieved_out_noise`` count void pixels that receive a label as wrong; the
    ``*_non_void`` figures leave void pixels out).
    """
    superpixels, r, info = job.file("superpixels"), job.round_index, job.info
    offsets = superpixel_offsets(superpixels, len(job.stems))
    images = labelled_images(store, offsets)
    if images.size == 0:
        raise ValueError(f"round {r}: the label store holds no answered superpixel (every query skipped?)")
    label_of_base, region_of_base = superpixel_labels(store, int(offsets[-1]))
    settings = job.settings.get("superpixel", {})
    sieving = r > 0 and bool(settings.get("sieve"))
    sieve_model = load_sieve_model(job.file("previous_model"), job.settings["inference"]["device"]) if sieving else None
    batch = int(job.settings["inference"]["batch_size"])
    part = part_images or batch * max(1, PART_PIXELS // (info.height * info.width * batch))
    dtype, unlabelled = (np.uint8, 255) if info.num_classes <= 255 else (np.int16, -1)
    masks = np.full((images.size, info.height, info.width), unlabelled, dtype=dtype)
    tally = _Tally()
    for lo in range(0, images.size, part):
        chosen = images[lo:lo + part]
        maps = read_pool_superpixels(superpixels, job.pool_shape, images=chosen)
        pixels = expand_labels(label_of_base, region_of_base, maps)
        row = np.searchsorted(chosen, pixels.image)
        truth = job.masks_of(chosen)[row, pixels.y, pixels.x]
        keep = np.ones(len(pixels), dtype=bool)
        if sieve_model is not None:
            started = time.perf_counter()
            confidence = label_confidences(sieve_model, job.images_of(chosen), chosen, pixels, batch)
            keep, thresholds = sieve_pixels(pixels, confidence, settings["sieve_min_size"], settings["sieve_points"])
            tally.sieved_regions += int(np.isfinite(thresholds).sum())
            tally.sieve_seconds += time.perf_counter() - started
        for noise, which in ((tally.before, slice(None)), (tally.kept, keep), (tally.sieved_out, ~keep)):
            noise.add(pixels.cls[which], truth[which], info.ignore_index)
        masks[lo + row[keep], pixels.y[keep], pixels.x[keep]] = pixels.cls[keep]
    num_regions = region_count(region_of_base)
    record = _training_record(tally, num_regions, str(job.file("previous_model")) if sieving else None)
    log(f"round {r}: {tally.before.pixels} pixels in {num_regions} answered regions over {images.size} of "
        f"{len(job.stems)} images; " + (f"sieving with {record['sieve_model']} kept {tally.kept.pixels} and "
                                        f"sieved out {tally.sieved_out.pixels} ({100 * record['sieved_share']:.1f} %,"
                                        f" {tally.sieved_regions} regions large enough)" if sieving else "no sieving"))
    return TrainingTargets(points=DenseLabels(images, masks, unlabelled), record=record)


def _training_record(tally: _Tally, num_regions: int, sieve_model: str | None) -> dict[str, Any]:
    """The superpixel unit's part of ``train_log.json`` (:func:`superpixel_training_targets`)."""
    before, kept, out = tally.before, tally.kept, tally.sieved_out
    record: dict[str, Any] = {
        "labelled_pixels": before.pixels,
        "labelled_regions": num_regions,
        "label_noise_before_sieve": before.share(),
        "label_noise_non_void_before_sieve": before.share(count_void=False),
        "void_share": before.void / before.pixels if before.pixels else None,
        "sieve": sieve_model is not None,
        "sieve_model": sieve_model,
    }
    if sieve_model is not None:
        record.update(sieved_regions=tally.sieved_regions, sieve_seconds=round(tally.sieve_seconds, 3))
    record.update(
        training_pixels=kept.pixels,
        sieved_out_pixels=out.pixels,
        sieved_share=out.pixels / max(before.pixels, 1),
        label_noise=kept.share(),
        label_noise_non_void=kept.share(count_void=False),
        sieved_out_noise=out.share(),
        sieved_out_noise_non_void=out.share(count_void=False),
    )
    return record
