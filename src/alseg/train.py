"""Training a segmentation model on sparse labelled points, with checkpoint selection on val.

The loss is cross-entropy gathered at the labelled points only (``logits[b, :, y, x]``), averaged over the
points of a batch: no dense mask with an ignore value is ever built, so a point is never lost to a
nearest-neighbour resize and an unlabelled pixel never contributes. Dense full supervision is the special
case where every non-ignore pixel is a point (:meth:`PointLabels.from_masks`).

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
depend on how many loader threads prepare batches.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alseg.augment import augment_sample, normalise_images
from alseg.binary_loss import batch_answers, binary_answer_loss, mask_absent_logits
from alseg.config import BINARY_DEFAULTS, TRAINING_DEFAULTS
from alseg.metrics import SegmentationScores, confusion_matrix, scores_from_confusion
from alseg.models import build_model, forward_logits, resolve_device

#: Defaults of the training config: the official PixelPick CamVid settings (DESIGN 2.1).
DEFAULT_TRAIN: dict[str, Any] = {k: v for k, v in TRAINING_DEFAULTS.items() if k != "warm_start"}

#: Weights of the binary-answer losses (``absent_weight``, ``presence_weight``) and the log-sum-exp
#: sharpness ``lse_r`` (the config's ``binary.loss``).
DEFAULT_ANSWER_LOSS: dict[str, float] = dict(BINARY_DEFAULTS["loss"])

Log = Callable[[str], None]


def log_to_stderr(line: str) -> None:
    """Default progress sink: one line to stderr, flushed (job logs show it as it happens)."""
    print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------
# labelled points
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PointLabels:
    """Labelled pixels over the pool (the train split).

    Attributes
    ----------
    image : ndarray, int32, shape (P,)
        Pool image index of each point.
    y, x : ndarray, int32, shape (P,)
        Row and column.
    cls : ndarray, int16, shape (P,)
        Class id (never the ignore value).
    """

    image: np.ndarray
    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.int32).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.int32).reshape(-1)
        self.x = np.asarray(self.x, dtype=np.int32).reshape(-1)
        self.cls = np.asarray(self.cls, dtype=np.int16).reshape(-1)
        sizes = {a.size for a in (self.image, self.y, self.x, self.cls)}
        if len(sizes) != 1:
            raise ValueError(
                f"PointLabels arrays differ in length: image {self.image.size}, y {self.y.size}, "
                f"x {self.x.size}, cls {self.cls.size}"
            )

    def __len__(self) -> int:
        return int(self.image.size)

    @classmethod
    def from_masks(cls, masks: np.ndarray, ignore_index: int | None) -> PointLabels:
        """Every non-ignore pixel of dense masks as a point (full supervision).

        Parameters
        ----------
        masks : ndarray of int, shape (N, H, W)
        ignore_index : int or None

        Returns
        -------
        PointLabels
            Points sorted by (image, y, x). One ``nonzero`` per image keeps the int64 temporaries at one
            image's size (CamVid train: 63M points, about 0.9 GB as int32/int16).
        """
        parts: list[tuple[np.ndarray, ...]] = []
        for index, mask in enumerate(masks):
            labelled = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
            ys, xs = np.nonzero(labelled)
            parts.append((np.full(ys.size, index, np.int32), ys.astype(np.int32), xs.astype(np.int32),
                          mask[ys, xs].astype(np.int16)))
        if not parts:
            return cls(*(np.zeros(0, dtype) for dtype in (np.int32, np.int32, np.int32, np.int16)))
        return cls(*(np.concatenate(column) for column in zip(*parts)))

    def validate(self, num_images: int, height: int, width: int, num_classes: int) -> None:
        """Raise ValueError if a point lies outside the pool, the image, or the classes."""
        if not len(self):
            return
        problems = []
        if self.image.min() < 0 or self.image.max() >= num_images:
            problems.append(f"image index outside [0, {num_images})")
        if self.y.min() < 0 or self.y.max() >= height or self.x.min() < 0 or self.x.max() >= width:
            problems.append(f"pixel outside the {height}x{width} images")
        if self.cls.min() < 0 or self.cls.max() >= num_classes:
            problems.append(f"class outside [0, {num_classes}) (ignore-value points must not be labels)")
        if problems:
            raise ValueError("invalid labelled points: " + "; ".join(problems))


@dataclass(frozen=True)
class _PointsByImage:
    """Points grouped by image: image i's points are ``y[start[i]:start[i+1]]`` etc. (views, no copies)."""

    y: np.ndarray
    x: np.ndarray
    cls: np.ndarray
    start: np.ndarray

    @classmethod
    def group(cls, labels: PointLabels, num_images: int) -> _PointsByImage:
        order = np.argsort(labels.image, kind="stable")
        start = np.searchsorted(labels.image[order], np.arange(num_images + 1))
        return cls(labels.y[order], labels.x[order], labels.cls[order], start)

    def of(self, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = self.start[image], self.start[image + 1]
        return self.y[lo:hi], self.x[lo:hi], self.cls[lo:hi]


# ----------------------------------------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    """A prepared training batch.

    images: float32 (B, 3, h, w); point_batch/point_y/point_x/point_cls: int64 (P,) the points of all
    samples with their sample index; offered: points of the chosen images before augmentation; kept:
    points that survived it (``offered - kept`` fell outside crops); pool_images: int64 (B,) the pool
    index of each sample; shown: bool (B, h, w) the pixels that show the image (not padding); whole:
    bool (B,) samples that show all of their scaled image.
    """

    images: np.ndarray
    point_batch: np.ndarray
    point_y: np.ndarray
    point_x: np.ndarray
    point_cls: np.ndarray
    offered: int
    kept: int
    pool_images: np.ndarray
    shown: np.ndarray
    whole: np.ndarray


def _epoch_image_order(
    labelled: np.ndarray, batch_size: int, iterations: int | None, rng: np.random.Generator
) -> list[np.ndarray]:
    """Image indices of each batch of an epoch.

    ``iterations`` None: one shuffled pass over ``labelled`` (the last batch may be smaller). An int:
    exactly that many full batches, cycling through fresh shuffles (useful when few images are labelled).
    """
    if iterations is None:
        order = rng.permutation(labelled)
        return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    needed = iterations * batch_size
    passes = [rng.permutation(labelled) for _ in range(math.ceil(needed / labelled.size))]
    order = np.concatenate(passes)[:needed]
    return [order[i : i + batch_size] for i in range(0, needed, batch_size)]


def _prepare_batch(
    images: np.ndarray,
    points: _PointsByImage,
    batch_images: np.ndarray,
    sample_seeds: Sequence[Sequence[int]],
    augment_cfg: dict[str, Any] | None,
    pool: ThreadPoolExecutor | None,
) -> _Batch:
    """Augment the samples of one batch (in ``pool`` if given) and concatenate their points."""
    out_size = (int(images.shape[1]), int(images.shape[2]))

    def one(j: int) -> Any:
        ys, xs, cls = points.of(int(batch_images[j]))
        return augment_sample(images[batch_images[j]], ys, xs, cls, np.random.default_rng(sample_seeds[j]),
                              augment_cfg, out_size)

    indices = range(len(batch_images))
    samples = list(pool.map(one, indices)) if pool is not None else [one(j) for j in indices]
    counts = [s.ys.size for s in samples]
    stacked = np.stack([s.image for s in samples])
    shown = np.zeros((stacked.shape[0], stacked.shape[2], stacked.shape[3]), dtype=bool)
    for j, sample in enumerate(samples):
        top, bottom, left, right = sample.region
        shown[j, top:bottom, left:right] = True
    return _Batch(
        images=stacked,
        point_batch=np.repeat(np.arange(len(samples), dtype=np.int64), counts),
        point_y=np.concatenate([s.ys for s in samples]),
        point_x=np.concatenate([s.xs for s in samples]),
        point_cls=np.concatenate([s.classes for s in samples]),
        offered=int(sum(s.ys.size + s.n_outside for s in samples)),
        kept=int(sum(counts)),
        pool_images=np.asarray(batch_images, dtype=np.int64),
        shown=shown,
        whole=np.array([s.whole_image for s in samples], dtype=bool),
    )


def _batches(
    images: np.ndarray,
    points: _PointsByImage,
    order: list[np.ndarray],
    seed: int,
    epoch: int,
    augment_cfg: dict[str, Any] | None,
    samples_pool: ThreadPoolExecutor | None,
    prefetch: ThreadPoolExecutor | None,
) -> Iterator[_Batch]:
    """Yield the prepared batches of an epoch.

    With ``prefetch`` (one thread), batch k+1 is prepared while batch k trains; ``samples_pool`` augments
    the samples of a batch in parallel (a separate pool, so a prefetch task never waits on its own pool).
    """
    positions = np.cumsum([0] + [len(b) for b in order])

    def prepare(k: int) -> _Batch:
        seeds = [(seed, epoch, int(p)) for p in range(positions[k], positions[k + 1])]
        return _prepare_batch(images, points, order[k], seeds, augment_cfg, samples_pool)

    if prefetch is None:
        for k in range(len(order)):
            yield prepare(k)
        return
    pending: Future[_Batch] | None = prefetch.submit(prepare, 0) if order else None
    for k in range(len(order)):
        assert pending is not None
        batch = pending.result()
        pending = prefetch.submit(prepare, k + 1) if k + 1 < len(order) else None
        yield batch


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


# ----------------------------------------------------------------------------------------------------------
# prediction and evaluation
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------


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


def _batch_answer_masks(answers: np.ndarray, batch: _Batch, device: torch.device
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(absent, present)`` (B, C) of a batch, "yes" kept only where the sample shows its whole image;
    ``(None, None)`` when no sample of the batch has a usable answer."""
    absent, present = batch_answers(answers, batch.pool_images, device)
    present = present & torch.from_numpy(batch.whole).to(device)[:, None]
    if not bool(absent.any() or present.any()):
        return None, None
    return absent, present


def train_model(
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any] | None,
    images: np.ndarray,
    labels: PointLabels,
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
        ``loader_threads`` (threads preparing batches; 0 prepares them inline), ``eval_batch_size``.
    images : ndarray, uint8, shape (N, H, W, 3)
        The pool; only images with at least one labelled point or binary answer are trained on.
    labels : PointLabels
        Labelled points into ``images``.
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
        Receives one progress line per epoch; default: stderr.
    init_state : dict or None
        State dict to start from (warm start, e.g. the previous round's model); default: fresh
        random initialisation.
    answers : ndarray of int8, shape (N, C), or None
        Binary answers (:func:`alseg.binary_loss.answer_matrix`: +1 "class present", -1 "absent", 0 not
        asked). Images with answers but no point join each batch, up to ``batch_size`` of them (module
        docstring). Per batch: the point loss on :func:`alseg.binary_loss.mask_absent_logits`, plus
        :func:`alseg.binary_loss.binary_answer_loss` over the pixels that show the image, its "yes"
        part only for samples showing the whole scaled image (module docstring). An image whose every
        class is answered "no" is contradictory: its answers are dropped with a warning. None (or all
        zero): training is unchanged.
    answer_loss : dict or None
        ``absent_weight``, ``presence_weight``, ``lse_r``; defaults in :data:`DEFAULT_ANSWER_LOSS`.

    Returns
    -------
    TrainResult
        With answers, each history entry also has ``answer_loss`` (mean over the batches with answers).
    """
    log = log or log_to_stderr
    cfg = _merged_train_cfg(train_cfg, log)
    device = resolve_device(device if device is not None else cfg["device"])
    use_amp = bool(cfg["amp"]) and device.type == "cuda"
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {images.shape}")
    labels.validate(len(images), images.shape[1], images.shape[2], num_classes)
    labelled_images = np.unique(labels.image).astype(np.int64)
    answers, loss_weights = _checked_answers(answers, answer_loss, len(images), num_classes, log)
    answer_only = np.zeros(0, dtype=np.int64)  # images with answers and no labelled point
    if answers is not None:
        answer_only = np.setdiff1d(np.flatnonzero((answers != 0).any(axis=1)), labelled_images)
        if labelled_images.size == 0:
            labelled_images, answer_only = answer_only, answer_only[:0]
    if labelled_images.size == 0:
        raise ValueError("no labelled points: nothing to train on")
    has_val = val_images is not None and val_masks is not None and len(val_images) > 0
    points = _PointsByImage.group(labels, len(images))
    epochs = int(cfg["epochs"])
    iterations = None if cfg["iterations_per_epoch"] is None else int(cfg["iterations_per_epoch"])

    with _deterministic_algorithms():
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        model = build_model(model_cfg, num_classes)
        if init_state is not None:
            model.load_state_dict(init_state)
        model.to(device)
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

        history: list[dict[str, Any]] = []
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch, best_miou = 0, -math.inf
        answer_text = "" if answers is None else f" and {int((answers != 0).sum())} binary answers"
        log(
            f"train: {len(labels)} points{answer_text} on {labelled_images.size + answer_only.size}/"
            f"{len(images)} images, {epochs} epochs, device {device}{' (AMP)' if use_amp else ''}"
        )
        try:
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                model.train()
                order = _epoch_image_order(
                    labelled_images, int(cfg["batch_size"]), iterations, np.random.default_rng([seed, epoch])
                )
                if answer_only.size:  # each batch also takes up to batch_size answer-only images
                    extra = _epoch_image_order(answer_only, int(cfg["batch_size"]), len(order),
                                               np.random.default_rng([seed, epoch, 1]))
                    order = [np.concatenate([main, more]) for main, more in zip(order, extra)]
                # summed on the device: a float() per step would wait for the GPU every step
                loss_sum = torch.zeros((), device=device)
                answer_sum = torch.zeros((), device=device)
                points_used, offered, skipped, answer_batches = 0, 0, 0, 0
                lr = optimiser.param_groups[0]["lr"]
                for batch in _batches(images, points, order, seed, epoch, cfg["augment"],
                                      samples_pool, prefetch):
                    offered += batch.offered
                    absent = present = None
                    if answers is not None:
                        absent, present = _batch_answer_masks(answers, batch, device)
                    if batch.kept == 0 and absent is None:  # every point fell outside its crop, no answers
                        skipped += 1
                        continue
                    x = torch.from_numpy(batch.images).to(device, non_blocking=True)
                    targets = [torch.from_numpy(a).to(device) for a in
                               (batch.point_batch, batch.point_y, batch.point_x, batch.point_cls)]
                    with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                        logits = forward_logits(model, x)
                    if absent is None:
                        loss = point_loss(logits, *targets)
                    else:
                        assert present is not None
                        masked = mask_absent_logits(logits, absent) if bool(absent.any()) else logits
                        point = point_loss(masked, *targets) if batch.kept else logits.sum() * 0.0
                        extra = binary_answer_loss(
                            logits, absent, present, loss_weights["absent_weight"],
                            loss_weights["presence_weight"], loss_weights["lse_r"],
                            pixel_mask=torch.from_numpy(batch.shown).to(device),
                        )
                        loss = point + extra
                        answer_sum += extra.detach()
                        answer_batches += 1
                    optimiser.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                    loss_sum += (loss if absent is None else point).detach() * batch.kept
                    points_used += batch.kept
                scheduler.step()

                val_miou: float | None = None
                if has_val and (epoch % int(cfg["val_every"]) == 0 or epoch == epochs):
                    scores = evaluate(model, val_images, val_masks, num_classes, ignore_index,
                                      int(cfg["eval_batch_size"]), device)
                    val_miou = scores.miou
                    comparable = -math.inf if math.isnan(val_miou) else val_miou
                    if comparable > best_miou or best_state is None:
                        best_miou, best_epoch = comparable, epoch
                        best_state = _state_copy(model)
                elif not has_val and epoch == epochs:
                    best_state = _state_copy(model)
                    best_epoch = epoch

                seconds = time.perf_counter() - started
                entry = {
                    "epoch": epoch,
                    "loss": float(loss_sum) / points_used if points_used else float("nan"),
                    "seen_fraction": points_used / offered if offered else float("nan"),
                    "val_miou": val_miou,
                    "lr": lr,
                    "seconds": seconds,
                    "points": points_used,
                    "skipped_batches": skipped,
                }
                answer_text = ""
                if answers is not None:
                    entry["answer_loss"] = float(answer_sum) / answer_batches if answer_batches else float("nan")
                    answer_text = f" answers {entry['answer_loss']:.4f}"
                history.append(entry)
                val_text = f"{val_miou:.4f}" if val_miou is not None else "-"
                log(
                    f"epoch {epoch}/{epochs} loss {entry['loss']:.4f}{answer_text} seen "
                    f"{entry['seen_fraction']:.1%} val mIoU {val_text} lr {lr:.2e} {seconds:.1f}s"
                )
        finally:
            for executor in (samples_pool, prefetch):
                if executor is not None:
                    executor.shutdown(wait=True)

    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    best_val = best_miou if has_val and best_miou > -math.inf else float("nan")
    log(f"train: best epoch {best_epoch}, val mIoU {best_val:.4f}")
    return TrainResult(model=model, history=history, best_epoch=best_epoch, best_val_miou=best_val)
