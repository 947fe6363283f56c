"""The model job of a round: train on the cumulative labels, evaluate on test, run over the pool.

One job (the ``train`` rule), so that torch is imported and the data loaded once per round rather than
three times (benchmarks/default_run.py). What the labels give training comes from the units whose part
of the store holds answers (:meth:`alseg.units.base.QueryUnit.training_targets`): labelled pixels,
image-level answers and their loss weights; the dump holds what the experiment's unit reads
(:attr:`~alseg.units.base.QueryUnit.dump_groups`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alseg import __version__
from alseg.atomic import atomic_path, write_json_atomic
from alseg.data import ImagesOnDisk, Split, load_split
from alseg.joblog import log
from alseg.labels import LabelStore, load_labels
from alseg.points import POINT_COLUMNS, PointColumn, TrainingLabels
from alseg.torchfile import model_file_checksum
from alseg.units import UNITS, Job, TrainingTargets, unit_named
from alseg.units.base import POOL_IN_MEMORY_BYTES

PathLike = str | os.PathLike[str]


def limit_threads(threads: int) -> None:
    """Give torch the job's threads, never more than the cores this process may run on.

    Call it before anything imports torch: it also makes idle OpenMP threads sleep instead of spin
    (``OMP_WAIT_POLICY=PASSIVE``, unless set). A trade measured in BENCHMARKS.md (section 6): on an
    otherwise idle machine spinning threads are faster (51 against 75 ms per step of the default
    model on 2 cores), but when a program outside this login session keeps a core busy, spinning
    threads stall at every barrier (640 against 198 ms). Set ``OMP_WAIT_POLICY=ACTIVE`` on a
    dedicated machine.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(max(1, min(int(threads), len(os.sched_getaffinity(0)))))


def training_targets(store: LabelStore, job: Job) -> tuple[TrainingLabels, TrainingTargets, dict[str, Any]]:
    """Every unit's contribution to training, combined: the labelled pixels (the units' parts in unit
    order), the image-level answers (at most one unit may give them) and each unit's record for the
    training log."""
    parts = {unit.name: unit.training_targets(store, job) for unit in UNITS.values()}
    parts = {name: part for name, part in parts.items() if part is not None}
    labels = TrainingLabels(tuple(part.points for part in parts.values() if part.points is not None))
    with_answers = [part for part in parts.values() if part.answers is not None]
    if len(with_answers) > 1:
        raise ValueError(f"round {job.round_index}: the label store holds image-level answers of "
                         f"{len(with_answers)} units; an experiment trains on one unit's answers")
    answers = with_answers[0] if with_answers else TrainingTargets()
    return labels, answers, {name: part.record for name, part in parts.items() if part.record}


_DIGEST_CHUNK_BYTES = 1 << 26  # the digest reads images on disk 64 MB at a time


def training_digest(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """A hex digest of everything a training reads: equal digests mean the same training.

    Parameters
    ----------
    settings : mapping
        JSON-able settings (model, schedule, seed, ...); key order does not matter.
    arrays : mapping of str to ndarray, ImagesOnDisk or PointColumn
        The data (training points, images, ...): names, dtypes, shapes and bytes all count. Images on disk
        are read a chunk at a time and point columns a piece at a time (the digest of the loaded array).
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    for name in sorted(arrays):
        array = arrays[name]
        array = array if isinstance(array, (ImagesOnDisk, PointColumn)) else np.ascontiguousarray(array)
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        for piece in _pieces(array):  # fed in parts, the hash is the whole's
            h.update(memoryview(np.ascontiguousarray(piece)).cast("B"))
    return h.hexdigest()


def _pieces(array: np.ndarray | ImagesOnDisk | PointColumn) -> Iterator[np.ndarray]:
    """Consecutive parts of ``array``: a point column's own pieces, else about 64 MB each."""
    if isinstance(array, PointColumn):
        yield from array.pieces()
        return
    step = max(1, _DIGEST_CHUNK_BYTES // max(array.nbytes // max(len(array), 1), 1))
    for start in range(0, len(array), step):
        yield array[start : start + step]


@dataclass
class TrainingInputs:
    """What a round's training reads, and its :func:`training_digest`."""

    points: TrainingLabels
    answers: TrainingTargets
    records: dict[str, Any]
    val: Split
    seed: int
    training: dict[str, Any]
    digest: str


def training_inputs(job: Job, store: LabelStore, init_model: PathLike | None = None,
                    version: str = __version__) -> TrainingInputs:
    """The training targets of ``store``, the val split, the seed and schedule of round ``job.round_index``
    (``job.settings``: what the train rule's params hold), and the digest of all of them (``train_log.json``'s
    ``training_digest``; ``alseg audit`` recomputes it). ``init_model``: the model training starts from,
    named in the digest by its weights' checksum (not its path, which depends on where the run is read
    from); ``version``: the alseg version the digest names (an audit names the run's)."""
    info = job.info
    val = load_split(job.dataset, "val")
    points, answers, records = training_targets(store, job)
    seed = job.seed("train")
    training = {k: v for k, v in job.settings["training"].items() if k != "warm_start"}
    digest = training_digest(
        {"model": job.settings["model"], "training": training, "seed": seed, "classes": info.num_classes,
         "ignore_index": info.ignore_index, "answer_loss": answers.answer_loss,
         "init_model": model_file_checksum(init_model) if init_model is not None else None, "alseg": version},
        {**{name: points.column(name) for name in POINT_COLUMNS},
         "answers": answers.answers if answers.answers is not None else np.zeros(0, np.int8),
         "pool": job.training_images, "val": val.images, "val_masks": val.masks},
    )
    return TrainingInputs(points, answers, records, val, seed, training, digest)


def train(dataset: PathLike, labels: PathLike, settings: Mapping[str, Any], round_index: int, out_model: PathLike,
          out_log: PathLike, init_model: PathLike | None = None, twin_model: PathLike | None = None,
          twin_log: PathLike | None = None, **files: PathLike | None) -> None:
    """Train round ``round_index``'s model on the cumulative labels; select the checkpoint on val.

    ``settings``: the experiment's ``seed``, ``model``, ``training``, ``inference`` and what its unit's
    training reads (:meth:`~alseg.units.base.QueryUnit.train_settings`). ``files``: the unit's files
    (``superpixels``, ``previous_model`` for sieving, ...).

    ``twin_model`` and its ``twin_log``: another experiment's model of the same round (round 0,
    :func:`alseg.config.round0_twins`). When the log's ``training_digest`` equals this training's, the
    training would repeat it exactly: that model is copied instead, and the log says so (``model_of``).
    Otherwise this model is trained as usual: in this process, or with ``training.gpus`` k > 1 by k ranks
    that torchrun starts (:mod:`alseg.train_rank`, :mod:`alseg.distributed`), rank 0 writing the files.
    """
    job = Job(dataset, settings, round_index, files)
    inputs = training_inputs(job, load_labels(labels), init_model)
    twin = json.loads(Path(twin_log).read_text()) if twin_model and twin_log and init_model is None else None
    if twin is not None and twin.get("training_digest") == inputs.digest:
        log(f"round {round_index}: the same training as {twin_model} (digest {inputs.digest[:12]}): its model is "
            "reused, not retrained")
        with atomic_path(out_model) as tmp:
            shutil.copyfile(twin_model, tmp)  # type: ignore[arg-type]
        write_json_atomic(out_log, {**twin, "model_of": str(twin_model)})
        return
    training = inputs.training
    gpus = int(training.get("gpus", 1))
    if gpus == 1:
        _train_and_save(job, inputs, out_model, out_log, init_model)
        return
    del job, inputs  # the ranks read the pool themselves: this process keeps no copy while they train
    import torch

    from alseg.distributed import launch
    from alseg.models import resolve_device

    if resolve_device(training.get("device", "auto")).type == "cuda" and torch.cuda.device_count() < gpus:
        raise ValueError(f"training.gpus is {gpus}, but this job sees {torch.cuda.device_count()} GPU(s) "
                         f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): ask for "
                         f"{gpus} GPUs (the SLURM profile does) or set training.gpus to what the job has")
    log(f"round {round_index}: training in {gpus} processes (training.gpus)")
    request = {"dataset": str(dataset), "labels": str(labels), "settings": dict(settings), "round_index": round_index,
               "out_model": str(out_model), "out_log": str(out_log),
               "init_model": None if init_model is None else str(init_model),
               "files": {name: str(path) for name, path in files.items() if path is not None}}
    with tempfile.TemporaryDirectory(prefix="alseg_ranks_") as folder:
        request_file = Path(folder) / "request.json"
        request_file.write_text(json.dumps(request))
        launch(gpus, "alseg.train_rank", [str(request_file)], threads=torch.get_num_threads())


def train_on_rank(dataset: PathLike, labels: PathLike, settings: Mapping[str, Any], round_index: int,
                  out_model: PathLike, out_log: PathLike, init_model: PathLike | None,
                  files: Mapping[str, PathLike]) -> None:
    """One rank's part of :func:`train` with ``training.gpus`` > 1 (inside :func:`alseg.distributed.process_group`):
    every rank reads the data and trains its share of each batch; rank 0 writes the model and its log."""
    job = Job(dataset, settings, round_index, dict(files))
    _train_and_save(job, training_inputs(job, load_labels(labels), init_model), out_model, out_log, init_model)


def _train_and_save(job: Job, inputs: TrainingInputs, out_model: PathLike, out_log: PathLike,
                    init_model: PathLike | None) -> None:
    """Train on ``inputs`` (from ``init_model`` when given) and write the model and ``train_log.json``
    (rank 0 of several; :mod:`alseg.distributed`)."""
    import torch

    from alseg.distributed import current_world
    from alseg.models import load_model, save_model
    from alseg.train import train_model

    main = current_world().is_main
    info, round_index = job.info, job.round_index
    init_state = load_model(init_model, torch.device("cpu"))[0].state_dict() if init_model is not None else None
    if main:
        log(f"round {round_index}: training on {len(inputs.points)} labelled pixels (seed {inputs.seed})")
        if isinstance(job.training_images, ImagesOnDisk):
            log(f"round {round_index}: the pool's images ({job.training_images.nbytes / 2**30:.1f} GiB, more than "
                f"{POOL_IN_MEMORY_BYTES / 2**30:.1f}) are read from {job.dataset} a sample at a time")
    result = train_model(job.settings["model"], inputs.training, job.training_images, inputs.points, inputs.val.images,
                         inputs.val.masks, num_classes=info.num_classes, ignore_index=info.ignore_index,
                         seed=inputs.seed, log=log, init_state=init_state, answers=inputs.answers.answers,
                         answer_loss=inputs.answers.answer_loss)
    if not main:
        return
    save_model(out_model, result.model, job.settings["model"], info.num_classes,
               {"round": round_index, "best_epoch": result.best_epoch, "best_val_miou": result.best_val_miou})
    write_json_atomic(out_log, {
        "round": round_index, "seed": inputs.seed, "best_epoch": result.best_epoch,
        "best_val_miou": result.best_val_miou, "history": result.history, "alseg_version": __version__,
        "training_digest": inputs.digest, **inputs.records,
    })


def evaluate(dataset: PathLike, model_path: PathLike, settings: Mapping[str, Any], round_index: int, out: PathLike,
             split: str = "test") -> dict[str, Any]:
    """Evaluate round ``round_index``'s model on ``split`` and write ``evaluation.json`` (what
    :func:`alseg.steps.write_metrics` completes into ``metrics.json``)."""
    import torch

    from alseg.data import dataset_info
    from alseg.metrics import confusion_matrix, scores_from_confusion
    from alseg.models import load_model, model_checksum, resolve_device
    from alseg.predict import predict

    info = dataset_info(dataset)
    data = load_split(dataset, split)
    device = resolve_device(settings["inference"]["device"])
    model, meta = load_model(model_path, device)
    pred = predict(model, data.images, settings["inference"]["batch_size"], device)
    cm = confusion_matrix(pred, data.masks, info.num_classes, info.ignore_index)
    scores = scores_from_confusion(cm)
    evaluation = {
        "round": round_index,
        "split": split,
        "miou": scores.miou,
        "per_class_iou": scores.per_class(list(info.classes)),
        "pixel_accuracy": scores.pixel_accuracy,
        "model": model_checksum(model),
        "best_val_miou": meta.get("best_val_miou"),
        "best_epoch": meta.get("best_epoch"),
        "images": int(data.images.shape[0]),
        "confusion_matrix": cm.tolist(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(out, evaluation)
    log(f"round {round_index}: {split} mIoU {scores.miou:.4f}, accuracy {scores.pixel_accuracy:.4f} -> {out}")
    return evaluation


def infer(dataset: PathLike, model_path: PathLike, settings: Mapping[str, Any], round_index: int, out: PathLike,
          labels: PathLike | None = None, shard: int = 0, **files: PathLike | None) -> None:
    """Run round ``round_index``'s model over the pool, or shard ``shard`` of it, and write the dump file
    ``out``: the groups that the experiment's unit reads (``settings["unit"]``), with what the unit gives
    them (:meth:`~alseg.units.base.QueryUnit.dump_request`: the ``superpixels`` file's maps, the next
    round's draws from ``labels``, round r's store). ``settings["inference"]["shards"]`` splits the pool
    (:func:`alseg.inference_file.shard_ranges`; docs/architecture.md)."""
    from alseg.infer import write_inference
    from alseg.inference_file import shard_ranges
    from alseg.mc_dropout import mc_mode, mc_passes
    from alseg.models import load_model, model_checksum, resolve_device

    job = Job(dataset, settings, round_index, files)
    info, images = job.info, job.pool_images()
    unit = unit_named(settings["unit"])
    groups = unit.dump_groups
    inference = settings["inference"]
    shards = int(inference.get("shards", 1))
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of an inference dump in {shards} shard(s)")
    shard_images = shard_ranges(len(images), shards, int(inference["batch_size"]))[shard]
    device = resolve_device(inference["device"])
    model, _ = load_model(model_path, device)
    write_inference(out, model, images, num_classes=info.num_classes, batch_size=inference["batch_size"],
                    device=device, mc_passes=mc_passes(settings["acquisition"]),
                    mc_mode=mc_mode(settings["acquisition"]), seed=job.seed("infer"),
                    attrs={"model": model_checksum(model), "round": round_index, "classes": list(info.classes)},
                    groups=groups, image_range=shard_images, shards=shards,
                    **unit.dump_request(job, load_labels(labels) if labels else LabelStore(), shard_images))
    which = f"images {shard_images[0]}..{shard_images[1]} (shard {shard} of {shards})" if shards > 1 else \
        f"{len(images)} pool images"
    log(f"round {round_index}: inference over {which} ({', '.join(groups) or 'no'} groups) -> {out}")
