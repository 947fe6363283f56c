"""Training batches: the image order of an epoch, and batches augmented with their labelled points.

Every sample's augmentation draws from a generator seeded by (seed, epoch, position in the epoch), so a
batch does not depend on how many threads prepare it (:func:`_batches`: samples of a batch in a thread
pool, the next batch prefetched while one trains). ``_Batch`` is what :func:`alseg.train.train_model`
feeds the model. In data-parallel training each rank prepares its share of every batch
(:func:`alseg.distributed.rank_positions`), with the seeds the samples have in the whole batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from alseg.augment import augment_sample
from alseg.data import ImagesOnDisk
from alseg.distributed import World, rank_positions
from alseg.points import PointsByImage


@dataclass(frozen=True)
class _Batch:
    """A prepared training batch.

    images: float32 (B, 3, h, w); point_batch/point_y/point_x/point_cls: int64 (P,) the points of all
    samples with their sample index; offered: points of the chosen images before augmentation; kept:
    points that survived it (``offered - kept`` fell outside crops); pool_images: int64 (B,) the pool
    index of each sample; shown: bool (B, h, w) the pixels that show the image (not padding); whole:
    bool (B,) samples that show all of their scaled image; stand_in: a rank's stand-in sample with no points
    or answers, trained with loss weight 0 (:func:`alseg.distributed.rank_positions`).
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
    stand_in: bool = False


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
    images: np.ndarray | ImagesOnDisk,
    points: PointsByImage,
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
    images: np.ndarray | ImagesOnDisk,
    points: PointsByImage,
    order: list[np.ndarray],
    seed: int,
    epoch: int,
    augment_cfg: dict[str, Any] | None,
    samples_pool: ThreadPoolExecutor | None,
    prefetch: ThreadPoolExecutor | None,
    world: World | None = None,
) -> Iterator[_Batch]:
    """Yield the prepared batches of an epoch (this rank's shares of them in a ``world`` of several ranks).

    With ``prefetch`` (one thread), batch k+1 is prepared while batch k trains; ``samples_pool`` augments
    the samples of a batch in parallel (a separate pool, so a prefetch task never waits on its own pool).
    """
    positions = np.cumsum([0] + [len(b) for b in order])

    def prepare(k: int) -> _Batch:
        seeds = [(seed, epoch, int(p)) for p in range(positions[k], positions[k + 1])]
        if world is None or world.size == 1:
            return _prepare_batch(images, points, order[k], seeds, augment_cfg, samples_pool)
        share, counts = rank_positions(len(order[k]), world)
        batch = _prepare_batch(images, points, order[k][share], [seeds[p] for p in share], augment_cfg, samples_pool)
        return batch if counts else _stand_in(batch)

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


def _stand_in(batch: _Batch) -> _Batch:
    """The batch without its points, marked as a stand-in (it only keeps a rank in the all-reduce)."""
    empty = batch.point_batch[:0]
    return dataclasses.replace(batch, point_batch=empty, point_y=empty, point_x=empty, point_cls=empty,
                               offered=0, kept=0, stand_in=True)
