"""Training a segmentation model on sparse labelled points, with checkpoint selection on val.

The loss is cross-entropy gathered at the labelled points only (``logits[b, :, y, x]``), averaged over the
points of a batch: no dense mask with an ignore value is ever built, so a point is never lost to a
nearest-neighbour resize and an unlabelled pixel never contributes. Dense full supervision is the special
case where every non-ignore pixel is a point (:class:`alseg.points.DenseLabels`).

Binary answers ("is class c in image i?", :mod:`alseg.binary_loss`) are an optional second signal: images
with an answer are trained on even without a labelled point. Such answer-only images do not take the place
of pixel-labelled ones: each batch of the pixel-labelled images (the epoch, as without answers) is joined by
up to ``batch_size`` answer-only images from their own shuffled cycle, so the pixel supervision keeps its
rate however many images are answered (mixed into one pool, answered images crowded out the dense
images of the CamVid benchmark). A "no" masks the class out of the softmax of
that image for the point loss and adds the absent-class loss on every image pixel of the sample; a "yes"
adds the log-sum-exp presence loss, but only for samples that show the whole (scaled) source image: a
crop may cut the class out, while a "no" survives any scale, crop or flip. Padding never counts.
Without answers, training is exactly what it was before they existed.

Reproducibility: on CPU a call is bitwise reproducible for a given seed. The model is initialised under
``torch.manual_seed(seed)``, batch order comes from a generator seeded by (seed, epoch), and every sample's
augmentation from a generator seeded by (seed, epoch, position in the epoch), so the result does not
depend on how many loader threads prepare batches, nor (but for BatchNorm on CPU) on how many processes
train it: run as one rank of k (``gpus: k``), a call trains its share of every batch (:mod:`alseg.distributed`).

The labelled points are :class:`alseg.points.PointLabels`, batches are prepared by :mod:`alseg.batches`,
their loss is :mod:`alseg.batch_loss`'s, and checkpoints are scored by :func:`alseg.predict.evaluate`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from alseg import joblog
from alseg.batch_loss import _batch_answer_masks, _batch_loss, _term_counts
from alseg.batches import _Batch, _batches, _epoch_image_order
from alseg.data import ImagesOnDisk
from alseg.defaults import TRAINING_DEFAULTS
from alseg.distributed import World, all_reduce_sum, broadcast_from_main, current_world, term_scales
from alseg.models import build_model, forward_logits, resolve_device
from alseg.points import PointLabels, TrainingLabels
from alseg.predict import evaluate
from alseg.training_data import _training_data, _TrainingData

#: Defaults of the training config: the official PixelPick CamVid settings (README, "Models and training").
DEFAULT_TRAIN: dict[str, Any] = {k: v for k, v in TRAINING_DEFAULTS.items() if k != "warm_start"}

Log = Callable[[str], None]


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    model : torch.nn.Module
        The best checkpoint on val (the last epoch if there is no val set), in eval mode.
    history : list of dict
        One entry per epoch: ``epoch`` (1-based), ``loss`` (mean over points), ``seen_fraction`` (labelled
        points that survived augmentation / points of the images drawn), ``val_miou`` (None when not
        evaluated that epoch), ``lr`` (head learning rate), ``seconds``, ``points``, ``skipped_batches``
        (batches whose points all fell outside their crops).
    best_epoch : int
        1-based epoch of the returned weights.
    best_val_miou : float
        Val mIoU of the returned weights (NaN without a val set).
    """

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_miou: float = float("nan")


def _parameter_groups(model: nn.Module, lr: float, backbone_lr: float) -> list[dict[str, Any]]:
    """Encoder parameters at ``backbone_lr``, everything else (decoder, head) at ``lr``."""
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    encoder = [p for p in model.parameters() if id(p) in encoder_ids]
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    return [{"params": rest, "lr": lr, "name": "head"}, {"params": encoder, "lr": backbone_lr, "name": "encoder"}]


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the state dict that later optimiser steps do not change."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@contextlib.contextmanager
def _deterministic_algorithms() -> Iterator[None]:
    """Deterministic kernels inside the block (warn where none exists); the previous setting after."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def _quiet(message: str) -> None:
    """The log of ranks other than 0: they train the same model, rank 0 reports it."""


def _merged_train_cfg(train_cfg: dict[str, Any] | None, log: Log) -> dict[str, Any]:
    cfg = {**DEFAULT_TRAIN, **(train_cfg or {})}
    unknown = sorted(set(cfg) - set(DEFAULT_TRAIN))
    if unknown:
        log(f"train: ignoring unknown train config keys {unknown}")
    if int(cfg["epochs"]) < 1 or int(cfg["batch_size"]) < 1 or int(cfg["val_every"]) < 1:
        raise ValueError("train config: epochs, batch_size and val_every must be >= 1")
    if cfg["iterations_per_epoch"] is not None and int(cfg["iterations_per_epoch"]) < 1:
        raise ValueError("train config: iterations_per_epoch must be null or >= 1")
    return cfg


@dataclass(frozen=True)
class _Validation:
    """The checkpoint selection set: images uint8 (M, H', W', 3), masks (M, H', W'), and how to score it."""

    images: np.ndarray
    masks: np.ndarray
    num_classes: int
    ignore_index: int | None


@dataclass
class _Run:
    """The model being trained and how: optimiser, scheduler, gradient scaler, device, AMP, the merged
    train config, the seed, the threads that prepare batches (None: inline), the ranks training it and
    what the batches go through (``model`` in one process, its DistributedDataParallel wrapper in several)."""

    model: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    cfg: dict[str, Any]
    seed: int
    samples_pool: ThreadPoolExecutor | None
    prefetch: ThreadPoolExecutor | None
    world: World
    forward: nn.Module

    def close(self) -> None:
        for executor in (self.samples_pool, self.prefetch):
            if executor is not None:
                executor.shutdown(wait=True)


@dataclass
class _EpochTotals:
    """Sums over the batches of an epoch. The losses stay on the device: a float() per step would wait
    for the GPU every step."""

    loss_sum: torch.Tensor
    answer_sum: torch.Tensor
    lr: float
    points: int = 0
    offered: int = 0
    skipped: int = 0
    answer_batches: int = 0


@dataclass
class _Best:
    """The checkpoint kept so far: a CPU copy of its weights, its 1-based epoch and val mIoU (NaN as -inf)."""

    state: dict[str, torch.Tensor] | None = None
    epoch: int = 0
    miou: float = -math.inf


def _start_run(model_cfg: dict[str, Any], cfg: dict[str, Any], num_classes: int, seed: int, device: torch.device,
               init_state: dict[str, torch.Tensor] | None, world: World) -> _Run:
    """The model initialised under ``torch.manual_seed(seed)`` (or loaded from ``init_state``) on
    ``device``, Adam with the encoder at ``backbone_lr``, MultiStepLR, the gradient scaler (AMP on CUDA
    only) and ``loader_threads`` threads: one prefetches the next batch, more augment samples in parallel.
    In a ``world`` of several ranks: SyncBatchNorm on CUDA, and DistributedDataParallel."""
    use_amp = bool(cfg["amp"]) and device.type == "cuda"
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    model = build_model(model_cfg, num_classes)
    if init_state is not None:
        model.load_state_dict(init_state)
    if world.size > 1 and device.type == "cuda":  # before the optimiser: it makes new parameters
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    forward = model
    if world.size > 1:
        forward = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimiser = torch.optim.Adam(
        _parameter_groups(model, float(cfg["lr"]), float(cfg["backbone_lr"])),
        weight_decay=float(cfg["weight_decay"]),
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimiser, milestones=[int(m) for m in cfg["milestones"]], gamma=float(cfg["gamma"])
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    threads = int(cfg["loader_threads"])
    samples_pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    prefetch = ThreadPoolExecutor(max_workers=1) if threads > 0 else None
    return _Run(model, optimiser, scheduler, scaler, device, use_amp, cfg, seed, samples_pool, prefetch, world,
                forward)


def _epoch_order(run: _Run, data: _TrainingData, epoch: int) -> list[np.ndarray]:
    """Pool indices of each batch of the epoch: the labelled images' order, each batch joined by up to
    ``batch_size`` answer-only images from their own shuffled cycle."""
    batch_size = int(run.cfg["batch_size"])
    iterations = None if run.cfg["iterations_per_epoch"] is None else int(run.cfg["iterations_per_epoch"])
    order = _epoch_image_order(data.labelled_images, batch_size, iterations,
                               np.random.default_rng([run.seed, epoch]))
    if data.answer_only.size:
        extra = _epoch_image_order(data.answer_only, batch_size, len(order),
                                   np.random.default_rng([run.seed, epoch, 1]))
        order = [np.concatenate([main, more]) for main, more in zip(order, extra)]
    return order


def _train_step(run: _Run, data: _TrainingData, batch: _Batch, totals: _EpochTotals) -> None:
    """One optimiser step on a batch (this rank's share of it); a batch whose points all fell outside their
    crops and that has no answer is skipped (and counted)."""
    totals.offered += batch.offered
    absent = present = None
    if data.answers is not None and not batch.stand_in:
        absent, present = _batch_answer_masks(data.answers, batch, run.device)
    counts = _term_counts(batch, absent, present)
    whole_batch = all_reduce_sum(counts, run.world, run.device)
    if not any(whole_batch):  # every point fell outside its crop, no answers
        totals.skipped += 1
        return
    x = torch.from_numpy(batch.images).to(run.device, non_blocking=True)
    targets = [torch.from_numpy(a).to(run.device) for a in
               (batch.point_batch, batch.point_y, batch.point_x, batch.point_cls)]
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.use_amp):
        logits = forward_logits(run.forward, x)
    scales = term_scales(counts, whole_batch, run.world)
    loss, point, answer = _batch_loss(logits, batch, targets, absent, present, data.loss_weights, run.device,
                                      scales)
    if whole_batch[1] or whole_batch[2]:
        totals.answer_batches += 1
    if answer is not None:
        totals.answer_sum += answer.detach() / run.world.size
    run.optimiser.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimiser)
    run.scaler.update()
    totals.loss_sum += point.detach() * batch.kept
    totals.points += batch.kept


def _train_epoch(run: _Run, data: _TrainingData, epoch: int) -> _EpochTotals:
    """Every batch of the epoch through :func:`_train_step`, then one scheduler step."""
    run.forward.train()
    order = _epoch_order(run, data, epoch)
    totals = _EpochTotals(loss_sum=torch.zeros((), device=run.device), answer_sum=torch.zeros((), device=run.device),
                          lr=run.optimiser.param_groups[0]["lr"])
    for batch in _batches(data.images, data.points, order, run.seed, epoch, run.cfg["augment"], run.samples_pool,
                          run.prefetch, run.world):
        _train_step(run, data, batch, totals)
    run.scheduler.step()
    if run.world.size > 1:  # the epoch's record sums over the ranks' shares
        loss_sum, points, offered, answer_sum = all_reduce_sum(
            [float(totals.loss_sum), totals.points, totals.offered, float(totals.answer_sum)], run.world, run.device)
        totals.loss_sum.fill_(loss_sum)
        totals.answer_sum.fill_(answer_sum)
        totals.points, totals.offered = int(points), int(offered)
    return totals


def _keep_checkpoint(run: _Run, val: _Validation | None, best: _Best, epoch: int, epochs: int) -> float | None:
    """Score val every ``val_every`` epochs and at the last, keeping the weights of the best mIoU (the
    first scored epoch's even when NaN); without val keep the last epoch's. Returns the epoch's val mIoU,
    None when it was not scored. Only rank 0 scores and keeps checkpoints."""
    if not run.world.is_main:
        return None
    if val is not None and (epoch % int(run.cfg["val_every"]) == 0 or epoch == epochs):
        scores = evaluate(run.model, val.images, val.masks, val.num_classes, val.ignore_index,
                          int(run.cfg["eval_batch_size"]), run.device)
        comparable = -math.inf if math.isnan(scores.miou) else scores.miou
        if comparable > best.miou or best.state is None:
            best.miou, best.epoch = comparable, epoch
            best.state = _state_copy(run.model)
        return scores.miou
    if val is None and epoch == epochs:
        best.state = _state_copy(run.model)
        best.epoch = epoch
    return None


def _history_entry(epoch: int, totals: _EpochTotals, val_miou: float | None, seconds: float,
                   with_answers: bool) -> dict[str, Any]:
    """The epoch's entry of :attr:`TrainResult.history`."""
    entry = {
        "epoch": epoch,
        "loss": float(totals.loss_sum) / totals.points if totals.points else float("nan"),
        "seen_fraction": totals.points / totals.offered if totals.offered else float("nan"),
        "val_miou": val_miou,
        "lr": totals.lr,
        "seconds": seconds,
        "points": totals.points,
        "skipped_batches": totals.skipped,
    }
    if with_answers:
        entry["answer_loss"] = (float(totals.answer_sum) / totals.answer_batches if totals.answer_batches
                                else float("nan"))
    return entry


def _log_epoch(progress: joblog.Progress, entry: dict[str, Any], epochs: int) -> None:
    """The epoch's progress: a line every few epochs, or the terminal's bar (:class:`alseg.joblog.Progress`)."""
    answer_text = f" answers {entry['answer_loss']:.4f}" if "answer_loss" in entry else ""
    val_text = f"{entry['val_miou']:.4f}" if entry["val_miou"] is not None else "-"
    progress.step(
        entry["epoch"],
        f"epoch {entry['epoch']}/{epochs} loss {entry['loss']:.4f}{answer_text} seen "
        f"{entry['seen_fraction']:.1%} val mIoU {val_text} lr {entry['lr']:.2e} {entry['seconds']:.1f}s",
        f"loss {entry['loss']:.4f} val mIoU {val_text}",
    )


def _log_start(log: Log, run: _Run, data: _TrainingData, num_points: int) -> None:
    answer_text = "" if data.answers is None else f" and {int((data.answers != 0).sum())} binary answers"
    log(
        f"train: {num_points} points{answer_text} on {data.labelled_images.size + data.answer_only.size}/"
        f"{len(data.images)} images, {int(run.cfg['epochs'])} epochs, device {run.device}"
        f"{' (AMP)' if run.use_amp else ''}{f', {run.world.size} processes' if run.world.size > 1 else ''}"
    )


def _train_epochs(run: _Run, data: _TrainingData, val: _Validation | None, log: Log
                  ) -> tuple[list[dict[str, Any]], _Best]:
    """Every epoch: train, score val and keep the best checkpoint, record and log the epoch. Every rank
    returns rank 0's record and checkpoint."""
    epochs = int(run.cfg["epochs"])
    history: list[dict[str, Any]] = []
    best = _Best()
    progress = joblog.Progress(epochs, "train", log)
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            totals = _train_epoch(run, data, epoch)
            val_miou = _keep_checkpoint(run, val, best, epoch, epochs)
            entry = _history_entry(epoch, totals, val_miou, time.perf_counter() - started, data.answers is not None)
            history.append(entry)
            _log_epoch(progress, entry, epochs)
    finally:
        progress.close()
    history, best = broadcast_from_main((history, best), run.world)  # type: ignore[misc]
    return history, best


def _best_result(model: nn.Module, history: list[dict[str, Any]], best: _Best, has_val: bool, log: Log
                 ) -> TrainResult:
    """The model with the kept checkpoint's weights, in eval mode, and the training record."""
    assert best.state is not None
    model.load_state_dict(best.state)
    model.eval()
    best_val = best.miou if has_val and best.miou > -math.inf else float("nan")
    log(f"train: best epoch {best.epoch}, val mIoU {best_val:.4f}")
    return TrainResult(model=model, history=history, best_epoch=best.epoch, best_val_miou=best_val)


def train_model(
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any] | None,
    images: np.ndarray | ImagesOnDisk,
    labels: TrainingLabels | PointLabels,
    val_images: np.ndarray | None,
    val_masks: np.ndarray | None,
    num_classes: int,
    ignore_index: int | None,
    seed: int,
    device: str | torch.device | None = None,
    log: Log | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    answers: np.ndarray | None = None,
    answer_loss: dict[str, float] | None = None,
) -> TrainResult:
    """Train a model on labelled points (and binary answers); keep the checkpoint with the best val mIoU.

    Parameters
    ----------
    model_cfg : dict
        See :func:`alseg.models.build_model`.
    train_cfg : dict or None
        Keys and defaults in :data:`DEFAULT_TRAIN`: ``epochs``, ``batch_size``, ``lr`` (decoder and head),
        ``backbone_lr`` (encoder), ``weight_decay`` (Adam), ``milestones`` (epochs) and ``gamma``
        (MultiStepLR), ``val_every`` (evaluate every k epochs and at the last), ``augment`` (see
        :func:`alseg.augment.augment_sample`; None disables), ``amp`` (CUDA only), ``device``,
        ``iterations_per_epoch`` (None: one pass over the labelled images; an int: that many batches),
        ``loader_threads`` (threads preparing batches; 0 prepares them inline), ``eval_batch_size``, ``gpus``
        (the ranks of the process group this call is one of, :mod:`alseg.distributed`; 1: no process group).
    images : ndarray, uint8, shape (N, H, W, 3), or ImagesOnDisk
        The pool; only images with at least one labelled point or binary answer are trained on. On disk
        (:class:`alseg.data.ImagesOnDisk`): each sample is read as a batch needs it, the same training.
    labels : TrainingLabels or PointLabels
        Labelled points into ``images`` (:mod:`alseg.points`).
    val_images : ndarray, uint8, shape (M, H', W', 3), or None
    val_masks : ndarray, uint8, shape (M, H', W'), or None
        Checkpoint selection set (never the test split). None or M = 0: the last epoch is kept.
    num_classes : int
    ignore_index : int or None
        Value of unlabelled pixels in ``val_masks``.
    seed : int
        Seeds model initialisation, batch order and augmentation.
    device : str, torch.device or None
        Overrides ``train_cfg["device"]``; ``"auto"``: CUDA if available, else CPU.
    log : callable or None
        Receives the progress lines: the first epoch's, about every N-th and the last
        (:class:`alseg.joblog.Progress`); default: :func:`alseg.joblog.log` (a bar on a terminal).
    init_state : dict or None
        State dict to start from (warm start, e.g. the previous round's model); default: fresh
        random initialisation.
    answers : ndarray of int8, shape (N, C), or None
        Binary answers (:func:`alseg.units.binary.answer_matrix`: +1 "class present", -1 "absent", 0 not
        asked). Images with answers but no point join each batch, up to ``batch_size`` of them (module
        docstring). Per batch: the point loss on :func:`alseg.binary_loss.mask_absent_logits`, plus
        :func:`alseg.binary_loss.binary_answer_loss` over the pixels that show the image, its "yes"
        part only for samples showing the whole scaled image (module docstring). An image whose every
        class is answered "no" is contradictory: its answers are dropped with a warning. None (or all
        zero): training is unchanged.
    answer_loss : dict or None
        ``absent_weight``, ``presence_weight``, ``lse_r``; defaults in
        :data:`alseg.training_data.DEFAULT_ANSWER_LOSS`.

    Returns
    -------
    TrainResult
        With answers, each history entry also has ``answer_loss`` (mean over the batches with answers).
    """
    world = current_world()
    log = (log or joblog.log) if world.is_main else _quiet
    cfg = _merged_train_cfg(train_cfg, log)
    if int(cfg["gpus"]) != world.size:
        raise ValueError(f"training.gpus is {cfg['gpus']}, but this process is one of {world.size}: start the "
                         "ranks with torchrun (alseg.model_job.train does) or set gpus to the number of ranks")
    device = resolve_device(device if device is not None else cfg["device"])
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    data = _training_data(images, labels, num_classes, answers, answer_loss, log)
    has_val = val_images is not None and val_masks is not None and len(val_images) > 0
    val = _Validation(val_images, val_masks, num_classes, ignore_index) if has_val else None
    with _deterministic_algorithms():
        run = _start_run(model_cfg, cfg, num_classes, seed, device, init_state, world)
        _log_start(log, run, data, len(labels))
        try:
            history, best = _train_epochs(run, data, val, log)
        finally:
            run.close()
    return _best_result(run.model, history, best, has_val, log)
