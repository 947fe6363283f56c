"""The per-round inference dump: what acquisition needs from a round's model, over the pool.

The file layout and its readers are in :mod:`alseg.inference_file` and, for the pixel group,
:mod:`alseg.pixel_dump` (torch-free).

Images are streamed batch by batch: the (N, C, H, W) probabilities are never held (CamVid train would be
2.8 GB as float32), only one batch's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from torch import nn

from alseg import joblog
from alseg.atomic import atomic_path
from alseg.augment import normalise_images
from alseg.inference_file import (
    DEFAULT_COMPRESSION,
    ENTROPY_EPS,
    InferenceWriter,
    create_superpixel_group,
    write_file_attrs,
    write_superpixel_rows,
)
from alseg.mc_dropout import MC_MODES, MEAN_SOFTMAX, OFFICIAL, summed_passes
from alseg.models import enable_mc_dropout, forward_with_features, model_checksum, resolve_device
from alseg.pixel_dump import PixelDumpRequest, PixelDumpWriter

if TYPE_CHECKING:  # imported when used: pixel experiments need neither OpenCV nor scikit-image
    from alseg.superpixels import SuperpixelMaps


def probability_fields(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pixel and per-image summaries of class probabilities.

    Parameters
    ----------
    probs : Tensor, float32, shape (B, C, H, W)
        Softmax probabilities (or their mean over MC-dropout passes).

    Returns
    -------
    dict of Tensor
        ``top1``, ``top2``, ``entropy`` float32 (B, H, W); ``pred`` int64 (B, H, W);
        ``class_presence`` float32 (B, C); ``pred_pixels`` int64 (B, C). ``top2`` is 0 when C = 1.
    """
    batch, num_classes = probs.shape[:2]
    if num_classes >= 2:
        top_values, top_indices = probs.topk(2, dim=1)
        top1, top2, pred = top_values[:, 0], top_values[:, 1], top_indices[:, 0]
    else:
        top1, pred = probs[:, 0], torch.zeros_like(probs[:, 0], dtype=torch.int64)
        top2 = torch.zeros_like(top1)
    entropy = -(probs * torch.log(probs + ENTROPY_EPS)).sum(dim=1)
    # per-image class counts in one bincount: offset each image's predictions by image_index * C
    offsets = torch.arange(batch, device=probs.device).view(batch, 1, 1) * num_classes
    pred_pixels = torch.bincount((pred + offsets).reshape(-1), minlength=batch * num_classes)
    return {
        "top1": top1,
        "top2": top2,
        "entropy": entropy,
        "pred": pred,
        "class_presence": probs.mean(dim=(2, 3)),
        "pred_pixels": pred_pixels.view(batch, num_classes),
    }


#: The per-pixel fields that ``mc_mode: official`` averages over the passes (each pass's own values)
PER_PASS_FIELDS = ("top1", "top2", "entropy")

#: The groups a dump may hold (docs/architecture.md): per-pixel fields, per-image fields, per-superpixel
#: statistics
DUMP_GROUPS = ("pixel", "image", "superpixel")


def write_inference(
    path: str | os.PathLike[str],
    model: nn.Module,
    images: np.ndarray,
    num_classes: int,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    mc_passes: int = 0,
    attrs: dict[str, Any] | None = None,
    seed: int = 0,
    compression: str = DEFAULT_COMPRESSION,
    log: Callable[[str], None] | None = None,
    groups: Collection[str] = ("image",),
    superpixels: SuperpixelMaps | None = None,
    mc_mode: str = MEAN_SOFTMAX,
    pixels: PixelDumpRequest | None = None,
    image_range: tuple[int, int] | None = None,
    shards: int = 1,
) -> None:
    """Run ``model`` over ``images`` (or a shard of them) and write the inference dump atomically.

    Parameters
    ----------
    path : path
        Destination ``inference.h5``; written under a temporary name and renamed when complete.
    model : torch.nn.Module
        From :func:`alseg.models.build_model` / :func:`alseg.models.load_model`.
    images : array-like, uint8, shape (N, H, W, 3)
        The pool; anything sliceable on the first axis (an ``h5py.Dataset`` streams from disk).
    num_classes : int
        C; must equal the model's output channels.
    batch_size : int
    device : str, torch.device or None
        None: where the model is; ``"auto"``: CUDA if available. AMP is used on CUDA.
    mc_passes : int
        0: one deterministic pass (eval mode). T > 0: probabilities (and features) are the mean of T passes
        with dropout active (:func:`alseg.models.enable_mc_dropout`), reproducible for a given ``seed``
        and ``batch_size``: each batch draws its masks from its own seed (``seed`` and the batch's first
        pool image), so a shard's batches draw what the same batches of a single file draw.
    attrs : dict, optional
        Extra file attributes (``round``, ``classes``, ...).
    seed : int
        Seed of the dropout masks when ``mc_passes > 0``.
    compression : str
        Compression of the pixel and superpixel groups (:func:`alseg.inference_file.compression_options`).
    log : callable, optional
        Progress lines (default: :func:`alseg.joblog.log`, a bar on a terminal): a few, the last at the end.
    groups : collection of str
        The groups to write, of :data:`DUMP_GROUPS` (what the experiment's query unit reads).
    superpixels : SuperpixelMaps, optional
        Base superpixels of the images the dump covers, or of more consecutive ones
        (:func:`alseg.superpixels.read_superpixels` with ``images=slice(*image_range)``: a shard job holds only
        its own maps), needed by the ``superpixel`` group: the statistics of every base superpixel
        (:func:`alseg.acquire.superpixel_stats.superpixel_stats_from_probs`, one pass per batch).
    mc_mode : {"mean_softmax", "official"}
        ``official`` (:mod:`alseg.mc_dropout`; needs ``mc_passes`` >= 1): the pixel group's ``top1``,
        ``top2`` and ``entropy`` are the means over the passes of each pass's values, so that T times a
        strategy's score of them is the official sum of the per-pass uncertainty maps; everything else is of
        the mean softmax, as in ``mean_softmax``. The file's ``mc_mode`` attribute records the mode.
    pixels : PixelDumpRequest, optional
        The draws that the ``pixel`` group covers (:mod:`alseg.pixel_dump`), needed by that group.
    image_range : (int, int), optional
        Pool images ``start .. stop`` to run over and write: one shard of the dump
        (:func:`alseg.inference_file.shard_ranges`; ``start`` a multiple of ``batch_size``). None: all.
    shards : int
        How many shard files the whole dump has (the files' ``shards`` attribute, which the reader checks).
    """
    num_images, height, width = _checked_request(images, mc_passes, groups, superpixels, pixels)
    first, stop = image_range or (0, num_images)
    if not (0 <= first <= stop <= num_images and first % batch_size == 0):
        raise ValueError(f"image range {image_range} is not a range of whole batches of {batch_size} in the pool's "
                         f"{num_images} images")
    if mc_mode not in MC_MODES or (mc_mode == OFFICIAL and mc_passes < 1):
        raise ValueError(f"mc_mode must be one of {MC_MODES} ({OFFICIAL!r} with mc_passes >= 1), got {mc_mode!r} "
                         f"with mc_passes {mc_passes}")
    log = log or joblog.log
    device = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(device)
    was_training = model.training
    checksum = model_checksum(model)
    progress = _Progress(stop - first, log)
    try:
        if mc_passes > 0:
            enable_mc_dropout(model)
        else:
            model.eval()
        fork_devices = [device] if device.type == "cuda" else []
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5, torch.inference_mode(), \
                torch.random.fork_rng(devices=fork_devices):  # the caller's RNG state is left as it was
            writer = InferenceWriter(h5, stop - first, num_classes, groups)
            candidates = PixelDumpWriter(h5, pixels, stop - first, height, width,  # type: ignore[arg-type]
                                         summed_passes({"mc_mode": mc_mode, "mc_passes": mc_passes}), compression,
                                         first_image=first) if "pixel" in groups else None
            statistics = _SuperpixelStatistics(h5, superpixels, (first, stop), num_images, height, width,
                                               num_classes, compression) if "superpixel" in groups else None
            for start in range(first, stop, batch_size):
                if mc_passes > 0:
                    torch.manual_seed(batch_seed(seed, start))
                batch = np.asarray(images[start : min(start + batch_size, stop)])
                probs, features, per_pass = _mean_probabilities(model, batch, num_classes, mc_passes, device,
                                                                mc_mode == OFFICIAL)
                fields = {k: v.cpu().numpy() for k, v in {**probability_fields(probs), **per_pass}.items()}
                fields["features"] = features.cpu().numpy()
                writer.write(start - first, fields)
                if candidates is not None:
                    candidates.write(start, fields)
                if statistics is not None:
                    statistics.add(start, probs, fields)
                progress.done(min(start + batch_size, stop) - first)
            write_file_attrs(h5, first, stop, {
                "model": checksum, "mc_passes": int(mc_passes), "mc_mode": mc_mode, "seed": int(seed),
                "num_classes": int(num_classes), "compression": compression, "shards": int(shards),
                **(attrs or {})})
    finally:
        model.train(was_training)


def batch_seed(seed: int, first_image: int) -> int:
    """The MC-dropout seed of the batch that starts at pool image ``first_image``: the same batch draws the
    same masks in a single dump and in a shard."""
    return int(np.random.SeedSequence([int(seed), int(first_image)]).generate_state(1)[0])


def _checked_request(images: np.ndarray, mc_passes: int, groups: Collection[str],
                     superpixels: SuperpixelMaps | None, pixels: PixelDumpRequest | None) -> tuple[int, int, int]:
    """(N, H, W) of the pool, after checking what :func:`write_inference` was asked for."""
    num_images = len(images)
    if num_images and (len(images.shape) != 4 or images.shape[3] != 3):
        raise ValueError(f"images must be (N, H, W, 3), got shape {images.shape}")
    if mc_passes < 0:
        raise ValueError(f"mc_passes must be >= 0, got {mc_passes}")
    unknown = sorted(set(groups) - set(DUMP_GROUPS))
    if unknown:
        raise ValueError(f"unknown inference dump groups {unknown}; known: {DUMP_GROUPS}")
    if "superpixel" in groups and superpixels is None:
        raise ValueError("the superpixel group of an inference dump needs the base superpixels")
    if "pixel" in groups and pixels is None:
        raise ValueError("the pixel group of an inference dump needs the draws it covers (a PixelDumpRequest)")
    return (num_images, int(images.shape[1]), int(images.shape[2])) if num_images else (0, 0, 0)


def _mean_probabilities(model: nn.Module, batch: np.ndarray, num_classes: int, mc_passes: int,
                        device: torch.device, per_pass_maps: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Softmax probabilities (b, C, H, W) and pooled features (b, F) of a batch, averaged over
    ``max(1, mc_passes)`` passes; with ``per_pass_maps``, also the means over the passes of each pass's
    ``top1``, ``top2`` and ``entropy`` (b, H, W) (:func:`probability_fields`; else an empty dict)."""
    x = torch.from_numpy(normalise_images(batch)).to(device)
    passes = max(1, mc_passes)
    probs = torch.zeros((len(x), num_classes, *x.shape[2:]), dtype=torch.float32, device=device)
    features: torch.Tensor | None = None
    maps: dict[str, torch.Tensor] = {}
    for _ in range(passes):
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            logits, pooled = forward_with_features(model, x)
        if logits.shape[1] != num_classes:
            raise ValueError(f"model outputs {logits.shape[1]} classes, expected {num_classes}")
        pass_probs = torch.softmax(logits.float(), dim=1)
        probs += pass_probs
        features = pooled.float() if features is None else features + pooled.float()
        if per_pass_maps:
            pass_fields = probability_fields(pass_probs)
            for key in PER_PASS_FIELDS:
                maps[key] = pass_fields[key] if key not in maps else maps[key] + pass_fields[key]
    probs /= passes
    assert features is not None
    return probs, features / passes, {key: value / passes for key, value in maps.items()}


class _SuperpixelStatistics:
    """The ``/superpixel`` group of a dump, filled batch by batch."""

    def __init__(self, h5: h5py.File, maps: SuperpixelMaps, images: tuple[int, int], num_images: int, height: int,
                 width: int, num_classes: int, compression: str) -> None:
        _check_superpixel_maps(maps, images, num_images, height, width)
        self.h5, self.maps = h5, maps
        self.first_map = int(maps.images[0]) if len(maps.images) else 0  # the pool index of maps.labels[0]
        self.row_start = int(maps.offsets[images[0]])  # the global id of the file's first superpixel
        create_superpixel_group(h5, int(maps.offsets[images[1]]) - self.row_start, num_classes,
                                {"method": maps.attrs.get("method", ""),
                                 "pixels_per_superpixel": maps.attrs.get("pixels_per_superpixel")}, compression,
                                superpixel_start=self.row_start)

    def add(self, start: int, probs: torch.Tensor, fields: dict[str, np.ndarray]) -> None:
        from alseg.acquire.superpixel_stats import superpixel_stats_from_probs

        stop = start + len(probs)
        stats, mean_prob = superpixel_stats_from_probs(
            probs.cpu().numpy(), self.maps.labels[start - self.first_map : stop - self.first_map],
            self.maps.counts[start:stop],
            fields["top1"], fields["top2"], fields["pred"])
        write_superpixel_rows(self.h5, int(self.maps.offsets[start]) - self.row_start, {
            "pixel_count": stats.pixel_count, "uncertainty_sum": stats.uncertainty_sum,
            "pred_counts": stats.pred_counts, "mean_prob": mean_prob})


class _Progress:
    """Inference progress: images done and their rate (:class:`alseg.joblog.Progress`: a bar on a terminal,
    else a few lines)."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.total, self.started = total, time.perf_counter()
        self.progress = joblog.Progress(total, "infer", log)

    def done(self, count: int) -> None:
        rate = count / max(time.perf_counter() - self.started, 1e-9)
        self.progress.step(count, f"infer: {count}/{self.total} images, {rate:.1f} img/s")
        if count >= self.total:
            self.progress.close()


def _check_superpixel_maps(maps: SuperpixelMaps, images: tuple[int, int], num_images: int, height: int,
                           width: int) -> None:
    """The maps must be of consecutive pool images that include ``images`` (start, stop), at the images' size,
    with the offsets of the whole pool."""
    first = int(maps.images[0]) if len(maps.images) else images[0]
    consecutive = np.array_equal(maps.images, np.arange(first, first + len(maps.images)))
    if (maps.labels.shape[1:] != (height, width) or len(maps.offsets) != num_images + 1 or not consecutive
            or first > images[0] or first + len(maps.images) < images[1]):
        raise ValueError(f"superpixel maps of shape {maps.labels.shape} (pool images {maps.images[:3]}..., offsets of "
                         f"{len(maps.offsets) - 1} images) do not cover pool images {images[0]}..{images[1]} of "
                         f"{num_images} of {height}x{width}")
