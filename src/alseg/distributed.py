"""Data-parallel training: one round's model trained by k processes (``training.gpus: k``).

The train job starts k ranks with torchrun (:func:`launch`); each rank runs :mod:`alseg.train_rank`, which
trains through :func:`alseg.train.train_model` inside :func:`process_group`. What makes k ranks train the
model one process would (docs/architecture.md, "Multi-GPU training"):

- every rank draws the same batch order, and rank j takes positions j, j+k, ... of each batch
  (:func:`rank_positions`); a sample's augmentation is seeded by its position in the epoch, so the k shares
  together are exactly one process's batch;
- each loss term (labelled points, "no" pixels, "yes" pairs) is a mean over the batch in one process; a rank
  scales its own mean by ``k * n_j / N`` (:func:`term_scales`, N all-reduced), so DistributedDataParallel's
  average of the ranks' gradients is one process's gradient;
- a rank with no sample in a batch (a last batch smaller than k) still takes part in the gradient all-reduce,
  with a stand-in sample whose loss weight is 0;
- BatchNorm: SyncBatchNorm on CUDA (statistics over the whole batch, as in one process); torch has no
  SyncBatchNorm on CPU, so CPU ranks (gloo, what the tests run) normalise over their own share: the one
  difference from one process, measured in tests/test_distributed.py.

Rank 0 scores val and keeps the checkpoint; the kept weights are broadcast so every rank returns the same
result, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: How long a rank waits for the others at a collective (rank 0 scores val while they wait).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the training ranks: ``rank`` of ``size``, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """The running process group's world (torchrun's ``LOCAL_RANK``), or a world of one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return World()
    rank = dist.get_rank()
    return World(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))


@contextlib.contextmanager
def process_group(cuda: bool) -> Iterator[World]:
    """Join the ranks started by torchrun (NCCL for ``cuda`` training, each rank on GPU ``LOCAL_RANK``, else
    gloo); leave on exit."""
    import torch
    import torch.distributed as dist

    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield current_world()
    finally:
        dist.destroy_process_group()


def rank_positions(batch_size: int, world: World) -> tuple[np.ndarray, bool]:
    """Positions (int64) in a batch of ``batch_size`` samples that this rank trains on, and whether they
    count: positions j, j+k, ...; a rank left without a sample gets position 0 as a stand-in that does
    not count (its loss weight is 0), since every rank must join each gradient all-reduce."""
    positions = np.arange(world.rank, batch_size, world.size, dtype=np.int64)
    if positions.size:
        return positions, True
    return np.zeros(1, dtype=np.int64), False


def all_reduce_sum(values: Sequence[float], world: World, device: torch.device) -> list[float]:
    """The sums of ``values`` over the ranks (the values themselves in a world of one)."""
    if world.size == 1:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def term_scales(local: Sequence[float], total: Sequence[float], world: World) -> tuple[float, ...]:
    """Per loss term, the factor ``k * n_j / N`` on this rank's mean: averaged over the ranks (as DDP
    averages gradients) the scaled means give the mean over the whole batch. 0 where N is 0."""
    return tuple(world.size * n / whole if whole else 0.0 for n, whole in zip(local, total))


def broadcast_from_main(value: object, world: World) -> object:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if world.size == 1:
        return value
    import torch.distributed as dist

    holder = [value if world.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def launch(processes: int, module: str, arguments: Sequence[str], threads: int) -> None:
    """Run ``python -m module arguments`` as ``processes`` ranks on this node with torchrun, each with
    ``threads // processes`` threads (at least 1); raise when a rank fails (torchrun stops the others).

    Raises
    ------
    RuntimeError
        A rank failed; its traceback is in the job's log (torchrun prints it).
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "--max-restarts=0", "-m", module, *arguments]
    per_rank = str(max(1, threads // processes))
    env = {**os.environ, "OMP_NUM_THREADS": per_rank, "ALSEG_RANK_THREADS": per_rank}
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # into this job's log (sys.stderr is the job's log tee)
        sys.stderr.write(line)
    code = process.wait()
    if code != 0:
        raise RuntimeError(f"training in {processes} processes failed (torchrun exit code {code}); the "
                           "failing rank's error is above in this job's log")


def rank_threads(default: int = 1) -> int:
    """Threads of one rank (set by :func:`launch`), ``default`` outside a launched rank."""
    return int(os.environ.get("ALSEG_RANK_THREADS", default))
